"""Users, projects and memberships (SQLAlchemy Core; SQLite or PostgreSQL). Every change is audited and bumps
`access_state.version`, which tells every gateway process to refresh its in-memory cache."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ailab.access import schema as s
from ailab.access.audit import AuditLog
from ailab.access.keys import new_id
from ailab.access.passwords import hash_password, verify_password
from ailab.access.policy import Roles
from ailab.access.records import Conflict, Limits, NotFound, Project, User

_LIMIT_COLUMNS = ("max_budget_pusd", "budget_duration", "rpm", "tpm")


def now_ms() -> int:
    return int(time.time() * 1000)


def bump(conn: Connection) -> None:
    conn.execute(
        update(s.access_state).where(s.access_state.c.id == 1).values(version=s.access_state.c.version + 1)
    )


class Identity:
    def __init__(self, engine: Engine, audit: AuditLog, roles: Roles) -> None:
        self.engine = engine
        self.audit = audit
        self.roles = roles

    def version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(s.access_state.c.version)).scalar_one())

    # -- users ----------------------------------------------------------------------------------------

    def create_user(
        self, actor: str, username: str, role: str, password: str | None = None, limits: Limits | None = None
    ) -> User:
        if not username.strip():
            raise ValueError("username must not be empty")
        self.roles.check(role)
        uid = new_id("usr")
        values = {
            "id": uid,
            "username": username,
            "role": role,
            "disabled": False,
            "created_ms": now_ms(),
            "password_hash": hash_password(password) if password else None,
            **(limits or Limits()).columns(),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(s.users).values(**values))
                bump(conn)
        except IntegrityError:
            raise Conflict(f"user {username!r} already exists") from None
        self.audit.record(actor, "user.create", uid, username=username, role=role)
        return self.user(uid)

    def users(self) -> list[User]:
        with self.engine.connect() as conn:
            members = _memberships(conn)
            rows = conn.execute(select(s.users).order_by(s.users.c.username)).mappings().all()
        return [_user(r, members.get(r["id"], ())) for r in rows]

    def user(self, ident: str) -> User:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(s.users).where((s.users.c.id == ident) | (s.users.c.username == ident)))
                .mappings()
                .first()
            )
            if row is None:
                raise NotFound("user", ident)
            members = _memberships(conn, user_id=row["id"])
        return _user(row, members.get(row["id"], ()))

    def update_user(
        self,
        actor: str,
        ident: str,
        *,
        role: str | None = None,
        disabled: bool | None = None,
        password: str | None = None,
        limits: Limits | None = None,
        keep_session: str | None = None,
    ) -> User:
        """Change a user. A new password or disabling ends the user's sessions (all but `keep_session`, the
        hashed id of the caller's own), so a re-enabled user or an old password brings none back."""
        user = self.user(ident)
        values: dict[str, Any] = {}
        if role is not None:
            values["role"] = self.roles.check(role)
        if disabled is not None:
            values["disabled"] = disabled
        if password is not None:
            values["password_hash"] = hash_password(password)
        if limits is not None:
            values.update(limits.columns())
        if values:
            with self.engine.begin() as conn:
                conn.execute(update(s.users).where(s.users.c.id == user.id).values(**values))
                if password is not None or disabled:
                    ended = delete(s.sessions).where(s.sessions.c.user_id == user.id)
                    if keep_session is not None and not disabled:
                        ended = ended.where(s.sessions.c.id_hash != keep_session)
                    conn.execute(ended)
                bump(conn)
            changed = sorted(k for k in values if k != "password_hash") + (["password"] if password else [])
            self.audit.record(actor, "user.update", user.id, changed=changed)
        return self.user(user.id)

    def delete_user(self, actor: str, ident: str) -> None:
        user = self.user(ident)
        with self.engine.begin() as conn:
            conn.execute(delete(s.api_keys).where(s.api_keys.c.user_id == user.id))
            conn.execute(delete(s.memberships).where(s.memberships.c.user_id == user.id))
            conn.execute(delete(s.sessions).where(s.sessions.c.user_id == user.id))
            conn.execute(delete(s.users).where(s.users.c.id == user.id))
            bump(conn)
        self.audit.record(actor, "user.delete", user.id, username=user.username)

    def check_password(self, username: str, password: str) -> User | None:
        try:
            user = self.user(username)
        except NotFound:
            verify_password(None, password)  # same work as a real check
            return None
        if user.disabled or not verify_password(user.password_hash, password):
            return None
        return user

    def count_users(self) -> int:
        return len(self.users())

    # -- projects -------------------------------------------------------------------------------------

    def create_project(self, actor: str, name: str, limits: Limits | None = None) -> Project:
        if not name.strip():
            raise ValueError("project name must not be empty")
        pid = new_id("prj")
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(s.projects).values(
                        id=pid, name=name, created_ms=now_ms(), **(limits or Limits()).columns()
                    )
                )
                bump(conn)
        except IntegrityError:
            raise Conflict(f"project {name!r} already exists") from None
        self.audit.record(actor, "project.create", pid, name=name)
        return self.project(pid)

    def projects(self) -> list[Project]:
        with self.engine.connect() as conn:
            members = _members_by_project(conn)
            rows = conn.execute(select(s.projects).order_by(s.projects.c.name)).mappings().all()
        return [_project(r, members.get(r["id"], ())) for r in rows]

    def project(self, ident: str) -> Project:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(s.projects).where((s.projects.c.id == ident) | (s.projects.c.name == ident))
                )
                .mappings()
                .first()
            )
            if row is None:
                raise NotFound("project", ident)
            members = _members_by_project(conn, project_id=row["id"])
        return _project(row, members.get(row["id"], ()))

    def update_project(self, actor: str, ident: str, limits: Limits) -> Project:
        project = self.project(ident)
        with self.engine.begin() as conn:
            conn.execute(update(s.projects).where(s.projects.c.id == project.id).values(**limits.columns()))
            bump(conn)
        self.audit.record(actor, "project.update", project.id, **limits.public())
        return self.project(project.id)

    def delete_project(self, actor: str, ident: str) -> None:
        project = self.project(ident)
        with self.engine.begin() as conn:
            conn.execute(delete(s.api_keys).where(s.api_keys.c.project_id == project.id))
            conn.execute(delete(s.memberships).where(s.memberships.c.project_id == project.id))
            conn.execute(delete(s.projects).where(s.projects.c.id == project.id))
            bump(conn)
        self.audit.record(actor, "project.delete", project.id, name=project.name)

    def add_member(self, actor: str, project: str, user: str) -> None:
        p, u = self.project(project), self.user(user)
        if u.id in p.members:
            return
        with self.engine.begin() as conn:
            conn.execute(insert(s.memberships).values(user_id=u.id, project_id=p.id))
            bump(conn)
        self.audit.record(actor, "project.member.add", p.id, user=u.id)

    def remove_member(self, actor: str, project: str, user: str) -> None:
        p, u = self.project(project), self.user(user)
        with self.engine.begin() as conn:
            conn.execute(
                delete(s.memberships).where(
                    s.memberships.c.user_id == u.id, s.memberships.c.project_id == p.id
                )
            )
            conn.execute(
                update(s.api_keys)
                .where(
                    s.api_keys.c.user_id == u.id,
                    s.api_keys.c.project_id == p.id,
                    s.api_keys.c.revoked_ms.is_(None),
                )
                .values(revoked_ms=now_ms())
            )
            bump(conn)
        self.audit.record(actor, "project.member.remove", p.id, user=u.id)


def _memberships(conn: Connection, user_id: str | None = None) -> dict[str, tuple[str, ...]]:
    stmt = select(s.memberships.c.user_id, s.memberships.c.project_id)
    if user_id:
        stmt = stmt.where(s.memberships.c.user_id == user_id)
    out: dict[str, list[str]] = {}
    for uid, pid in conn.execute(stmt):
        out.setdefault(uid, []).append(pid)
    return {k: tuple(sorted(v)) for k, v in out.items()}


def _members_by_project(conn: Connection, project_id: str | None = None) -> dict[str, tuple[str, ...]]:
    stmt = select(s.memberships.c.project_id, s.memberships.c.user_id)
    if project_id:
        stmt = stmt.where(s.memberships.c.project_id == project_id)
    out: dict[str, list[str]] = {}
    for pid, uid in conn.execute(stmt):
        out.setdefault(pid, []).append(uid)
    return {k: tuple(sorted(v)) for k, v in out.items()}


def _user(row: Any, projects: tuple[str, ...]) -> User:
    return User(
        row["id"],
        row["username"],
        row["role"],
        bool(row["disabled"]),
        row["created_ms"],
        Limits.from_row(row),
        projects,
        row["password_hash"],
    )


def _project(row: Any, members: tuple[str, ...]) -> Project:
    return Project(row["id"], row["name"], row["created_ms"], Limits.from_row(row), members)
