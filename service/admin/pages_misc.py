"""Subscriber pages (read-only for now), the audit log, and staff user management (admins)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from service.admin import auth, queries
from service.admin.audit import audit_actions, list_audit_events, record_audit
from service.admin.campaign_queries import subscriber_deliveries
from service.admin.guard import admin_error, admin_only, page, staff_of
from service.admin.models import ROLES, StaffUser
from service.admin.queries import FilterError, SubscriberFilter
from service.admin.users import UserChangeError, change_role, list_staff, set_active
from service.bounces.stats import subscriber_bounces
from service.db import get_session
from service.forms import tokens_of
from service.newsletter.models import SUBSCRIBER_STATUSES
from service.web import settings_of

# -- subscribers ------------------------------------------------------------------------------


async def subscriber_list(request: Request) -> Response:
    params = request.query_params
    ctx: dict[str, Any] = {"statuses": SUBSCRIBER_STATUSES, "topics": settings_of(request).topics,
                           "params": params, "rows": [], "next_url": None, "error": None,
                           "notice": params.get("notice", ""), "export_url": "/admin/subscribers/export.csv"}
    try:
        status = params.get("status", "")
        if status and status not in SUBSCRIBER_STATUSES:
            raise FilterError(f"Status: expected one of {', '.join(SUBSCRIBER_STATUSES)}.")
        flt = SubscriberFilter(status=status, topic=params.get("topic", "")[:40], q=params.get("q", "").strip()[:200])
        after = queries.parse_cursor(params.get("after"))
    except FilterError as exc:
        return page(request, "admin/subscribers.html", {**ctx, "error": str(exc)}, 400)
    rows = await queries.list_subscribers(get_session(request), flt=flt, after=after, limit=queries.PAGE_SIZE + 1)
    if len(rows) > queries.PAGE_SIZE:
        rows = rows[: queries.PAGE_SIZE]
        cursor = queries.format_cursor(rows[-1].created_at, rows[-1].id)
        ctx["next_url"] = "/admin/subscribers?" + urlencode({**flt.query_args(), "after": cursor})
    export_url = "/admin/subscribers/export.csv" + ("?" + urlencode(flt.query_args()) if flt.query_args() else "")
    return page(request, "admin/subscribers.html", {**ctx, "rows": rows, "first_page": after is None,
                                                    "export_url": export_url})


async def subscriber_detail(request: Request) -> Response:
    subscriber = await queries.get_subscriber(get_session(request), request.path_params["subscriber_id"])
    if subscriber is None:
        return admin_error(request, 404, "There is no such subscriber.")
    deliveries = await subscriber_deliveries(get_session(request), subscriber_id=subscriber.id)
    bounces = await subscriber_bounces(get_session(request), subscriber_id=subscriber.id)
    return page(request, "admin/subscriber.html", {"subscriber": subscriber, "deliveries": deliveries,
                                                   "bounces": bounces,
                                                   "notice": request.query_params.get("notice", "")})


# -- audit log --------------------------------------------------------------------------------


async def audit_log(request: Request) -> Response:
    params = request.query_params
    session = get_session(request)
    ctx: dict[str, Any] = {"params": params, "actions": await audit_actions(session), "rows": [],
                           "next_url": None, "error": None}
    try:
        since = queries.parse_day(params.get("from"), "From")
        until = queries.parse_day(params.get("to"), "To")
        after = queries.parse_cursor(params.get("after"))
    except FilterError as exc:
        return page(request, "admin/audit.html", {**ctx, "error": str(exc)}, 400)
    import datetime as dt

    rows = await list_audit_events(
        session, action=params.get("action") or None, actor=params.get("actor") or None,
        since=queries.day_start(since) if since else None,
        until=queries.day_start(until + dt.timedelta(days=1)) if until else None,
        before=after, limit=queries.PAGE_SIZE + 1)
    if len(rows) > queries.PAGE_SIZE:
        rows = rows[: queries.PAGE_SIZE]
        args = {k: params[k] for k in ("action", "actor", "from", "to") if params.get(k)}
        ctx["next_url"] = "/admin/audit?" + urlencode({**args, "after": queries.format_cursor(rows[-1].created_at,
                                                                                             rows[-1].id)})
    return page(request, "admin/audit.html", {**ctx, "rows": rows, "first_page": after is None})


# -- users (admins only) ----------------------------------------------------------------------


async def _users_page(request: Request, *, error: str | None = None, invited: StaffUser | None = None,
                      link: str | None = None, form: dict[str, str] | None = None, status_code: int = 200) -> Response:
    users = await list_staff(get_session(request))
    return page(request, "admin/users.html", {"users": users, "roles": ROLES, "error": error, "invited": invited,
                                              "link": link, "form": form or {}}, status_code)


@admin_only
async def users(request: Request) -> Response:
    return await _users_page(request)


@admin_only
async def user_invite(request: Request) -> Response:
    async with request.form() as form:
        data = {k: str(form.get(k) or "") for k in ("email", "name", "role")}
    session = get_session(request)
    try:
        user = await auth.create_staff_user(session, email=data["email"], role=data["role"], name=data["name"])
    except ValueError as exc:
        return await _users_page(request, error=str(exc), form=data, status_code=422)
    await record_audit(session, request=request, action="user_invite", target_type="staff_user", target_id=user.id,
                       detail={"email": user.email, "role": user.role})
    link = auth.set_password_url(settings_of(request), tokens_of(request), user)
    return await _users_page(request, invited=user, link=link)


async def _target(request: Request) -> StaffUser | None:
    return await get_session(request).get(StaffUser, request.path_params["user_id"])


@admin_only
async def user_update(request: Request) -> Response:
    """One action per form: role=…, active=0/1, or password_link=1."""
    user = await _target(request)
    if user is None:
        return admin_error(request, 404, "There is no such staff account.")
    async with request.form() as form:
        data = {k: str(form.get(k)) for k in ("role", "active", "password_link") if form.get(k) is not None}
    session = get_session(request)
    try:
        if "role" in data:
            before = user.role
            if await change_role(session, user=user, role=data["role"]):
                await record_audit(session, request=request, action="user_role", target_type="staff_user",
                                   target_id=user.id, detail={"email": user.email, "from": before, "to": user.role})
        elif "active" in data:
            active = data["active"] == "1"
            if await set_active(session, user=user, active=active):
                await record_audit(session, request=request, action="user_reactivate" if active else "user_deactivate",
                                   target_type="staff_user", target_id=user.id, detail={"email": user.email})
        elif "password_link" in data:
            await record_audit(session, request=request, action="user_password_link", target_type="staff_user",
                               target_id=user.id, detail={"email": user.email})
            return await _users_page(request, invited=user,
                                     link=auth.set_password_url(settings_of(request), tokens_of(request), user))
        else:
            return admin_error(request, 422, "Nothing to change.")
    except UserChangeError as exc:
        return await _users_page(request, error=str(exc), status_code=409)
    if user.id == staff_of(request).id and not user.active:
        return RedirectResponse("/admin/login", status_code=303)
    return RedirectResponse("/admin/users", status_code=303)


routes: list[BaseRoute] = [
    Route("/subscribers", subscriber_list, name="admin_subscribers"),
    Route("/subscribers/{subscriber_id:int}", subscriber_detail, name="admin_subscriber"),
    Route("/audit", audit_log, name="admin_audit"),
    Route("/users", users, name="admin_users"),
    Route("/users/invite", user_invite, methods=["POST"], name="admin_user_invite"),
    Route("/users/{user_id:int}", user_update, methods=["POST"], name="admin_user_update"),
]
