"""Staff accounts, for admins only: the list, inviting a user (emailed, through the outbox, a
one-time link to set a password, which is shown too), changing a role, deactivating and
reactivating, and a new set-password link. Every change is audit-logged; the last active admin
cannot be demoted or deactivated."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from service.admin import auth
from service.admin.audit import record_audit
from service.admin.guard import admin_error, admin_only, get_or_404, page, staff_of
from service.admin.models import ROLES, StaffUser
from service.admin.recovery import email_invitation
from service.admin.twofactor import two_factor_required
from service.admin.users import UserChangeError, change_role, list_staff, set_active
from service.db import get_session
from service.forms import tokens_of
from service.web import settings_of


async def users_page(request: Request, *, error: str | None = None, invited: StaffUser | None = None,
                      link: str | None = None, emailed: bool = False, form: dict[str, str] | None = None,
                      status_code: int = 200) -> Response:
    session = get_session(request)
    users = await list_staff(session)
    return page(request, "admin/users.html", {"users": users, "roles": ROLES, "error": error, "invited": invited,
                                              "link": link, "emailed": emailed, "form": form or {},
                                              "two_factor_required": await two_factor_required(session)},
                status_code)


@admin_only
async def users(request: Request) -> Response:
    return await users_page(request)


@admin_only
async def user_invite(request: Request) -> Response:
    async with request.form() as form:
        data = {k: str(form.get(k) or "") for k in ("email", "name", "role")}
    session = get_session(request)
    try:
        user = await auth.create_staff_user(session, email=data["email"], role=data["role"], name=data["name"])
    except ValueError as exc:
        return await users_page(request, error=str(exc), form=data, status_code=422)
    mailed = await email_invitation(session, settings_of(request), tokens_of(request), user,
                                    inviter=staff_of(request).name or staff_of(request).email)
    await record_audit(session, request=request, action="user_invite", target_type="staff_user", target_id=user.id,
                       detail={"email": user.email, "role": user.role, "emailed": bool(mailed)})
    link = mailed or auth.set_password_url(settings_of(request), tokens_of(request), user)
    return await users_page(request, invited=user, link=link, emailed=bool(mailed))


@admin_only
async def user_update(request: Request) -> Response:
    """One action per form: role=…, active=0/1, or password_link=1."""
    session = get_session(request)
    user = await get_or_404(session, StaffUser, request.path_params["user_id"], what="staff account")
    async with request.form() as form:
        data = {k: str(form.get(k)) for k in ("role", "active", "password_link") if form.get(k) is not None}
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
            return await users_page(request, invited=user,
                                     link=auth.set_password_url(settings_of(request), tokens_of(request), user))
        else:
            return admin_error(request, 422, "Nothing to change.")
    except UserChangeError as exc:
        return await users_page(request, error=str(exc), status_code=409)
    if user.id == staff_of(request).id and not user.active:
        return RedirectResponse("/admin/login", status_code=303)
    return RedirectResponse("/admin/users", status_code=303)


routes: list[BaseRoute] = [
    Route("/users", users, name="admin_users"),
    Route("/users/invite", user_invite, methods=["POST"], name="admin_user_invite"),
    Route("/users/{user_id:int}", user_update, methods=["POST"], name="admin_user_update"),
]
