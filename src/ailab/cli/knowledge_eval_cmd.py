"""`ailab knowledge eval` (retrieval quality on labelled questions, kept and compared) and
`ailab knowledge reindex` (rebuild a collection's ANN index). Registered on `ailab knowledge`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from ailab.cli.common import DataDirOpt
from ailab.cli.knowledge_cmd import CollOpt, ConfOpt, FormatOpt, _emit, _operator, _run


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
    app.command("reindex")(reindex_cmd)


def eval_cmd(
    questions: Annotated[
        Path | None, typer.Argument(help='JSON lines: {"question": ..., "sources": [...]} a line')
    ] = None,
    collection: CollOpt = "",
    mode: Annotated[str, typer.Option(help="hybrid, dense or sparse")] = "hybrid",
    group: Annotated[str, typer.Option(help="document or chunk")] = "document",
    compare: Annotated[
        str | None, typer.Option(help="compare with a kept run: its id, or 'last' (same questions)")
    ] = None,
    min_hit5: Annotated[
        float | None, typer.Option("--min-hit5", help="exit 1 when hit@5 is below this (for CI)")
    ] = None,
    keep: Annotated[bool, typer.Option(help="keep the run with the collection (for --compare)")] = True,
    label: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE kept with the run's settings (repeatable)")
    ] = None,
    list_runs: Annotated[bool, typer.Option("--list", help="list kept runs and exit")] = False,
    config: ConfOpt = None,
    data_dir: DataDirOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Score retrieval on labelled questions: hit@1, hit@5, MRR@10 and each question's first right rank."""
    from ailab.knowledge import evaluation as ev

    if not collection:
        raise typer.BadParameter("name the collection", param_hint="--collection")
    if min_hit5 is not None and not 0.0 <= min_hit5 <= 1.0:
        raise typer.BadParameter("a fraction between 0 and 1", param_hint="--min-hit5")
    qs = _read(questions) if not list_runs else []
    extra = _labels(label or [])

    async def work(svc: Any) -> Any:
        coll = svc.get(collection)
        try:
            if list_runs:
                return {"runs": ev.list_runs(svc, coll)}
            opts = ev.Options(mode=mode, group=group, extra=extra)
            name = questions.name if questions else None
            run = await ev.evaluate(svc, _operator(), coll, qs, opts, name)
            if keep:
                run = await asyncio.to_thread(ev.save, svc, coll, run)
            if compare:
                run["comparison"] = ev.compare(ev.previous(svc, coll, compare, run), run)
            return run
        except ev.EvalError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    out = _run(config, data_dir, work)
    _emit(fmt, out, lambda: _runs_text(out["runs"]) if list_runs else _text(out))
    if min_hit5 is not None and not list_runs and out["metrics"]["hit@5"] < min_hit5:
        typer.echo(f"hit@5 {out['metrics']['hit@5']:.3f} is below --min-hit5 {min_hit5}", err=True)
        raise typer.Exit(1)


def _read(path: Path | None) -> list[Any]:
    from ailab.knowledge import EvalError, parse_questions

    if path is None:
        raise typer.BadParameter("give a questions file (JSON lines)", param_hint="QUESTIONS")
    try:
        with open(path, encoding="utf-8") as fh:
            return parse_questions(fh, path.name)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="QUESTIONS") from None
    except (EvalError, UnicodeDecodeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _labels(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--label")
        out[key] = value
    return out


def _text(run: dict[str, Any]) -> str:
    m = run["metrics"]
    lines = [f"{'rank':>4}  question"]
    for q in run["questions"]:
        rank = "-" if q["rank"] is None else str(q["rank"])
        lines.append(f"{rank:>4}  {q['question'][:100]}")
    lines.append("")
    lines.append(
        f"{run['count']} questions on {run['collection']}: hit@1 {m['hit@1']:.3f}  hit@5 {m['hit@5']:.3f}  "
        f"MRR@10 {m['mrr@10']:.3f}" + (f"  (run {run['id']})" if run.get("id") else "")
    )
    cmp = run.get("comparison")
    if cmp:
        d = cmp["delta"]
        lines.append(
            f"vs {cmp['before']}: hit@1 {d['hit@1']:+.3f}  hit@5 {d['hit@5']:+.3f}  MRR@10 {d['mrr@10']:+.3f}"
        )
        for key, ch in cmp["settings_changed"].items():
            lines.append(f"  setting {key}: {ch['before']} → {ch['after']}")
        for q in cmp["rank_changes"]:
            before = "-" if q["before"] is None else q["before"]
            after = "-" if q["after"] is None else q["after"]
            lines.append(f"  {before} → {after}  {q['question'][:90]}")
    return "\n".join(lines)


def _runs_text(runs: list[dict[str, Any]]) -> str:
    from ailab.cli.table import render

    rows = [
        {
            "id": r["id"],
            "questions": f"{r.get('questions_name') or '?'} ({r['count']})",
            "model": r["settings"]["embedding_model"],
            "mode": r["settings"]["fusion"]["mode"],
            **r["metrics"],
        }
        for r in runs
    ]
    cols = ["id", "questions", "model", "mode", "hit@1", "hit@5", "mrr@10"]
    return render(rows, cols) if rows else "No kept runs."


def reindex_cmd(
    collection: CollOpt,
    config: ConfOpt = None,
    data_dir: DataDirOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Rebuild a collection's ANN index from its stored vectors (embedded store)."""

    async def work(svc: Any) -> Any:
        coll = svc.get(collection)
        store = svc.store(coll.store)
        rebuild = getattr(store, "reindex", None)
        if rebuild is None:
            return {"collection": coll.name, "store": coll.store, "note": "this store keeps its own index"}
        info: dict[str, Any] = await asyncio.to_thread(rebuild, coll.namespace)
        return {"collection": coll.name, "store": coll.store, **info}

    out = _run(config, data_dir, work)
    _emit(fmt, out, lambda: "  ".join(f"{k}: {v}" for k, v in out.items()))
