"""Usage & cost: spend, tokens and requests over time (uPlot), breakdowns by model, provider, deployment,
project, user, key and app (names, not ids), models costed by GPU-hour or energy apart, unpriced requests
counted (never shown as $0), and what is on screen as CSV or JSON."""

from __future__ import annotations

import csv
import io
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ailab.console import facts
from ailab.console.overview import scope
from ailab.console.web import Denied, Pages, Viewer
from ailab.ledger import usage_report, usage_series
from ailab.types import pusd_to_usd

if TYPE_CHECKING:
    from ailab.server.state import LabState

RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
RANGES |= {"90d": 90 * 86400, "365d": 365 * 86400}
BREAKDOWNS = ("model", "provider", "deployment", "project", "user", "key", "app")


def _range(request: Request) -> tuple[str, float, str]:
    name = request.query_params.get("range", "7d")
    if name not in RANGES:
        raise Denied(404, f"range {name!r}: choose one of {', '.join(RANGES)}")
    seconds = RANGES[name]
    return name, time.time() - seconds, "hour" if seconds <= 2 * 86400 else "day"


def report(state: LabState, v: Viewer, since: float, bucket: str) -> dict[str, Any]:
    assert state.engine is not None
    where = scope(v)
    labels = facts.names(state)
    local = {d["id"] for d in facts.deployments(state) if d["local"]}
    breakdowns: dict[str, list[dict[str, Any]]] = {}
    for by in BREAKDOWNS:
        rows = []
        for row in usage_report(state.engine, by, since, where=where):
            item = row.as_dict()
            item["id"] = row.name
            item["name"] = labels.get(by, {}).get(row.name, row.name)
            item["cost_usd"] = None if row.requests == row.unpriced and row.unpriced else item["cost_usd"]
            item["local"] = by == "deployment" and row.name in local
            rows.append(item)
        breakdowns[by] = rows
    series = usage_series(state.engine, since, bucket, where)
    for point in series:
        point["cost_usd"] = str(pusd_to_usd(point.pop("cost_pusd")))
    return {"bucket": bucket, "series": series, "breakdowns": breakdowns}


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row[c] for c in columns})
    return out.getvalue()


COLUMNS = ["name", "id", "requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd", "unpriced"]
SERIES_COLUMNS = ["t", "requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd", "unpriced"]


def routes(state: LabState, pages: Pages) -> list[Route]:
    @pages.page("usage.read.own")
    def usage(request: Request, v: Viewer) -> Response:
        name, since, bucket = _range(request)
        by = request.query_params.get("by", "model")
        if by not in BREAKDOWNS:
            raise Denied(404, f"by {by!r}: choose one of {', '.join(BREAKDOWNS)}")
        body = report(state, v, since, bucket)
        return pages.render(
            request,
            "usage.html",
            v,
            range=name,
            ranges=list(RANGES),
            by=by,
            dims=BREAKDOWNS,
            bucket=bucket,
            series=body["series"],
            breakdown_rows=body["breakdowns"][by],
            local_rows=[r for r in body["breakdowns"]["deployment"] if r["local"]],
            budgets=facts.budgets(state, v),
        )

    @pages.page("usage.read.own")
    def export(request: Request, v: Viewer) -> Response:
        name, since, bucket = _range(request)
        body = report(state, v, since, bucket)
        fmt, by = request.query_params.get("format", "json"), request.query_params.get("by", "model")
        stem = f"ailab-usage-{name}"
        if fmt == "json":
            headers = {"Content-Disposition": f'attachment; filename="{stem}.json"'}
            return JSONResponse({"range": name, **body}, headers=headers)
        if fmt != "csv" or (by not in BREAKDOWNS and by != "time"):
            raise Denied(404, "export: format=json, or format=csv with by=time or a breakdown")
        text = _csv(body["series"], SERIES_COLUMNS) if by == "time" else _csv(body["breakdowns"][by], COLUMNS)
        headers = {"Content-Disposition": f'attachment; filename="{stem}-{by}.csv"'}
        return Response(text, media_type="text/csv", headers=headers)

    return [Route("/usage", usage), Route("/usage/export", export)]
