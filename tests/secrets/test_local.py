"""The local backend (AES-256-GCM in the lab database) and the refresher that follows rotations."""

from __future__ import annotations

import asyncio
import base64
import logging
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ailab.access.audit import AuditLog
from ailab.access.schema import MIGRATIONS as ACCESS_MIGRATIONS
from ailab.config.models import SecretsSettings
from ailab.db import make_engine, migrate
from ailab.gateway.types import Deployment
from ailab.secrets import (
    MIGRATIONS,
    SecretError,
    SecretMeta,
    SecretNotFound,
    SecretRefresher,
    SecretStore,
    open_secret_store,
)
from ailab.secrets.local import secrets_table

VALUE = "sk-live-PLAINTEXT-marker-7f3a9c"


def _key(byte: int) -> str:
    return base64.urlsafe_b64encode(bytes([byte]) * 32).decode()


def _engine(url: str) -> sa.Engine:
    engine = make_engine(url)
    migrate(engine, [*ACCESS_MIGRATIONS, *MIGRATIONS])
    return engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    e = _engine(f"sqlite:///{tmp_path / 'lab.db'}")
    yield e
    e.dispose()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


def _store(engine: sa.Engine, data_dir: Path, audit: AuditLog | None = None, **kw: object) -> SecretStore:
    return open_secret_store(
        SecretsSettings.model_validate(kw), engine, data_dir, audit=audit, actor="tester"
    )


def test_lifecycle_on_sqlite_and_postgres(database_url: str, data_dir: Path) -> None:
    engine = _engine(database_url)
    audit = AuditLog(engine)
    store = _store(engine, data_dir, audit)
    assert isinstance(store, SecretStore)
    assert store.get("OPENAI") is None and store.version("OPENAI") is None and store.list() == []
    assert store.set("OPENAI", VALUE) == 1
    assert store.get("OPENAI") == VALUE and store.version("OPENAI") == 1
    assert store.set("OPENAI", "second") == 2 and store.get("OPENAI") == "second"
    assert store.rotate("OPENAI", "third") == (3, None)
    version, generated = store.rotate("OPENAI")
    assert version == 4 and generated and len(generated) >= 40 and store.get("OPENAI") == generated
    store.set("anthropic.key-2", "ü-unicode ✓")
    assert store.get("anthropic.key-2") == "ü-unicode ✓"
    metas = store.list()
    assert [(m.name, m.version, m.backend) for m in metas] == [
        ("OPENAI", 4, "local"),
        ("anthropic.key-2", 1, "local"),
    ]
    assert all(isinstance(m, SecretMeta) and m.updated_ms > 1_600_000_000_000 for m in metas)
    assert store.delete("OPENAI") is True and store.delete("OPENAI") is False
    assert store.get("OPENAI") is None and [m.name for m in store.list()] == ["anthropic.key-2"]
    with pytest.raises(SecretNotFound, match="secret nope not found"):
        store.rotate("nope")
    # The audit trail: every read and change, with the version and never a value.
    entries = list(reversed(audit.entries(limit=100)))
    actions = [(e.action, e.target, e.detail) for e in entries if e.target == "OPENAI"]
    assert ("secret.write", "OPENAI", {"version": 1}) in actions
    assert ("secret.read", "OPENAI", {"version": 1}) in actions
    assert ("secret.rotate", "OPENAI", {"version": 4}) in actions
    assert ("secret.delete", "OPENAI", {"version": 4}) in actions
    assert actions[-1] == ("secret.read", "OPENAI", {"version": None}), "a failed lookup is audited too"
    assert {e.actor for e in entries} == {"tester"}
    with engine.connect() as conn:
        dump = repr(conn.execute(sa.text("SELECT * FROM audit_log")).all())
    assert VALUE not in dump and "second" not in dump and generated not in dump
    assert audit.verify().ok
    engine.dispose()


def test_concurrent_writers_get_distinct_versions(database_url: str, data_dir: Path) -> None:
    engine = _engine(database_url)
    store = _store(engine, data_dir)
    versions: list[int] = []
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            versions.append(store.set("RACE", f"v{i}"))
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    assert not errors and sorted(versions) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("bad", ["", "a/b", "with space", "x" * 129, "..", ".", "ä", "a\nb"])
def test_invalid_names_are_refused(engine: sa.Engine, data_dir: Path, bad: str) -> None:
    store = _store(engine, data_dir)
    with pytest.raises(ValueError, match="invalid secret name"):
        store.set(bad, "v")
    with pytest.raises(ValueError, match="invalid secret name"):
        store.get(bad)


def test_empty_value_is_refused(engine: sa.Engine, data_dir: Path) -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        _store(engine, data_dir).set("K", "")


def test_plaintext_never_reaches_the_database_file(tmp_path: Path, data_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    engine = _engine(url)
    store = _store(engine, data_dir, AuditLog(engine))
    store.set("K", VALUE)
    store.rotate("K", VALUE + "-next")
    assert store.get("K") == VALUE + "-next"
    with engine.connect() as conn:
        row = conn.execute(sa.select(secrets_table)).one()
    assert len(row.nonce) == 12 and VALUE.encode() not in row.ciphertext
    engine.dispose()
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("plain.db*"))
    assert blob and VALUE.encode() not in blob and b"PLAINTEXT" not in blob


def test_ciphertext_is_bound_to_its_name(engine: sa.Engine, data_dir: Path) -> None:
    store = _store(engine, data_dir)
    store.set("A", "value-of-a")
    store.set("B", "value-of-b")
    t = secrets_table
    with engine.begin() as conn:
        a = conn.execute(sa.select(t.c.nonce, t.c.ciphertext).where(t.c.name == "A")).one()
        conn.execute(sa.update(t).where(t.c.name == "B").values(nonce=a.nonce, ciphertext=a.ciphertext))
    with pytest.raises(SecretError, match="cannot decrypt secret B"):
        store.get("B")
    assert store.get("A") == "value-of-a"


def test_fresh_nonce_per_write(engine: sa.Engine, data_dir: Path) -> None:
    store = _store(engine, data_dir)
    seen = set()
    for _ in range(5):
        store.set("N", "same value")
        with engine.connect() as conn:
            seen.add(bytes(conn.execute(sa.select(secrets_table.c.nonce)).scalar_one()))
    assert len(seen) == 5


def test_wrong_key_is_a_clear_error(
    engine: sa.Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AILAB_SECRET_KEY", _key(1))
    _store(engine, data_dir).set("K", VALUE)
    monkeypatch.setenv("AILAB_SECRET_KEY", _key(2))
    with pytest.raises(SecretError) as err:
        _store(engine, data_dir).get("K")
    assert str(err.value) == "cannot decrypt secret K: wrong AILAB_SECRET_KEY / key file?"
    assert err.value.__cause__ is None and err.value.__suppress_context__


@pytest.mark.parametrize(
    ("key", "match"),
    [("not base64 !!", "not urlsafe base64"), (_key(1)[:20], "decodes to 15 bytes")],
)
def test_malformed_env_key(
    engine: sa.Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch, key: str, match: str
) -> None:
    monkeypatch.setenv("AILAB_SECRET_KEY", key)
    with pytest.raises(SecretError, match=match) as err:
        _store(engine, data_dir).set("K", "v")
    assert key not in str(err.value)


def test_env_key_without_padding_is_accepted(
    engine: sa.Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AILAB_SECRET_KEY", _key(3).rstrip("="))
    store = _store(engine, data_dir)
    store.set("K", "v")
    monkeypatch.setenv("AILAB_SECRET_KEY", _key(3))
    assert _store(engine, data_dir).get("K") == "v"


def test_default_key_file_is_private_and_apart_from_data(
    engine: sa.Engine, data_dir: Path, _private_key_home: Path
) -> None:
    store = _store(engine, data_dir)
    store.get("missing")
    store.list()
    key_file = _private_key_home / "ailab" / "secret.key"
    assert not key_file.exists(), "no key is created until a secret is written"
    store.set("K", VALUE)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert not key_file.resolve().is_relative_to(data_dir.resolve())
    assert len(base64.urlsafe_b64decode(key_file.read_text().strip())) == 32
    assert list(key_file.parent.iterdir()) == [key_file], "the temp file is cleaned up"
    # A new process (a new store) finds the same key.
    assert _store(engine, data_dir).get("K") == VALUE
    key_file.unlink()
    with pytest.raises(SecretError, match="no key"):
        _store(engine, data_dir).get("K")
    assert not key_file.exists(), "reading never invents a key that could not decrypt anyway"


def test_key_file_setting_expands_home_and_warns_inside_data_dir(
    engine: sa.Engine,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _store(engine, data_dir, key_file="~/keys/lab.key").set("K", "v")
    assert (tmp_path / "home" / "keys" / "lab.key").is_file()
    caplog.set_level(logging.WARNING, "ailab.secrets")
    _store(engine, data_dir, key_file=str(data_dir / "lab.key")).set("K2", "v")
    assert "inside the data dir" in caplog.text


def test_raw_binary_key_file_is_accepted(engine: sa.Engine, data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "raw.key"
    path.write_bytes(bytes(range(32)))
    path.chmod(0o600)
    _store(engine, data_dir, key_file=str(path)).set("K", "v")
    assert _store(engine, data_dir, key_file=str(path)).get("K") == "v"


# -- the refresher ---------------------------------------------------------------------------------------


def _dep(id: str, ref: str | None, key: str | None = None) -> Deployment:
    return Deployment(
        id=id,
        group="g",
        provider="openai",
        provider_label="openai",
        price_id=None,
        model="m",
        api_base=None,
        api_key=key,
        api_key_ref=ref,
    )


def test_refresher_resolves_and_follows_rotation(
    engine: sa.Engine, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "ailab.secrets")
    store = _store(engine, data_dir)
    store.set("OPENAI", "key-v1")
    store.set("OTHER", "other-v1")
    a, b, plain = _dep("a", "OPENAI"), _dep("b", "OPENAI"), _dep("c", None, "inline")
    refresher = SecretRefresher(store, [a, b, plain, a])
    refresher.resolve_all()
    assert (a.api_key, b.api_key, plain.api_key) == ("key-v1", "key-v1", "inline")
    assert refresher.refresh_once() == []
    store.rotate("OPENAI", "key-v2")
    store.rotate("OTHER", "other-v2")  # not referenced: never read
    assert refresher.refresh_once() == ["OPENAI"]
    assert (a.api_key, b.api_key) == ("key-v2", "key-v2")
    assert refresher.refresh_once() == []
    assert "secret OPENAI rotated (version 2)" in caplog.text
    assert "key-v" not in caplog.text
    # Deleted: keep serving the last value; re-created: picked up again.
    store.delete("OPENAI")
    assert refresher.refresh_once() == [] and a.api_key == "key-v2"
    assert "OPENAI was deleted" in caplog.text
    store.set("OPENAI", "key-new")
    assert refresher.refresh_once() == ["OPENAI"] and a.api_key == "key-new"


def test_refresher_names_the_missing_secret_and_deployment(engine: sa.Engine, data_dir: Path) -> None:
    store = _store(engine, data_dir)
    refresher = SecretRefresher(store, [_dep("gpt:openai/gpt-4o#0", "MISSING_KEY")])
    with pytest.raises(SecretNotFound) as err:
        refresher.resolve_all()
    assert err.value.name == "MISSING_KEY"
    assert "MISSING_KEY" in str(err.value) and "gpt:openai/gpt-4o#0" in str(err.value)


class _Flaky:
    """A store whose version() fails a few times, to show the loop survives."""

    def __init__(self, inner: SecretStore, failures: int) -> None:
        self.inner, self.failures = inner, failures

    def version(self, name: str) -> int | None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("boom with sk-do-not-log")
        return self.inner.version(name)

    def __getattr__(self, attr: str) -> object:
        return getattr(self.inner, attr)


async def test_refresher_loop_survives_errors_and_cancels(
    engine: sa.Engine, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "ailab.secrets")
    store = _store(engine, data_dir)
    store.set("K", "v1")
    dep = _dep("d", "K")
    refresher = SecretRefresher(_Flaky(store, 3), [dep])  # type: ignore[arg-type]
    refresher._versions["K"] = None  # as if resolved before K existed
    task = asyncio.create_task(refresher.run(0.01))
    for _ in range(300):
        if dep.api_key == "v1":
            break
        await asyncio.sleep(0.01)
    assert dep.api_key == "v1"
    store.rotate("K", "v2")
    for _ in range(300):
        if dep.api_key == "v2":
            break
        await asyncio.sleep(0.01)
    assert dep.api_key == "v2"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "secret refresh failed: RuntimeError" in caplog.text
    assert caplog.text.count("secret refresh failed") == 1, "a repeated failure is logged once"
    assert "sk-do-not-log" not in caplog.text and "recovered" in caplog.text
