"""`ailab collections`, `ailab ingest`, `ailab search`, `ailab ask`, `ailab knowledge migrate`.

Each runs the lab in process (router, ledger, access control) on the same config and data dir as
`ailab up`, acting as the local operator; embedding and chat calls are ledgered like any other.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from ailab.cli.common import DataDirOpt, load_or_exit
from ailab.cli.progress import progress

knowledge_app = typer.Typer(help="Knowledge collections: create, list, delete, migrate between stores.")
CollOpt = Annotated[str, typer.Option("--collection", "-c", help="collection name")]
FormatOpt = Annotated[str, typer.Option("--format", help="table or json")]
KOpt = Annotated[int, typer.Option("-k", help="number of results")]
ConfOpt = Annotated[Path | None, typer.Option("--config", envvar="AILAB_CONFIG", help="ailab.yaml")]


def _run(
    config: Path | None, data_dir: Path | None, work: Callable[[Any], Awaitable[Any]], read_only: bool = False
) -> Any:
    from ailab.knowledge import KnowledgeError
    from ailab.server.local import open_lab

    loaded = load_or_exit(config, data_dir, read_only=read_only)

    async def main() -> Any:
        async with open_lab(loaded) as (_, svc):
            return await work(svc)

    try:
        return asyncio.run(main())
    except KnowledgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2 if exc.status < 500 else 1) from None


def _project_id(config: Path | None, data_dir: Path | None, project: str | None) -> str | None:
    if project is None:
        return None
    from ailab.cli.access_cmd import access

    with access(config, data_dir) as a:
        return a.identity.project(project).id


def _operator() -> Any:
    from ailab.access import MASTER

    return MASTER


def _emit(fmt: str, data: Any, text: Callable[[], str]) -> None:
    if fmt == "json":
        typer.echo(json.dumps(data, indent=2, default=str))
    elif fmt == "table":
        typer.echo(text())
    else:
        raise typer.BadParameter("choose table or json", param_hint="--format")


def collections(
    config: ConfOpt = None,
    data_dir: DataDirOpt = None,
    create: Annotated[str | None, typer.Option(help="create a collection with this name")] = None,
    delete: Annotated[str | None, typer.Option(help="delete this collection and its documents")] = None,
    store: Annotated[str | None, typer.Option(help="embedded, qdrant or milvus (with --create)")] = None,
    embedding_model: Annotated[
        str | None, typer.Option(help="a model group of the gateway (--create)")
    ] = None,
    project: Annotated[str | None, typer.Option(help="owning project id (--create)")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """List collections (or create / delete one)."""

    async def work(svc: Any) -> Any:
        p = _operator()
        if create:
            coll = await svc.create_collection(
                p, create, project_id=project, store=store, embedding_model=embedding_model
            )
            return [svc.describe(coll)]
        if delete:
            await svc.delete_collection(svc.get(delete))
            return []
        return [svc.describe(c) for c in svc.catalog.collections()]

    rows = _run(config, data_dir, work, read_only=not (create or delete))
    cols = ["name", "store", "embedding_model", "dimension", "documents", "chunks", "project_id"]

    def table() -> str:
        from ailab.cli.table import render

        return render(rows, cols) if rows else "No collections."

    _emit(fmt, rows, table)


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files and folders")],
    collection: CollOpt,
    config: ConfOpt = None,
    data_dir: DataDirOpt = None,
    create: Annotated[bool, typer.Option(help="create the collection if it does not exist")] = True,
    prune: Annotated[
        bool, typer.Option(help="remove documents whose files are gone from these folders")
    ] = False,
    workers: Annotated[int | None, typer.Option(help="parser processes (0: one thread)")] = None,
    follow_links: Annotated[
        bool, typer.Option(help="follow symbolic links that lead out of the paths given")
    ] = False,
    include_hidden: Annotated[bool, typer.Option(help="read hidden files and folders too")] = False,
    extensionless: Annotated[
        bool, typer.Option(help="read files without an extension as text (when they sniff as text)")
    ] = False,
    project: Annotated[
        str | None, typer.Option(help="project (name or id) the collection belongs to; default: lab-wide")
    ] = None,
    allow_failures: Annotated[
        bool, typer.Option(help="exit 0 even when some files failed (they are still listed)")
    ] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Ingest files and folders into a collection (unchanged files are skipped, changed ones replaced).

    Not read unless asked: links out of the paths given, hidden files and folders, files without an
    extension (README, LICENSE, Makefile … excepted); never read: key and credential files. Each skipped
    file is listed with the reason. Exits 1 when any file failed, unless --allow-failures. Without a
    terminal, progress is a line on stderr every few seconds."""
    from ailab.knowledge import FindOptions

    target = _Target(collection, create, project, _project_id(config, data_dir, project))
    find = FindOptions(follow_links, include_hidden, extensionless)

    async def work(svc: Any) -> Any:
        coll = await _target_collection(svc, target)
        with progress(f"ingest → {collection}", quiet=fmt == "json") as update:
            report = await svc.ingest_paths(
                _operator(),
                coll,
                paths,
                prune=prune,
                workers=workers,
                find=find,
                progress=update,
                index_now=True,
                on_index=lambda: update.stage("catching the search index up"),
            )
        return report.as_dict()

    report = _run(config, data_dir, work)
    _emit(fmt, report, lambda: _ingest_text(report))
    if report["failed"] and not allow_failures:
        raise typer.Exit(1)


@dataclass(frozen=True)
class _Target:
    name: str
    create: bool
    project: str | None
    project_id: str | None


async def _target_collection(svc: Any, t: _Target) -> Any:
    from ailab.knowledge import KnowledgeError

    coll = svc.catalog.collection(t.name)
    if coll is None:
        if not t.create:
            svc.get(t.name)  # raises the 404
        return await svc.create_collection(_operator(), t.name, project_id=t.project_id)
    if t.project_id is not None and coll.project_id != t.project_id:
        owner = f"project {coll.project_id}" if coll.project_id else "the whole lab (no project)"
        raise KnowledgeError(f"collection {t.name!r} belongs to {owner}, not {t.project!r}", 409)
    return coll


def _ingest_text(report: dict[str, Any]) -> str:
    lines = [
        f"added {report['added']}, updated {report['updated']}, unchanged {report['unchanged']}, "
        f"removed {report['removed']}, failed {len(report['failed'])}, "
        f"skipped {len(report['skipped'])}; {report['chunks']} chunks in {report['seconds']:.1f} s"
    ]
    lines += [f"  failed: {f['source']}: {f['reason']}" for f in report["failed"]]
    lines += [f"  skipped: {f['source']}: {f['reason']}" for f in report["skipped"]]
    return "\n".join(lines)


def search(
    query: Annotated[str, typer.Argument(help="what to look for")],
    collection: CollOpt,
    k: KOpt = 5,
    mode: Annotated[str, typer.Option(help="hybrid, dense or sparse")] = "hybrid",
    group: Annotated[
        str, typer.Option(help="document (a document counts once) or chunk (chunks alone)")
    ] = "document",
    per_document: Annotated[int, typer.Option(help="chunks each ranked document brings")] = 1,
    config: ConfOpt = None,
    data_dir: DataDirOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Hybrid (dense + BM25) search of one or more collections (comma-separated)."""

    async def work(svc: Any) -> Any:
        colls = [svc.get(n) for n in collection.split(",")]
        hits = await svc.search(
            _operator(), colls, query, k, mode=mode, group=group, per_document=per_document
        )
        return [h.public() for h in hits]

    hits = _run(config, data_dir, work)

    _emit(fmt, hits, lambda: "\n".join(_hit_text(n, h) for n, h in enumerate(hits, 1)) or "No results.")


def _hit_text(n: int, h: dict[str, Any], width: int = 160) -> str:
    """`1. 0.8123  Guide — guide.pdf p.4 › Install`, then the snippet on one line, clipped at a word."""
    source = str(h["source"] or "?") + (f" p.{h['page']}" if h["page"] else "")
    title = f"{h['title']} — " if h["title"] and h["title"] != h["source"] else ""
    where = " › ".join([title + source, *(str(x) for x in h["heading"])])
    snippet = " ".join(str(h["text"]).split())
    if len(snippet) > width:
        snippet = snippet[:width].rsplit(" ", 1)[0] + " …"
    return f"{n}. {h['score']:.4f}  {where}\n   {snippet}"


def ask(
    question: Annotated[str, typer.Argument(help="the question")],
    collection: CollOpt,
    model: Annotated[
        str | None, typer.Option(help="chat model group (default: knowledge.chat_model)")
    ] = None,
    k: KOpt = 5,
    config: ConfOpt = None,
    data_dir: DataDirOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Answer a question from a collection, with numbered citations."""
    from ailab.knowledge import ask as rag_ask

    async def work(svc: Any) -> Any:
        colls = [svc.get(n) for n in collection.split(",")]
        return await rag_ask(svc, _operator(), colls, question, model=model, k=k)

    result = _run(config, data_dir, work)

    def text() -> str:
        lines = [result["answer"], ""]
        for c in result["citations"]:
            mark = "*" if c["cited"] else " "
            page = f" p.{c['page']}" if c["page"] else ""
            lines.append(f"{mark}[{c['n']}] {c['title']} — {c['source']}{page}")
        return "\n".join(lines)

    _emit(fmt, result, text)


@knowledge_app.command("migrate")
def migrate(
    from_store: Annotated[str, typer.Option("--from", help="store to move from")],
    to_store: Annotated[str, typer.Option("--to", help="store to move to")],
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="only this collection")] = None,
    config: ConfOpt = None,
    data_dir: DataDirOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Move collections between stores (embedded, qdrant, milvus) without re-embedding."""

    async def work(svc: Any) -> Any:
        colls = [svc.get(collection)] if collection else svc.catalog.collections()
        moved = []
        for c in colls:
            if c.store == from_store:
                moved.append(
                    {"collection": c.name, "vectors": await asyncio.to_thread(svc.migrate, c, to_store)}
                )
        return moved

    moved = _run(config, data_dir, work)
    _emit(
        fmt,
        moved,
        lambda: (
            "\n".join(f"{m['collection']}: {m['vectors']} vectors → {to_store}" for m in moved)
            or "Nothing to move."
        ),
    )
