"""The pages of two-factor sign-in (`service.admin.twofactor`): the code step of signing in
(open, like the sign-in form: a browser holding a pending token from a correct password),
one's own set-up page under Your account (enrol, new recovery codes, switch off), and the
admins' controls on the Users page (require it of everyone, remove someone's lost factor).
Every form carries a CSRF token: the code step the pre-session form token, the rest the
session's, checked by the guard."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from service.admin import auth
from service.admin import twofactor as tf
from service.admin.audit import Actor, record_audit
from service.admin.guard import (
    admin_only,
    get_or_404,
    login_binding,
    page,
    preauth_form_ok,
    set_login_cookie,
    set_session_cookie,
    staff_of,
)
from service.admin.models import StaffUser
from service.admin.pages_users import users_page
from service.db import get_session, utcnow
from service.forms import tokens_of
from service.tokens import TokenError
from service.web import client_ip, error_response, settings_of

PENDING_COOKIE = "tidings_2fa"
TWO_FACTOR_PATH = "/admin/account/two-factor"
_EXPIRED = "Signing in took too long or was not started here. Sign in again with your email and password."


def start_code_step(request: Request, user: StaffUser, next_url: str) -> Response:
    """After a correct password (or a new one set through a link) for an account with a second
    factor: no session yet, only the pending token, and on to the code step."""
    response = RedirectResponse("/admin/login/code", status_code=303)
    response.set_cookie(PENDING_COOKIE, tf.pending_token(tokens_of(request), user, next_url),
                        max_age=tf.PENDING_SECONDS, path="/admin", httponly=True, samesite="lax",
                        secure=settings_of(request).https)
    return response


def _code_page(request: Request, ctx: dict[str, Any], status_code: int = 200) -> Response:
    binding, fresh = login_binding(request)
    response = page(request, "admin/login_code.html",
                    {"error": None, **ctx, "form_token": auth.login_form_token(tokens_of(request), binding)},
                    status_code)
    if fresh:
        set_login_cookie(response, request, binding)
    return response


async def code_step(request: Request) -> Response:
    """The second step of signing in: an authenticator code or a recovery code. A wrong one
    counts toward the lockout exactly as a wrong password does."""
    tokens = tokens_of(request)
    pending = tf.read_pending(tokens, request.cookies.get(PENDING_COOKIE))
    session = get_session(request)
    user = await session.get(StaffUser, pending.user_id) if pending else None
    if (pending is None or user is None or not user.active or user.session_version != pending.version
            or not user.has_two_factor):
        return error_response(request, 400, _EXPIRED)
    if request.method == "GET":
        return _code_page(request, {})
    async with request.form() as form:
        code = str(form.get("code") or "")[:100]
        form_ok = preauth_form_ok(request, str(form.get("form_token") or ""))
    if not form_ok:
        return error_response(request, 403, "This form has expired or did not come from this site's own page. "
                                            "Reload the page and try again.")
    now, ip = utcnow(), client_ip(request)
    if user.locked_until is not None and user.locked_until > now:
        return _code_page(request, {"error": auth.locked_message(user.locked_until, now)}, 401)
    if await auth.ip_locked(session, ip):
        return _code_page(request, {"error": auth.LOGIN_FAILED}, 401)
    try:
        kind = await tf.check_code(session, tokens, user=user, code=code, actor=Actor.staff(user, ip), now=now)
    except tf.CodeError as exc:
        await auth.count_failed_sign_in(session, user, ip=ip, now=now)
        await record_audit(session, request=request, actor=user, action="sign_in_failed", target_type="staff_user",
                           target_id=user.id, detail={"email": user.email, "reason": "bad_code"})
        error = str(exc)
        if user.locked_until is not None and user.locked_until > now:
            error = auth.locked_message(user.locked_until, now)
        return _code_page(request, {"error": error}, 401)
    auth.signed_in(user, now)
    await record_audit(session, request=request, actor=user, action="sign_in", target_type="staff_user",
                       target_id=user.id, detail={"second_factor": "recovery code" if kind == "recovery" else "app"})
    response = RedirectResponse(auth.safe_next(pending.next_url), status_code=303)
    response.delete_cookie(PENDING_COOKIE, path="/admin")
    set_session_cookie(response, request, auth.session_cookie_value(tokens, user))
    return response


# -- one's own second factor -------------------------------------------------------------------


async def _own_page(request: Request, ctx: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    user = staff_of(request)
    session = get_session(request)
    base: dict[str, Any] = {"error": None, "error_field": None, "codes": None, "done": None,
                            "required": await tf.two_factor_required(session)}
    if user.has_two_factor:
        base["left"] = await tf.recovery_codes_left(session, user)
    else:
        secret = (ctx or {}).pop("secret", None) or tf.new_secret()
        uri = tf.provisioning_uri(secret, email=user.email, issuer=settings_of(request).org_name)
        base.update(enrol_token=tf.enrol_token(tokens_of(request), user, secret), uri=uri, qr=tf.qr_svg(uri),
                    secret=tf.grouped(secret))
    return page(request, "admin/two_factor.html", {**base, **(ctx or {})}, status_code)


async def two_factor(request: Request) -> Response:
    """GET: set up (secret, QR code, confirm with a code) or manage. POST action=enable,
    regenerate or disable."""
    if request.method == "GET":
        return await _own_page(request, {"done": request.query_params.get("done")})
    user, tokens, session, now = staff_of(request), tokens_of(request), get_session(request), utcnow()
    async with request.form() as form:
        data = {k: str(form.get(k) or "")[:1100] for k in ("action", "code", "enrol_token", "password")}
    actor = Actor.of(request)
    field = {"enable": "enrol-code", "regenerate": "regen-code"}.get(data["action"], "off-code")  # its input's id
    try:
        if data["action"] == "enable" and not user.has_two_factor:
            try:
                secret = tf.secret_of_enrol_token(tokens, user, data["enrol_token"])
            except TokenError:
                return await _own_page(request, {"error": "This set-up form has expired: scan the new QR code "
                                                          "below and enter a code again.", "error_field": field}, 422)
            try:
                codes = await tf.enable_two_factor(session, tokens, user=user, secret=secret, code=data["code"],
                                                   actor=actor, now=now)
            except tf.CodeError as exc:
                return await _own_page(request, {"error": str(exc), "error_field": field, "secret": secret}, 422)
            return await _own_page(request, {"codes": codes, "done": "enabled"})
        if data["action"] == "regenerate" and user.has_two_factor:
            codes = await tf.regenerate_recovery_codes(session, tokens, user=user, code=data["code"], actor=actor,
                                                       now=now)
            return await _own_page(request, {"codes": codes, "done": "regenerated"})
        if data["action"] == "disable" and user.has_two_factor:
            if not auth.verify_password(user.password_hash, data["password"][: auth.MAX_PASSWORD_LENGTH]):
                field = "off-password"
                raise tf.CodeError("Password: this is not your current password.")
            await tf.check_code(session, tokens, user=user, code=data["code"], actor=actor, now=now)
            await tf.remove_two_factor(session, user=user, actor=actor, action="two_factor_disable")
            return RedirectResponse(f"{TWO_FACTOR_PATH}?done=disabled", status_code=303)
    except tf.CodeError as exc:
        return await _own_page(request, {"error": str(exc), "error_field": field}, 422)
    return RedirectResponse(TWO_FACTOR_PATH, status_code=303)  # a stale form (already on, already off)


# -- admins: the rule for everyone, a colleague's lost factor ----------------------------------


@admin_only
async def require_for_everyone(request: Request) -> Response:
    async with request.form() as form:
        required = str(form.get("required") or "") == "1"
    try:
        await tf.set_two_factor_required(get_session(request), required=required, actor_user=staff_of(request),
                                         actor=Actor.of(request), now=utcnow())
    except tf.RequireError as exc:
        return await users_page(request, error=str(exc), status_code=409)
    return RedirectResponse("/admin/users", status_code=303)


@admin_only
async def reset_someones_two_factor(request: Request) -> Response:
    """Remove a colleague's second factor (a lost phone); they set it up again at next sign-in
    when it is required."""
    session = get_session(request)
    user = await get_or_404(session, StaffUser, request.path_params["user_id"], what="staff account")
    await tf.remove_two_factor(session, user=user, actor=Actor.of(request), action="two_factor_reset")
    return RedirectResponse("/admin/users", status_code=303)


routes: list[BaseRoute] = [
    Route("/login/code", code_step, methods=["GET", "POST"], name="admin_login_code"),
    Route("/account/two-factor", two_factor, methods=["GET", "POST"], name="admin_two_factor"),
    Route("/users/two-factor", require_for_everyone, methods=["POST"], name="admin_two_factor_required"),
    Route("/users/{user_id:int}/two-factor-reset", reset_someones_two_factor, methods=["POST"],
          name="admin_two_factor_reset"),
]
