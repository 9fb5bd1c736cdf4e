"""What every check may look at: the config, the data dir, the running lab (from its run file), an HTTP
client with short timeouts, the lab's database and secret store, and the stack's install state.

Everything is read-only and built lazily, once, under a per-item lock (checks run in threads). Nothing here
creates a database, a key file or a secret: a lab that was never started is reported, not initialised.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ailab.config import LoadedConfig
from ailab.ops.runfile import RunInfo, read_runfile

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ailab.secrets import SecretStore
    from ailab.stack import StackState

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 2.0
Samples = dict[str, list[tuple[dict[str, str], float]]]


@dataclass
class Thresholds:
    """Limits the checks judge by (parameters, so tests and operators can tune them)."""

    disk_warn_ratio: float = 0.10  # warn below 10% free
    disk_fail_ratio: float = 0.05  # fail below 5% free …
    disk_min_free_bytes: int = 1 << 30  # … or below 1 GiB free
    denials_per_hour: int = 10  # warn from this many access denials in the last hour
    unpriced_days: int = 7  # how far back "cost data missing" looks
    default_backup_period_s: float = 7 * 86400.0  # when no backup schedule is configured


class DoctorContext:
    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        thresholds: Thresholds | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.data_dir = loaded.data_dir
        self.timeout = timeout
        self.thresholds = thresholds or Thresholds()
        self.clock = clock
        self.http = httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)
        self.run: RunInfo | None = read_runfile(loaded.data_dir)
        self._values: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._engine: Engine | None = None
        self._closers: list[Callable[[], None]] = []

    def on_close(self, fn: Callable[[], None]) -> None:
        with self._guard:
            self._closers.append(fn)

    def close(self) -> None:
        for fn in reversed(self._closers):
            fn()
        self.http.close()
        if self._engine is not None:
            self._engine.dispose()

    def __enter__(self) -> DoctorContext:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def once(self, key: str, make: Callable[[], T]) -> T:
        """`make()` computed once per context, even when several checks ask at the same time."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._values:
                self._values[key] = make()
            value: T = self._values[key]
            return value

    # -- the running lab -----------------------------------------------------------------------------

    @property
    def master_key(self) -> str | None:
        """The configured master key (config or AILAB_MASTER_KEY), else the one `ailab up` saved."""
        configured = self.config.general_settings.master_key
        if configured:
            return configured
        path = self.data_dir / "master_key"
        try:
            return path.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def auth_headers(self) -> dict[str, str]:
        key = self.master_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    @property
    def lab_url(self) -> str | None:
        """The lab serving this data dir (from the run file `ailab up` writes), or None."""
        return self.run.url if self.run is not None else None

    def lab_metrics(self) -> Samples | None:
        """The running lab's /metrics by sample name (e.g. `ailab_ledger_dropped_rows_total`)."""
        return self.once("lab_metrics", self._fetch_metrics)

    def _fetch_metrics(self) -> Samples | None:
        url = self.lab_url
        if url is None:
            return None
        try:
            resp = self.http.get(f"{url}/metrics", headers=self.auth_headers())
        except httpx.HTTPError:
            return None
        if resp.status_code != 200:
            return None
        return parse_metrics(resp.text)

    # -- local state ---------------------------------------------------------------------------------

    def engine(self) -> Engine | None:
        """The lab's database, if it exists (SQLite: the file is never created here)."""
        return self.once("engine", self._open_engine)

    def _open_engine(self) -> Engine | None:
        from ailab.db import database_url, make_engine

        url = database_url(self.loaded)
        if url.startswith("sqlite") and not (self.data_dir / "ailab.db").is_file():
            return None
        self._engine = make_engine(url)
        return self._engine

    def secret_store(self) -> SecretStore | None:
        """The lab's secret store (reads are audited as `doctor`), or None before the lab's first start."""
        return self.once("secret_store", self._open_secrets)

    def _open_secrets(self) -> SecretStore | None:
        from ailab.access import AuditLog
        from ailab.secrets import open_secret_store

        engine = self.engine()
        if engine is None and self.config.secrets.backend == "local":
            return None
        if engine is None:
            return open_secret_store(self.config.secrets, _no_engine(), self.data_dir, actor="doctor")
        return open_secret_store(
            self.config.secrets, engine, self.data_dir, audit=AuditLog.of(engine, self.loaded), actor="doctor"
        )

    def stack_state(self) -> StackState:
        from ailab.stack import load_state

        return self.once("stack_state", lambda: load_state(self.data_dir))

    def stack_components(self) -> set[str]:
        """Installed components and what they depend on (unknown names are the `ci` check's business)."""
        from ailab.stack import component_catalog as catalog
        from ailab.stack import with_dependencies

        known = [n for n in self.stack_state().installed if n in catalog()]
        return set(with_dependencies(known))

    def component_url(self, name: str) -> str:
        """Where a stack component answers from this host: its published loopback port (compose) or the
        port the native runtime gives it (`state.native_ports` overrides the catalog's)."""
        from ailab.stack import component_catalog as catalog

        state = self.stack_state()
        port = state.native_ports.get(name)
        if port is None:
            first = catalog()[name].ports[0]
            port = first.host if first.host is not None else first.number
        return f"http://127.0.0.1:{port}"

    def temp_dir(self) -> Path:
        """The temporary directory processes of this lab use: TMPDIR (TEMP, TMP) as set now."""
        for name in ("TMPDIR", "TEMP", "TMP"):
            value = os.environ.get(name)
            if value and Path(value).is_dir():
                return Path(value)
        return Path(tempfile.gettempdir())


def connect_host(host: str) -> str:
    """An address to connect to for a listen address (0.0.0.0 / :: mean this host)."""
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        return host
    return host


def parse_metrics(text: str) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return out


def metric_sum(samples: Samples | None, name: str) -> float | None:
    if samples is None:
        return None
    return sum(v for _, v in samples.get(name, []))


def http_problem(exc: httpx.HTTPError) -> str:
    """A failed request in a few words (never the URL's query, which may carry a key)."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if "refused" in text:
            return "connection refused"
        if "name or service" in text or "nodename" in text or "resolve" in text:
            return "host name does not resolve"
        return "cannot connect"
    return type(exc).__name__


def ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _no_engine() -> Engine:
    """Vault needs no database; the store API still takes an engine (an in-memory one, never used)."""
    from sqlalchemy import create_engine

    return create_engine("sqlite://")
