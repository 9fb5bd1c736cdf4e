"""The vault backend against a real OpenBao dev server (KV v2), with token and AppRole auth."""

from __future__ import annotations

import socket
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
    SecretNotFound,
    SecretRefresher,
    SecretStoreUnavailable,
    open_secret_store,
)
from ailab.secrets.vault import VaultStore, parse_vault_time
from tests.secrets.conftest import Bao


def _vault(settings: SecretsSettings, tmp_path: Path, audit: AuditLog | None = None) -> VaultStore:
    store = open_secret_store(settings, sa.create_engine("sqlite://"), tmp_path, audit=audit)
    assert isinstance(store, VaultStore)
    return store


def test_token_auth_lifecycle(bao: Bao, tmp_path: Path) -> None:
    settings = bao.settings()
    store = _vault(settings, tmp_path)
    assert store.list() == [] and store.get("OPENAI") is None and store.version("OPENAI") is None
    assert store.delete("OPENAI") is False
    assert store.set("OPENAI", "sk-vault-1") == 1
    assert store.get("OPENAI") == "sk-vault-1" and store.version("OPENAI") == 1
    assert store.rotate("OPENAI", "sk-vault-2") == (2, None)
    version, generated = store.rotate("OPENAI")
    assert version == 3 and generated and store.get("OPENAI") == generated
    store.set("other.key", "x")
    metas = store.list()
    assert [(m.name, m.version, m.backend) for m in metas] == [
        ("OPENAI", 3, "vault"),
        ("other.key", 1, "vault"),
    ]
    assert all(m.updated_ms > 1_600_000_000_000 for m in metas)
    # Stored where the docs say: {mount}/{prefix}{name} as {"value": ...}
    raw = bao.client().secrets.kv.v2.read_secret_version(
        path=f"{settings.vault_prefix}OPENAI", mount_point="secret", raise_on_deleted_version=True
    )
    assert raw["data"]["data"] == {"value": generated}
    assert store.delete("OPENAI") is True
    assert store.get("OPENAI") is None and store.version("OPENAI") is None
    assert [m.name for m in store.list()] == ["other.key"]
    with pytest.raises(SecretNotFound):
        store.rotate("OPENAI")


def test_env_defaults_and_audit(bao: Bao, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", bao.url)
    monkeypatch.setenv("VAULT_TOKEN", bao.root_token)
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    migrate(engine, [*ACCESS_MIGRATIONS, *MIGRATIONS])
    audit = AuditLog(engine)
    settings = SecretsSettings(backend="vault", vault_prefix="/envtest")  # slashes normalised
    store = _vault(settings, tmp_path, audit)
    store.set("K", "sk-audited-value")
    store.get("K")
    store.delete("K")
    entries = [(e.action, e.target, e.detail) for e in reversed(audit.entries())]
    assert entries == [
        ("secret.write", "K", {"version": 1}),
        ("secret.read", "K", {"version": 1}),
        ("secret.delete", "K", {"version": 1}),
    ]
    engine.dispose()


def test_soft_deleted_latest_version_reads_as_missing(bao: Bao, tmp_path: Path) -> None:
    settings = bao.settings()
    store = _vault(settings, tmp_path)
    store.set("K", "v")
    bao.client().secrets.kv.v2.delete_latest_version_of_secret(
        path=f"{settings.vault_prefix}K", mount_point="secret"
    )
    assert store.get("K") is None and store.version("K") is None and store.list() == []


def test_bad_token_is_unavailable_without_the_token(bao: Bao, tmp_path: Path) -> None:
    token = "hvs.definitely-not-valid-token-4242"
    store = _vault(bao.settings(vault_token=token), tmp_path)
    for op in (lambda: store.get("K"), lambda: store.set("K", "v"), store.list, lambda: store.version("K")):
        with pytest.raises(SecretStoreUnavailable) as err:
            op()
        assert bao.url in str(err.value) and token not in str(err.value)
        assert "refused access" in str(err.value)


def test_unreachable_vault(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}"
    store = _vault(SecretsSettings(backend="vault", vault_url=url, vault_token="tok-secret"), tmp_path)
    with pytest.raises(SecretStoreUnavailable, match="is unreachable") as err:
        store.get("K")
    assert url in str(err.value) and "tok-secret" not in str(err.value)


def test_missing_configuration_is_explained(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="VAULT_ADDR"):
        _vault(SecretsSettings(backend="vault", vault_token="t"), tmp_path)
    with pytest.raises(SecretError, match="VAULT_TOKEN"):
        _vault(SecretsSettings(backend="vault", vault_url="http://127.0.0.1:1"), tmp_path)
    with pytest.raises(SecretError, match="vault_role_id"):
        _vault(
            SecretsSettings(backend="vault", vault_url="http://127.0.0.1:1", vault_auth="approle"), tmp_path
        )


def _approle(bao: Bao, prefix: str) -> tuple[str, str]:
    root = bao.client()
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    policy = f'path "secret/data/{prefix}*" {{ capabilities = ["create", "read", "update", "delete"] }}\n'
    policy += f'path "secret/metadata/{prefix}*" {{ capabilities = ["read", "list", "delete"] }}\n'
    root.sys.create_or_update_policy(name="ailab-test", policy=policy)
    root.auth.approle.create_or_update_approle("ailab-test", token_policies=["ailab-test"], token_ttl="10m")
    role_id = root.auth.approle.read_role_id("ailab-test")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("ailab-test")["data"]["secret_id"]
    return role_id, secret_id


def test_approle_auth_and_relogin(bao: Bao, tmp_path: Path) -> None:
    prefix = "approle-test/"
    role_id, secret_id = _approle(bao, prefix)
    settings = bao.settings(
        vault_auth="approle",
        vault_token=None,
        vault_role_id=role_id,
        vault_secret_id=secret_id,
        vault_prefix=prefix,
    )
    store = _vault(settings, tmp_path)
    assert store.list() == []
    assert store.set("K", "approle-value") == 1
    assert store.get("K") == "approle-value" and [m.name for m in store.list()] == ["K"]
    # The login token is revoked behind our back: the next call logs in again once and succeeds.
    first_token = store.client.token
    bao.client().auth.token.revoke(first_token)
    assert store.rotate("K", "approle-v2") == (2, None)
    assert store.client.token != first_token and store.get("K") == "approle-v2"
    assert store.delete("K") is True
    # The policy stops at the prefix: elsewhere is refused, and the message names neither credential.
    outside = _vault(settings.model_copy(update={"vault_prefix": "elsewhere/"}), tmp_path)
    with pytest.raises(SecretStoreUnavailable, match="refused access") as err:
        outside.set("K", "v")
    assert secret_id not in str(err.value) and role_id not in str(err.value)


def test_approle_bad_secret_id(bao: Bao, tmp_path: Path) -> None:
    role_id, _ = _approle(bao, "approle-test/")
    settings = bao.settings(
        vault_auth="approle", vault_role_id=role_id, vault_secret_id="wrong-secret-id-123"
    )
    with pytest.raises(SecretStoreUnavailable) as err:
        _vault(settings, tmp_path).get("K")
    assert "AppRole login failed" in str(err.value) and bao.url in str(err.value)
    assert "wrong-secret-id-123" not in str(err.value)


def test_refresher_with_vault(bao: Bao, tmp_path: Path) -> None:
    store = _vault(bao.settings(), tmp_path)
    store.set("UPSTREAM", "u1")
    dep = Deployment(
        id="d",
        group="g",
        provider="openai",
        provider_label="openai",
        price_id=None,
        model="m",
        api_base=None,
        api_key=None,
        api_key_ref="UPSTREAM",
    )
    refresher = SecretRefresher(store, [dep])
    refresher.resolve_all()
    assert dep.api_key == "u1"
    store.rotate("UPSTREAM", "u2")
    assert refresher.refresh_once() == ["UPSTREAM"] and dep.api_key == "u2"


def test_parse_vault_time() -> None:
    assert parse_vault_time("2026-01-02T03:04:05.123456789Z") == 1767323045123
    assert parse_vault_time("2026-01-02T03:04:05Z") == 1767323045000
    assert parse_vault_time("2026-01-02T04:04:05.5+01:00") == 1767323045500
    assert parse_vault_time("") == 0 and parse_vault_time("garbage") == 0
