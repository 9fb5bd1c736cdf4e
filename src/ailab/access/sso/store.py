"""What SSO keeps in the database: sign-ins in progress (state, nonce, PKCE verifier; single-use), the link
between a provider's subject and a lab user, and, per console session, the sealed refresh token that lets
the lab ask the provider again whether the user still exists.

Refresh tokens are AES-256-GCM sealed under a key derived from the lab's secret key (the audit MAC key,
derived once more), so a copy of the database alone does not hold a usable credential for the provider.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)

from ailab.access.identity import now_ms

metadata = MetaData()
MAX_PENDING = 10_000  # sign-ins started and not finished within login_ttl_seconds

sso_logins = Table(
    "sso_logins",
    metadata,
    Column("state_hash", String(64), primary_key=True),
    Column("nonce", String(128), nullable=False),
    Column("verifier", String(128), nullable=False),
    Column("redirect_uri", String(1000), nullable=False),
    Column("next", String(1000)),
    Column("created_ms", BigInteger, nullable=False),
)

sso_identities = Table(
    "sso_identities",
    metadata,
    Column("issuer", String(400), primary_key=True),
    Column("subject", String(255), primary_key=True),
    Column("user_id", String(32), nullable=False, index=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("last_login_ms", BigInteger, nullable=False),
)

sso_sessions = Table(
    "sso_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),  # sessions.id_hash (or the CLI key's id)
    Column("user_id", String(32), nullable=False, index=True),
    Column("issuer", String(400), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("refresh_token", Text),  # sealed
    Column("next_check_ms", BigInteger, nullable=False),
)


def create_tables(conn: Connection) -> None:
    metadata.create_all(conn)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class PendingLogin:
    nonce: str
    verifier: str
    redirect_uri: str
    next: str | None
    created_ms: int


@dataclass(frozen=True)
class SsoSession:
    session_hash: str
    user_id: str
    issuer: str
    subject: str
    refresh_token: str | None


class SsoStore:
    def __init__(self, engine: Engine, mac_key: bytes) -> None:
        self.engine = engine
        self._key = hmac.new(mac_key, b"ailab sso refresh tokens v1", hashlib.sha256).digest()

    # -- sign-ins in progress ----------------------------------------------------------------------

    def begin(self, state: str, pending: PendingLogin, ttl_ms: int) -> bool:
        """Keep a started sign-in; False when too many are in progress (anyone may start one)."""
        with self.engine.begin() as conn:
            conn.execute(delete(sso_logins).where(sso_logins.c.created_ms < now_ms() - ttl_ms))
            if conn.execute(select(func.count()).select_from(sso_logins)).scalar_one() >= MAX_PENDING:
                return False
            conn.execute(
                insert(sso_logins).values(
                    state_hash=_digest(state),
                    nonce=pending.nonce,
                    verifier=pending.verifier,
                    redirect_uri=pending.redirect_uri,
                    next=pending.next,
                    created_ms=pending.created_ms,
                )
            )
        return True

    def take(self, state: str) -> PendingLogin | None:
        """The sign-in begun with `state`, removed in the same transaction: a state is good exactly once."""
        with self.engine.begin() as conn:
            row = (
                conn.execute(select(sso_logins).where(sso_logins.c.state_hash == _digest(state)))
                .mappings()
                .first()
            )
            if row is None:
                return None
            gone = conn.execute(delete(sso_logins).where(sso_logins.c.state_hash == _digest(state)))
            if gone.rowcount != 1:  # another request took it between our read and delete
                return None
        return PendingLogin(
            row["nonce"], row["verifier"], row["redirect_uri"], row["next"], row["created_ms"]
        )

    # -- subject <-> user --------------------------------------------------------------------------

    def linked_user(self, issuer: str, subject: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(sso_identities.c.user_id).where(
                    sso_identities.c.issuer == issuer, sso_identities.c.subject == subject
                )
            ).scalar_one_or_none()
        return None if value is None else str(value)

    def link(self, issuer: str, subject: str, user_id: str) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(sso_identities)
                .where(sso_identities.c.issuer == issuer, sso_identities.c.subject == subject)
                .values(user_id=user_id, last_login_ms=now_ms())
            )
            if done.rowcount == 0:
                conn.execute(
                    insert(sso_identities).values(
                        issuer=issuer,
                        subject=subject,
                        user_id=user_id,
                        created_ms=now_ms(),
                        last_login_ms=now_ms(),
                    )
                )

    # -- sessions the provider vouches for ---------------------------------------------------------

    def track(self, session: SsoSession, next_check_ms: int) -> None:
        sealed = self._seal(session.refresh_token, session.session_hash) if session.refresh_token else None
        with self.engine.begin() as conn:
            conn.execute(
                insert(sso_sessions).values(
                    session_hash=session.session_hash,
                    user_id=session.user_id,
                    issuer=session.issuer,
                    subject=session.subject,
                    refresh_token=sealed,
                    next_check_ms=next_check_ms,
                )
            )

    def due(self, lease_ms: int, limit: int = 100) -> list[SsoSession]:
        """Sessions due for a check, each claimed (its next check pushed by `lease_ms`) so that only one
        worker refreshes it: a rotated refresh token used twice would look like a revoked one."""
        t = sso_sessions
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.next_check_ms <= now_ms()).limit(limit)).mappings().all()
        claimed = []
        for r in rows:
            with self.engine.begin() as conn:
                won = conn.execute(
                    update(t)
                    .where(t.c.session_hash == r["session_hash"], t.c.next_check_ms == r["next_check_ms"])
                    .values(next_check_ms=now_ms() + lease_ms)
                )
            if won.rowcount == 1:
                claimed.append(self._session(r))
        return claimed

    def due_now(self) -> None:
        """Every session is due (tests, and `ailab` admins who want the check now)."""
        with self.engine.begin() as conn:
            conn.execute(update(sso_sessions).values(next_check_ms=0))

    def sessions(self) -> list[SsoSession]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(sso_sessions)).mappings().all()
        return [self._session(r) for r in rows]

    def checked(self, session_hash: str, refresh_token: str | None, next_check_ms: int) -> None:
        values: dict[str, Any] = {"next_check_ms": next_check_ms}
        if refresh_token:  # the provider rotated it
            values["refresh_token"] = self._seal(refresh_token, session_hash)
        with self.engine.begin() as conn:
            conn.execute(
                update(sso_sessions).where(sso_sessions.c.session_hash == session_hash).values(**values)
            )

    def forget(self, session_hash: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(sso_sessions).where(sso_sessions.c.session_hash == session_hash))

    def _session(self, row: Any) -> SsoSession:
        token = self._unseal(row["refresh_token"], row["session_hash"]) if row["refresh_token"] else None
        return SsoSession(row["session_hash"], row["user_id"], row["issuer"], row["subject"], token)

    def _seal(self, value: str, context: str) -> str:
        nonce = os.urandom(12)
        return (nonce + AESGCM(self._key).encrypt(nonce, value.encode(), context.encode())).hex()

    def _unseal(self, blob: str, context: str) -> str | None:
        raw = bytes.fromhex(blob)
        try:
            return AESGCM(self._key).decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (InvalidTag, ValueError):
            return None  # sealed under another secret key: treated as no refresh token
