"""Console sessions: password login with brute-force throttling, an opaque session cookie (stored hashed)
and a CSRF token (sent back in `X-CSRF-Token` on unsafe requests)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, insert, select

from ailab.access import schema as s
from ailab.access.audit import AuditLog
from ailab.access.identity import Identity, now_ms
from ailab.access.records import NotFound, User
from ailab.config import AccessSettings

COOKIE = "ailab_session"
CSRF_HEADER = "x-csrf-token"


class LoginFailed(Exception):
    """Wrong username or password (never says which)."""


class LoginThrottled(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins; try again in {int(retry_after) + 1} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    expires_ms: int

    def csrf_ok(self, header: str | None) -> bool:
        return header is not None and hmac.compare_digest(header.encode(), self.csrf_token.encode())


def session_hash(token: str) -> str:
    """How a session id is stored (the cookie itself never is)."""
    return hashlib.sha256(token.encode()).hexdigest()


_digest = session_hash


class Sessions:
    def __init__(self, engine: Engine, identity: Identity, audit: AuditLog, settings: AccessSettings) -> None:
        self.engine = engine
        self.identity = identity
        self.audit = audit
        self.settings = settings

    def login(self, username: str, password: str, client: str) -> tuple[str, Session]:
        oidc = self.settings.sso.oidc
        if oidc is not None and not oidc.local_passwords:
            self.audit.record(
                f"client:{client}", "auth.login_refused", username[:200], reason="local_passwords"
            )
            raise LoginFailed(f"password sign-in is switched off here: sign in with {oidc.name}")
        who = self._throttle_key(username)
        self._throttle(who, client)
        user = self.identity.check_password(username, password)
        if user is None:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(s.login_attempts).values(username=who, client=client[:64], ts_ms=now_ms())
                )
            self.audit.record(f"client:{client}", "auth.login_failed", username[:200])
            raise LoginFailed("wrong username or password")
        with self.engine.begin() as conn:
            conn.execute(delete(s.login_attempts).where(s.login_attempts.c.username == who))
        return self.start(user, client)

    def start(
        self, user: User, client: str, action: str = "auth.login", **detail: object
    ) -> tuple[str, Session]:
        """A new session for `user`, already authenticated (by password, or by a provider: `action`)."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        expires = now_ms() + int(self.settings.session_ttl_hours * 3600 * 1000)
        with self.engine.begin() as conn:
            conn.execute(
                insert(s.sessions).values(
                    id_hash=_digest(token),
                    user_id=user.id,
                    csrf_token=csrf,
                    created_ms=now_ms(),
                    expires_ms=expires,
                )
            )
        self.audit.record(f"user:{user.id}", action, user.id, client=client, **detail)
        return token, Session(user, csrf, expires)

    def _throttle_key(self, typed: str) -> str:
        """Failures count per user, however it is named (username or id); unknown names count as typed."""
        try:
            return self.identity.user(typed).id
        except NotFound:
            return typed[:200]

    def _throttle(self, username: str, client: str) -> None:
        window_ms = int(self.settings.login_window_seconds * 1000)
        since = now_ms() - window_ms
        a = s.login_attempts
        with self.engine.connect() as conn:
            for column, value in ((a.c.username, username), (a.c.client, client)):
                n, oldest = conn.execute(
                    select(func.count(), func.min(a.c.ts_ms)).where(column == value, a.c.ts_ms >= since)
                ).one()
                if n >= self.settings.login_max_failures:
                    raise LoginThrottled(max(0.0, (oldest + window_ms - now_ms()) / 1000))

    def resolve(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(s.sessions).where(s.sessions.c.id_hash == _digest(token)))
                .mappings()
                .first()
            )
        if row is None or row["expires_ms"] <= now_ms():
            return None
        user = self.identity.user(row["user_id"])
        if user.disabled:
            return None
        return Session(user, row["csrf_token"], row["expires_ms"])

    def alive(self, id_hash: str) -> bool:
        """Whether the session stored as `id_hash` still exists and has not expired."""
        with self.engine.connect() as conn:
            expires = conn.execute(
                select(s.sessions.c.expires_ms).where(s.sessions.c.id_hash == id_hash)
            ).scalar_one_or_none()
        return expires is not None and expires > now_ms()

    def end(self, id_hash: str) -> None:
        """End the session stored as `id_hash` (the provider no longer vouches for its user)."""
        with self.engine.begin() as conn:
            conn.execute(delete(s.sessions).where(s.sessions.c.id_hash == id_hash))

    def logout(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(s.sessions).where(s.sessions.c.id_hash == _digest(token)))
