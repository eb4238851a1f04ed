"""The admin area's routes, mounted under /admin behind AdminGuardMiddleware, and the pages
for signing in and out, setting and changing a password, and the dashboard."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from service.admin import (
    auth,
    pages_articles,
    pages_audit,
    pages_bounces,
    pages_bulk,
    pages_campaign_actions,
    pages_campaigns,
    pages_digest_rules,
    pages_inquiries,
    pages_mail,
    pages_reports,
    pages_settings,
    pages_subscriber_actions,
    pages_subscribers,
    pages_tokens,
    pages_twofactor,
    pages_users,
    pages_webhooks,
)
from service.admin.audit import record_audit
from service.admin.guard import (
    AdminGuardMiddleware,
    clear_session_cookie,
    login_binding,
    page,
    preauth_form_ok,
    set_login_cookie,
    set_session_cookie,
    staff_of,
)
from service.admin.pages_twofactor import start_code_step
from service.admin.recovery import RESET_ANSWER, request_password_reset
from service.admin.stats import (
    GROWTH_DAYS,
    bar_chart,
    inquiries_by_status,
    mail_trouble,
    subscriber_growth,
)
from service.bounces.stats import last_sent_campaign_rates
from service.campaigns.stats import campaign_rows
from service.command import cli_name
from service.db import get_session, utcnow
from service.forms import tokens_of
from service.inquiries.held import count_held_inquiries
from service.newsletter.counts import subscribers_by_status
from service.tokens import TokenError
from service.web import client_ip, error_response, settings_of
from service.webhooks.queries import disabled_by_failures

# -- sign-in / sign-out -----------------------------------------------------------------------


def _preauth_page(request: Request, template: str, ctx: dict[str, Any], status_code: int = 200) -> Response:
    """A sign-in or set-password form, with a form token bound to this browser's cookie."""
    binding, fresh = login_binding(request)
    response = page(request, template, {**ctx, "form_token": auth.login_form_token(tokens_of(request), binding)},
                    status_code)
    if fresh:
        set_login_cookie(response, request, binding)
    return response


_PREAUTH_REFUSED = ("This form has expired or did not come from this site's own page. Reload the page and "
                    "try again.")


async def _login_context(request: Request, **ctx: Any) -> dict[str, Any]:
    """The sign-in page's context; on a fresh install (no staff account) the command that creates one."""
    session = get_session(request)
    first_admin = None if await auth.count_staff_users(session) else f"{cli_name()} create-admin you@example.org"
    return {"next": "/admin/", "email": "", "error": None, "first_admin": first_admin, **ctx}


async def login(request: Request) -> Response:
    tokens = tokens_of(request)
    next_url = auth.safe_next(request.query_params.get("next"))
    if request.method == "GET":
        return _preauth_page(request, "admin/login.html", await _login_context(request, next=next_url))
    async with request.form() as form:
        email, password = str(form.get("email") or ""), str(form.get("password") or "")
        next_url = auth.safe_next(str(form.get("next") or ""))
        form_ok = preauth_form_ok(request, str(form.get("form_token") or ""))
    if not form_ok:
        return error_response(request, 403, _PREAUTH_REFUSED)
    session = get_session(request)
    now = utcnow()
    result = await auth.authenticate(session, email=email, password=password, ip=client_ip(request), now=now)
    if result.reason != "ok" or result.user is None:
        await record_audit(session, request=request, action="sign_in_failed",
                           target_type="staff_user", target_id=result.user.id if result.user else "",
                           detail={"email": email.strip()[:320], "reason": result.reason})
        error = auth.LOGIN_FAILED
        locked_until = result.user.locked_until if result.user is not None else None
        if result.reason == "locked" and result.password_ok and locked_until is not None:
            # only the owner (who knows the password) learns that the account exists and is locked
            error = auth.locked_message(locked_until, now)
        return _preauth_page(request, "admin/login.html",
                             await _login_context(request, next=next_url, email=email, error=error), status_code=401)
    if result.user.has_two_factor:  # not signed in until the code passed too
        return start_code_step(request, result.user, next_url)
    await record_audit(session, request=request, actor=result.user, action="sign_in",
                       target_type="staff_user", target_id=result.user.id)
    response = RedirectResponse(next_url, status_code=303)
    set_session_cookie(response, request, auth.session_cookie_value(tokens, result.user))
    return response


async def forgot_password(request: Request) -> Response:
    """Ask for a reset link by email: the same answer whether or not the address has an account."""
    ctx: dict[str, Any] = {"email": "", "sent": False, "error": None}
    if request.method == "GET":
        return _preauth_page(request, "admin/forgot_password.html", ctx)
    async with request.form() as form:
        email = str(form.get("email") or "").strip()
        form_ok = preauth_form_ok(request, str(form.get("form_token") or ""))
    if not form_ok:
        return error_response(request, 403, _PREAUTH_REFUSED)
    if not email:
        return _preauth_page(request, "admin/forgot_password.html",
                             {**ctx, "error": "Email: enter the address you sign in with."}, status_code=422)
    session = get_session(request)
    user, outcome = await request_password_reset(session, settings=settings_of(request), tokens=tokens_of(request),
                                                 email=email, ip=client_ip(request))
    await record_audit(session, request=request, action="password_reset_request", target_type="staff_user",
                       target_id=user.id if user else "", detail={"email": email[:320], "outcome": outcome})
    return _preauth_page(request, "admin/forgot_password.html", {**ctx, "sent": True, "answer": RESET_ANSWER})


async def logout(request: Request) -> Response:
    """Sign out everywhere: every cookie of this account stops working."""
    user = staff_of(request)
    user.session_version += 1
    await record_audit(get_session(request), request=request, action="sign_out", target_type="staff_user",
                       target_id=user.id)
    response = RedirectResponse("/admin/login", status_code=303)
    clear_session_cookie(response, request)
    return response


async def set_password_page(request: Request) -> Response:
    """An invitation's or an admin's set-password link (24 h), or a reset link asked for by email
    (1 h); either works once, and setting the password lifts a sign-in lock."""
    tokens = tokens_of(request)
    session = get_session(request)
    reset = request.url.path.startswith("/admin/reset-password/")
    purpose = "admin-reset-password" if reset else "admin-set-password"
    try:
        user = await auth.user_for_set_password(session, tokens, request.path_params["token"], purpose)
    except TokenError as exc:
        again = "Ask for a new one on the sign-in page." if reset else "Ask an admin for a new one."
        return error_response(request, 400 if not exc.expired else 410,
                              f"This set-password link cannot be used: {exc}. {again}")
    ctx: dict[str, Any] = {"account": user, "error": None}
    if request.method == "GET":
        return _preauth_page(request, "admin/set_password.html", ctx)
    async with request.form() as form:
        password, confirm = str(form.get("password") or ""), str(form.get("confirm") or "")
        form_ok = preauth_form_ok(request, str(form.get("form_token") or ""))
    if not form_ok:
        return error_response(request, 403, _PREAUTH_REFUSED)
    try:
        auth.check_new_password(password, confirm)
    except auth.PasswordError as exc:
        return _preauth_page(request, "admin/set_password.html", {**ctx, "error": str(exc)}, status_code=422)
    was_locked = user.locked_until is not None and user.locked_until > utcnow()
    await auth.set_password(session, user, password)
    await record_audit(session, request=request, actor=user, action="password_reset" if reset else "password_set",
                       target_type="staff_user", target_id=user.id,
                       detail={"unlocked": True} if was_locked else None)
    if user.has_two_factor:  # a new password is not a way round the second factor
        return start_code_step(request, user, "/admin/")
    user.last_login_at = utcnow()
    response = RedirectResponse("/admin/", status_code=303)
    set_session_cookie(response, request, auth.session_cookie_value(tokens, user))
    return response


async def account(request: Request) -> Response:
    """Change one's own password (ends every other session of the account)."""
    user = staff_of(request)
    ctx: dict[str, Any] = {"error": None, "error_field": None, "done": request.query_params.get("done") == "1"}
    if request.method == "GET":
        return page(request, "admin/account.html", ctx)
    async with request.form() as form:
        current = str(form.get("current") or "")
        password, confirm = str(form.get("password") or ""), str(form.get("confirm") or "")
    field = "current"  # the field the error is about, for the error style
    try:
        if not auth.verify_password(user.password_hash, current[: auth.MAX_PASSWORD_LENGTH]):
            raise auth.PasswordError("Current password: this is not your current password.")
        field = "password"
        auth.check_new_password(password, confirm)
    except auth.PasswordError as exc:
        return page(request, "admin/account.html", {**ctx, "error": str(exc), "error_field": field}, status_code=422)
    session = get_session(request)
    await auth.set_password(session, user, password)
    await record_audit(session, request=request, action="password_change", target_type="staff_user",
                       target_id=user.id)
    response = RedirectResponse("/admin/account?done=1", status_code=303)
    issued = request.state.admin_session.issued_at
    set_session_cookie(response, request, auth.session_cookie_value(tokens_of(request), user, issued))
    return response


# -- dashboard --------------------------------------------------------------------------------


async def dashboard(request: Request) -> Response:
    session = get_session(request)
    now = utcnow()
    growth = await subscriber_growth(session, now=now)
    chart = bar_chart([("bar-confirmed", [g.confirmed for g in growth]),
                       ("bar-unsubscribed", [g.unsubscribed for g in growth])],
                      [g.day.strftime("%d %b") for g in growth])
    return page(request, "admin/dashboard.html", {
        "week": await inquiries_by_status(session, since=now - dt.timedelta(days=7)),
        "all_inquiries": await inquiries_by_status(session),
        "subscribers": await subscribers_by_status(session),
        "growth": growth, "chart": chart, "growth_days": GROWTH_DAYS,
        "campaigns": await campaign_rows(session, limit=5),
        "mail": await mail_trouble(session, now=now), "max_age": _days(settings_of(request).outbox_max_age),
        "local_outbox": settings_of(request).uses_local_outbox,
        "held_count": await count_held_inquiries(session),
        "webhooks_disabled": await disabled_by_failures(session),
        "last_rates": await last_sent_campaign_rates(session),
    })


def _days(seconds: int) -> str:
    """OUTBOX_MAX_AGE in words: '5 days', '12 hours'."""
    if seconds % 86400 == 0:
        return f"{seconds // 86400} day{'s' if seconds != 86400 else ''}"
    hours = max(1, seconds // 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}"


async def _to_dashboard(scope: Scope, receive: Receive, send: Send) -> None:
    await RedirectResponse("/admin/", status_code=307)(scope, receive, send)


admin_routes: list[BaseRoute] = [
    Route("/", dashboard, name="admin_dashboard"),
    Route("/login", login, methods=["GET", "POST"], name="admin_login"),
    Route("/logout", logout, methods=["POST"], name="admin_logout"),
    Route("/set-password/{token}", set_password_page, methods=["GET", "POST"], name="admin_set_password"),
    Route("/reset-password/{token}", set_password_page, methods=["GET", "POST"], name="admin_reset_password"),
    Route("/forgot-password", forgot_password, methods=["GET", "POST"], name="admin_forgot_password"),
    Route("/account", account, methods=["GET", "POST"], name="admin_account"),
    *pages_twofactor.routes,
    *pages_bulk.routes,
    *pages_inquiries.routes,
    *pages_subscribers.routes,
    *pages_audit.routes,
    *pages_users.routes,
    *pages_settings.routes,
    *pages_mail.routes,
    *pages_campaigns.routes,
    *pages_campaign_actions.routes,
    *pages_articles.routes,
    *pages_digest_rules.routes,
    *pages_subscriber_actions.routes,
    *pages_bounces.routes,
    *pages_reports.routes,
    *pages_tokens.routes,
    *pages_webhooks.routes,
]

routes: list[BaseRoute] = [
    Route("/admin", AdminGuardMiddleware(_to_dashboard), methods=["GET", "HEAD"]),
    *pages_subscriber_actions.upload_routes,
    *pages_settings.upload_routes,
    Mount("/admin", routes=admin_routes, middleware=[Middleware(AdminGuardMiddleware)]),
]
