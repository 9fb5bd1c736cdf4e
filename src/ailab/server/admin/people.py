"""Users and projects (with memberships and limits)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from ailab.access import (
    COOKIE,
    GrantDenied,
    NotFound,
    Principal,
    check_outranks,
    generate_password,
    holds,
    session_hash,
)
from ailab.server.admin.deps import ApiError, allow, require
from ailab.server.admin.models import LimitsBody, ProjectCreate, UserCreate, UserUpdate

if TYPE_CHECKING:
    from ailab.server.state import LabState


def router(state: LabState) -> APIRouter:
    r = APIRouter(prefix="/api", tags=["users and projects"])
    _user_routes(r, state)
    _project_routes(r, state)
    return r


def _user_routes(r: APIRouter, state: LabState) -> None:
    ident = state.access.identity
    manage_users = require(state, "users.manage")

    def outranks(p: Principal, role: str, what: str) -> None:
        """A role given (or a user changed) holds nothing the caller lacks: no climbing to admin."""
        try:
            check_outranks(p, state.access.roles.permissions(state.access.roles.check(role)), what)
        except GrantDenied as exc:
            raise ApiError(403, str(exc), "permission_denied") from None

    budgets = require(state, "budgets.manage")

    @r.get("/users", openapi_extra={"x-permission": "users.manage"})
    def list_users(_: Principal = manage_users) -> list[dict[str, Any]]:
        return [u.public() for u in ident.users()]

    @r.post("/users", status_code=201, openapi_extra={"x-permission": "users.manage"})
    def create_user(body: UserCreate, p: Principal = manage_users) -> dict[str, Any]:
        outranks(p, body.role, f"role {body.role!r}")
        password = body.password or generate_password()
        user = ident.create_user(p.name, body.username, body.role, password)
        out = user.public()
        if body.password is None:
            out["password"] = password  # shown once
        return out

    @r.get("/users/{user_id}", openapi_extra={"x-permission": "users.manage"})
    def get_user(user_id: str, _: Principal = manage_users) -> dict[str, Any]:
        return ident.user(user_id).public()

    @r.patch("/users/{user_id}", openapi_extra={"x-permission": "users.manage"})
    def update_user(
        user_id: str, body: UserUpdate, request: Request, p: Principal = manage_users
    ) -> dict[str, Any]:
        target = ident.user(user_id)
        outranks(p, target.role, f"user {target.username!r}")
        if body.role is not None:
            outranks(p, body.role, f"role {body.role!r}")
        own = request.cookies.get(COOKIE) if p.kind == "user" and p.user_id == target.id else None
        return ident.update_user(
            p.name,
            user_id,
            role=body.role,
            disabled=body.disabled,
            password=body.password,
            keep_session=session_hash(own) if own else None,
        ).public()

    @r.delete("/users/{user_id}", status_code=204, openapi_extra={"x-permission": "users.manage"})
    def delete_user(user_id: str, p: Principal = manage_users) -> None:
        target = ident.user(user_id)
        outranks(p, target.role, f"user {target.username!r}")
        ident.delete_user(p.name, user_id)

    @r.put("/users/{user_id}/limits", openapi_extra={"x-permission": "budgets.manage"})
    def user_limits(user_id: str, body: LimitsBody, p: Principal = budgets) -> dict[str, Any]:
        return ident.update_user(p.name, user_id, limits=body.to_limits()).public()


def _project_routes(r: APIRouter, state: LabState) -> None:
    ident = state.access.identity
    manage_projects = require(state, "projects.manage")
    budgets = require(state, "budgets.manage")
    see_projects = require(state, "projects.read.own")

    @r.get("/projects", openapi_extra={"x-permission": "projects.read.own"})
    def list_projects(p: Principal = see_projects) -> list[dict[str, Any]]:
        everything = holds(p, "projects.manage")
        return [pr.public() for pr in ident.projects() if everything or pr.id in p.projects]

    @r.post("/projects", status_code=201, openapi_extra={"x-permission": "projects.manage"})
    def create_project(body: ProjectCreate, p: Principal = manage_projects) -> dict[str, Any]:
        return ident.create_project(p.name, body.name).public()

    @r.get("/projects/{project_id}", openapi_extra={"x-permission": "projects.read.own"})
    def get_project(project_id: str, p: Principal = see_projects) -> dict[str, Any]:
        project = ident.project(project_id)
        try:
            allow(p, "projects.read.own", project_id=project.id)
        except ApiError:  # a project one may not see answers as one that does not exist
            raise NotFound("project", project_id) from None
        return project.public()

    @r.delete("/projects/{project_id}", status_code=204, openapi_extra={"x-permission": "projects.manage"})
    def delete_project(project_id: str, p: Principal = manage_projects) -> None:
        ident.delete_project(p.name, project_id)

    @r.put(
        "/projects/{project_id}/members/{user_id}",
        status_code=204,
        openapi_extra={"x-permission": "projects.manage"},
    )
    def add_member(project_id: str, user_id: str, p: Principal = manage_projects) -> None:
        ident.add_member(p.name, project_id, user_id)

    @r.delete(
        "/projects/{project_id}/members/{user_id}",
        status_code=204,
        openapi_extra={"x-permission": "projects.manage"},
    )
    def remove_member(project_id: str, user_id: str, p: Principal = manage_projects) -> None:
        ident.remove_member(p.name, project_id, user_id)

    @r.put("/projects/{project_id}/limits", openapi_extra={"x-permission": "budgets.manage"})
    def project_limits(project_id: str, body: LimitsBody, p: Principal = budgets) -> dict[str, Any]:
        return ident.update_project(p.name, project_id, body.to_limits()).public()
