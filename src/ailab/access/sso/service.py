"""SSO sign-ins end to end: start (state, nonce, PKCE), finish (verify, map, create or update the user,
open a session), the relayed device flow for `ailab login`, and the periodic check that ends the sessions
of users the provider no longer vouches for. Every sign-in, mapping change and refusal is audited."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ailab.access.identity import now_ms
from ailab.access.records import ApiKey, Conflict, NotFound, User
from ailab.access.service import AccessService
from ailab.access.sessions import Session, session_hash
from ailab.access.sso.jwks import TokenRefused
from ailab.access.sso.mapping import Mapped, Refused, map_claims
from ailab.access.sso.oidc import OidcClient, ProviderError, ProviderSaysNo, SignIn
from ailab.access.sso.store import PendingLogin, SsoSession, SsoStore
from ailab.config import OidcSettings

log = logging.getLogger(__name__)


class SignInRefused(Exception):
    """Shown to the person signing in (never a secret); already audited."""


class TooManySignIns(SignInRefused):
    """More sign-ins in progress than the lab keeps (a flood of /auth/oidc/login)."""


@dataclass(frozen=True)
class Started:
    url: str
    state: str


class SsoService:
    def __init__(
        self,
        access: AccessService,
        settings: OidcSettings,
        resolve_secret: Callable[[str | None], str | None],
    ) -> None:
        self.access = access
        self.settings = settings
        self.store = SsoStore(access.audit.engine, access.audit.mac_key())
        self._resolve_secret = resolve_secret
        self._client: OidcClient | None = None

    @property
    def client(self) -> OidcClient:
        if self._client is None:  # built on first use: the provider may start after the lab
            self._client = OidcClient(self.settings, self._resolve_secret(self.settings.client_secret))
        return self._client

    @property
    def actor(self) -> str:
        return f"sso:{self.settings.issuer}"[:200]

    def refuse(self, why: str, client: str, **detail: Any) -> SignInRefused:
        self.access.audit.record(
            f"client:{client}", "sso.refused", self.settings.issuer[:400], reason=why, **detail
        )
        return SignInRefused(why)

    # -- browser sign-in ---------------------------------------------------------------------------

    def begin(self, redirect_uri: str, next_url: str | None) -> Started:
        try:
            url, state, nonce, verifier = self.client.authorization_url(redirect_uri)
        except ProviderError as exc:
            raise SignInRefused(str(exc)) from None
        ttl = int(self.settings.login_ttl_seconds * 1000)
        if not self.store.begin(state, PendingLogin(nonce, verifier, redirect_uri, next_url, now_ms()), ttl):
            raise TooManySignIns("too many sign-ins in progress; try again in a few minutes")
        return Started(url, state)

    def finish(self, state: str, code: str, client: str) -> tuple[str, Session, str | None]:
        pending = self.store.take(state)
        if pending is None:
            raise self.refuse("unknown or already used sign-in state (start again)", client)
        if pending.created_ms < now_ms() - int(self.settings.login_ttl_seconds * 1000):
            raise self.refuse("the sign-in took too long (start again)", client)
        try:
            signed = self.client.exchange(code, pending.verifier, pending.redirect_uri, pending.nonce)
        except (ProviderError, TokenRefused) as exc:
            raise self.refuse(f"the provider's answer was refused: {exc}", client) from None
        user = self.sign_in(signed.claims, client)
        token, session = self.access.sessions.start(user, client, "sso.login", issuer=self.settings.issuer)
        self._track(session_hash(token), user, signed)
        return token, session, pending.next

    def _track(self, handle: str, user: User, signed: SignIn) -> None:
        next_check = now_ms() + int(self.settings.refresh_interval_seconds * 1000)
        sess = SsoSession(
            handle, user.id, self.settings.issuer, str(signed.claims["sub"]), signed.refresh_token
        )
        self.store.track(sess, next_check)

    # -- claims -> user ----------------------------------------------------------------------------

    def sign_in(self, claims: dict[str, Any], client: str) -> User:
        try:
            mapped = map_claims(claims, self.settings, self.access.roles)
        except Refused as exc:
            raise self.refuse(str(exc), client, subject=str(claims.get("sub"))[:255]) from None
        user = self._user_for(str(claims["sub"]), mapped)
        if user.disabled:
            raise self.refuse(f"user {user.username!r} is disabled in the lab", client)
        return self._apply(user, mapped)

    def _user_for(self, subject: str, mapped: Mapped) -> User:
        ident = self.access.identity
        uid = self.store.linked_user(self.settings.issuer, subject)
        if uid is not None:
            try:
                return ident.user(uid)
            except NotFound:
                pass  # deleted in the lab: a new sign-in makes a new user
        try:
            user = ident.user(mapped.username)  # invited by name before their first sign-in
        except NotFound:
            try:
                user = ident.create_user(self.actor, mapped.username, mapped.role)
            except Conflict:
                user = ident.user(mapped.username)
        self.store.link(self.settings.issuer, subject, user.id)
        self.access.audit.record(self.actor, "sso.link", user.id, subject=subject[:255])
        return user

    def _apply(self, user: User, mapped: Mapped) -> User:
        """The mapping, re-applied: role and the memberships of mapped projects (others are left alone)."""
        ident = self.access.identity
        changes: dict[str, Any] = {}
        if user.role != mapped.role:
            ident.update_user(self.actor, user.id, role=mapped.role)
            changes["role"] = [user.role, mapped.role]
        names = {p.id: p.name for p in ident.projects()}
        have = {names[p] for p in user.projects if p in names}
        for name in sorted(set(mapped.projects) - have):
            if name not in names.values():
                ident.create_project(self.actor, name)
            ident.add_member(self.actor, name, user.id)
        gone = sorted((have & mapped.managed_projects) - set(mapped.projects))
        for name in gone:
            ident.remove_member(self.actor, name, user.id)
        added = sorted(set(mapped.projects) - have)
        if added or gone:
            changes["projects"] = {"added": added, "removed": gone}
        if changes:
            self.access.audit.record(
                self.actor, "sso.mapping_change", user.id, groups=list(mapped.groups)[:50], **changes
            )
        return ident.user(user.id)

    # -- device flow for `ailab login` -------------------------------------------------------------

    def device_start(self) -> dict[str, Any]:
        try:
            data = self.client.device_start()
        except ProviderError as exc:
            raise SignInRefused(str(exc)) from None
        keep = (
            "device_code",
            "user_code",
            "verification_uri",
            "verification_uri_complete",
            "expires_in",
            "interval",
        )
        return {k: data[k] for k in keep if k in data}

    def device_finish(self, device_code: str, client: str) -> tuple[ApiKey, str, User]:
        """A short-lived key for the user who approved `device_code`.

        Raises ProviderError(error=authorization_pending | slow_down) while they have not yet."""
        try:
            signed = self.client.device_poll(device_code)
        except TokenRefused as exc:
            raise self.refuse(f"the provider's answer was refused: {exc}", client) from None
        user = self.sign_in(signed.claims, client)
        expires = now_ms() + int(self.settings.cli_key_hours * 3600 * 1000)
        key, token = self.access.keys.create(self.actor, user=user.id, name="ailab login", expires_ms=expires)
        self.access.audit.record(
            f"user:{user.id}", "sso.login", user.id, client=client, via="device", key=key.id
        )
        self._track(f"key:{key.id}", user, signed)
        return key, token, user

    # -- does the provider still vouch for them? ---------------------------------------------------

    def check_sessions(self) -> int:
        """Refresh every due session with the provider; end those it refuses. Returns how many ended."""
        ended = 0
        for sess in self.store.due(lease_ms=60_000):
            next_check = now_ms() + int(self.settings.refresh_interval_seconds * 1000)
            if not self._alive(sess.session_hash):  # signed out, expired or revoked: nothing to end
                self.store.forget(sess.session_hash)
                continue
            if sess.refresh_token is None:
                self.store.checked(sess.session_hash, None, next_check)  # nothing to ask with
                continue
            try:
                signed = self.client.refresh(sess.refresh_token)
                if signed.claims:
                    self.sign_in({"sub": sess.subject, **signed.claims}, "refresh")
            except (ProviderSaysNo, SignInRefused, TokenRefused) as exc:
                self._end(sess, str(exc))
                ended += 1
                continue
            except ProviderError as exc:  # the provider is down: try again later, keep the session
                log.warning("sso: could not refresh a session with %s: %s", self.settings.issuer, exc)
                self.store.checked(sess.session_hash, None, next_check)
                continue
            self.store.checked(sess.session_hash, signed.refresh_token, next_check)
        return ended

    def _alive(self, handle: str) -> bool:
        if not handle.startswith("key:"):
            return self.access.sessions.alive(handle)
        try:
            key = self.access.keys.key(handle.removeprefix("key:"))
        except NotFound:
            return False
        return key.revoked_ms is None and (key.expires_ms is None or key.expires_ms > now_ms())

    def _end(self, sess: SsoSession, why: str) -> None:
        if sess.session_hash.startswith("key:"):
            kid = sess.session_hash.removeprefix("key:")
            with contextlib.suppress(NotFound):  # deleted meanwhile
                self.access.keys.revoke(self.actor, kid)
        else:
            self.access.sessions.end(sess.session_hash)
        self.store.forget(sess.session_hash)
        self.access.audit.record(self.actor, "sso.session_ended", sess.user_id, reason=why[:300])
