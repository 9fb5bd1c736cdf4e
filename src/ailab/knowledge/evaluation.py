"""Retrieval evaluation: labelled questions → hit@1, hit@5, MRR@10 and each question's rank of its first
right source, kept per collection with the settings that produced them, so two runs can be compared.

A question set is JSON lines, one question a line: `{"question": "...", "sources": ["page.html", ...]}`
(`q` / `pages` are accepted too, as the bench sets spell them). A result counts as right when its source
is one of `sources`, or ends with `/` + one of them (so `routine-vacuuming.html` matches the ingested
`/usr/share/doc/.../routine-vacuuming.html`). Ranks are at document level: several chunks of one document
count once, at the first, the way a reader scans a result list.

Runs are JSON files in `<data>/knowledge/evals/<collection>/`, named by time, newest last.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ailab.knowledge.fusion import RRF_K
from ailab.text import quote_sized

if TYPE_CHECKING:
    from ailab.access import Principal
    from ailab.knowledge.catalog import Collection
    from ailab.knowledge.service import KnowledgeService

DEPTH = 10  # ranks looked at (MRR@10)
MAX_QUESTIONS = 5000
_RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{6}(?:[0-9]{3})?-[0-9a-f]{6}$")  # old ids had no milliseconds


class EvalError(ValueError):
    """A question set or request that cannot be evaluated; the message says which line and why."""


@dataclass(frozen=True)
class Question:
    question: str
    sources: tuple[str, ...]
    id: str | None = None


@dataclass
class Options:
    mode: str = "hybrid"
    group: str = "document"
    per_document: int = 1
    filters: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # caller's labels, kept with the run


def parse_questions(lines: Iterable[str], origin: str = "questions") -> list[Question]:
    """Questions from JSON lines; blank lines and lines starting with `#` are skipped."""
    out: list[Question] = []
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{origin} line {n}: not JSON ({exc.msg})") from None
        out.append(question_of(item, f"{origin} line {n}"))
        if len(out) > MAX_QUESTIONS:
            raise EvalError(f"{origin}: more than {MAX_QUESTIONS} questions")
    if not out:
        raise EvalError(f"{origin}: no questions")
    return out


def question_of(item: Any, where: str) -> Question:
    if not isinstance(item, dict):
        raise EvalError(f"{where}: expected an object with 'question' and 'sources'")
    text = item.get("question", item.get("q"))
    sources = item.get("sources", item.get("pages"))
    if not isinstance(text, str) or not text.strip():
        raise EvalError(f"{where}: 'question' must be a non-empty string")
    if isinstance(sources, str):
        sources = [sources]
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) and s for s in sources):
        raise EvalError(f"{where}: 'sources' must be a non-empty list of source names")
    qid = item.get("id")
    return Question(text.strip(), tuple(sources), None if qid is None else str(qid))


def first_right_rank(ranked_sources: list[str], right: tuple[str, ...]) -> int | None:
    """1-based rank of the first document whose source is right, among distinct sources; None if none."""
    seen: list[str] = []
    for src in ranked_sources:
        if src in seen:
            continue
        seen.append(src)
        if any(src == r or src.endswith("/" + r) for r in right):
            return len(seen)
        if len(seen) >= DEPTH:
            break
    return None


def metrics(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    return {
        "hit@1": round(sum(1 for r in ranks if r == 1) / n, 4),
        "hit@5": round(sum(1 for r in ranks if r is not None and r <= 5) / n, 4),
        "mrr@10": round(sum(1.0 / r for r in ranks if r is not None and r <= DEPTH) / n, 4),
    }


def settings_of(svc: KnowledgeService, coll: Collection, opts: Options) -> dict[str, Any]:
    """What produced a run's ranking: embedder, chunking, fusion, reranker, store."""
    rerank = getattr(svc.settings, "rerank_model", None)
    return {
        "embedding_model": coll.embedding_model,
        "dimension": coll.dimension,
        "store": coll.store,
        "chunking": {"chunk_tokens": coll.chunk_tokens, "overlap": coll.overlap},
        "fusion": {
            "mode": opts.mode,
            "group": opts.group,
            "per_document": opts.per_document,
            "rrf_k": RRF_K,
        },
        "reranker": rerank or ("custom hook" if svc.reranker is not None else None),
        "filters": opts.filters,
        **({"labels": opts.extra} if opts.extra else {}),
    }


def digest(questions: list[Question]) -> str:
    h = hashlib.sha256()
    for q in questions:
        h.update(json.dumps([q.question, list(q.sources)]).encode() + b"\n")
    return h.hexdigest()[:16]


async def evaluate(
    svc: KnowledgeService,
    principal: Principal,
    coll: Collection,
    questions: list[Question],
    opts: Options | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Search each question as `ailab search` would (k = 10) and score the ranks. Not saved: see `save`."""
    opts = opts or Options()
    t0 = time.perf_counter()
    per: list[dict[str, Any]] = []
    for q in questions:
        hits = await svc.search(
            principal,
            [coll],
            q.question,
            DEPTH,
            opts.filters,
            opts.mode,
            group=opts.group,
            per_document=opts.per_document,
        )
        ranked = [str(h.meta.get("source") or "") for h in hits]
        rank = first_right_rank(ranked, q.sources)
        per.append(
            {
                **({"id": q.id} if q.id else {}),
                "question": q.question,
                "sources": list(q.sources),
                "rank": rank,
                "top": list(dict.fromkeys(ranked))[:3],
            }
        )
    return {
        "collection": coll.name,
        "questions_name": name,
        "questions_digest": digest(questions),
        "count": len(questions),
        "created_ms": int(time.time() * 1000),
        "seconds": round(time.perf_counter() - t0, 2),
        "settings": settings_of(svc, coll, opts),
        "metrics": metrics([p["rank"] for p in per]),
        "questions": per,
    }


# -- kept runs ------------------------------------------------------------------------------------


def runs_dir(svc: KnowledgeService, coll: Collection) -> Path:
    return svc.root / "evals" / coll.id


def save(svc: KnowledgeService, coll: Collection, run: dict[str, Any]) -> dict[str, Any]:
    d = runs_dir(svc, coll)
    d.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(run["created_ms"] / 1000))
    run["id"] = f"{stamp}{run['created_ms'] % 1000:03d}-{os.urandom(3).hex()}"
    tmp = d / f".{run['id']}.tmp"
    tmp.write_text(json.dumps(run, indent=1))
    os.replace(tmp, d / f"{run['id']}.json")
    return run


def list_runs(svc: KnowledgeService, coll: Collection) -> list[dict[str, Any]]:
    """Kept runs, oldest first, without their per-question detail."""
    d = runs_dir(svc, coll)
    out = []
    for path in sorted(d.glob("*.json")) if d.is_dir() else []:
        run = json.loads(path.read_text())
        out.append({k: v for k, v in run.items() if k != "questions"})
    # Ids sort by time only to the millisecond; runs kept within one are ordered by when they were made.
    return sorted(out, key=lambda r: (r.get("created_ms", 0), r.get("id", "")))


def load_run(svc: KnowledgeService, coll: Collection, run_id: str) -> dict[str, Any]:
    if not _RUN_ID.match(run_id):
        raise EvalError(f"no evaluation run {quote_sized(run_id)} (ids look like 20261202T013000123-a1b2c3)")
    path = runs_dir(svc, coll) / f"{run_id}.json"
    if not path.is_file():
        raise EvalError(f"no evaluation run {run_id!r} for collection {coll.name!r}")
    run: dict[str, Any] = json.loads(path.read_text())
    return run


def previous(svc: KnowledgeService, coll: Collection, ref: str, run: dict[str, Any]) -> dict[str, Any]:
    """`ref` is a run id, or `last`: the newest kept run on the same questions (other than `run`)."""
    if ref != "last":
        return load_run(svc, coll, ref)
    same = [
        r
        for r in list_runs(svc, coll)
        if r.get("questions_digest") == run["questions_digest"] and r.get("id") != run.get("id")
    ]
    if not same:
        raise EvalError(f"no earlier evaluation of collection {coll.name!r} on these questions to compare")
    return load_run(svc, coll, same[-1]["id"])


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Metric deltas, settings that differ, and the questions whose rank changed."""
    delta = {m: round(after["metrics"][m] - before["metrics"][m], 4) for m in after["metrics"]}
    sb, sa = before.get("settings", {}), after.get("settings", {})
    changed = {
        k: {"before": sb.get(k), "after": sa.get(k)} for k in sorted({*sb, *sa}) if sb.get(k) != sa.get(k)
    }
    ranks_before = {q["question"]: q["rank"] for q in before.get("questions", [])}
    moved = [
        {"question": q["question"], "before": ranks_before[q["question"]], "after": q["rank"]}
        for q in after["questions"]
        if q["question"] in ranks_before and ranks_before[q["question"]] != q["rank"]
    ]
    return {
        "before": before.get("id"),
        "after": after.get("id"),
        "metrics_before": before["metrics"],
        "metrics_after": after["metrics"],
        "delta": delta,
        "settings_changed": changed,
        "rank_changes": moved,
    }
