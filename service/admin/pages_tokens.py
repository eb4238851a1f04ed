"""The personal access tokens page (/admin/tokens): a staff member creates tokens for the admin
API and sees and revokes their own; an admin sees and revokes everyone's. A new token is shown
once, on the answer to the form that created it, and never again (only its hash is kept).

That answer cannot be a redirect (the token is not kept to show after one), so a reload would send
the form again: each form carries a random `once` value, and the answer sets a signed cookie
naming it and the token made; the same form sent again finds it and makes no second token."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from service.admin import apitokens
from service.admin.audit import Actor
from service.admin.guard import admin_error, get_or_404, page, staff_of
from service.admin.models import ApiToken
from service.db import get_session, utcnow
from service.forms import tokens_of
from service.tokens import TokenError

ONCE_COOKIE = "tdg_token_once"
ONCE_SECONDS = 3600


async def _tokens_page(request: Request, status_code: int = 200, **ctx: Any) -> Response:
    user = staff_of(request)
    rows = await apitokens.list_tokens(get_session(request), user_id=None if user.is_admin else user.id)
    base: dict[str, Any] = {
        "rows": rows, "now": utcnow(), "status": apitokens.token_status, "resources": apitokens.RESOURCES,
        "expiry_choices": apitokens.EXPIRY_CHOICES, "created": None, "raw": None, "error": None,
        "error_field": None, "values": {"name": "", "days": "90"}, "chosen": {},
        "notice": request.query_params.get("notice", ""), "once": secrets.token_urlsafe(16), "repeated": None,
    }
    return page(request, "admin/tokens.html", {**base, **ctx}, status_code)


async def tokens(request: Request) -> Response:
    if request.method == "GET":
        return await _tokens_page(request)
    async with request.form() as form:
        values = {"name": str(form.get("name") or ""), "days": str(form.get("days") or "")}
        chosen = {r: str(form.get(f"scope_{r}") or "") for r in apitokens.RESOURCES}
        once = str(form.get("once") or "")
    if (made := await _made_by(request, once)) is not None:
        return await _tokens_page(request, repeated=made)
    try:
        name = apitokens.parse_name(values["name"])
        days = apitokens.parse_days(values["days"])
        scopes = apitokens.parse_scopes(f"{r}:{level}" for r, level in chosen.items() if level)
    except apitokens.TokenInputError as exc:
        return await _tokens_page(request, 422, error=f"{exc} Nothing was created.", error_field=exc.field,
                                  values=values, chosen=chosen)
    user = staff_of(request)
    token, raw = await apitokens.create_token(get_session(request), user=user, actor=Actor.of(request), name=name,
                                              scopes=scopes, days=days, now=utcnow())
    response = await _tokens_page(request, created=token, raw=raw)
    response.headers["cache-control"] = "no-store"
    if once:
        response.set_cookie(ONCE_COOKIE, tokens_of(request).dumps(ONCE_COOKIE, [once, user.id, token.id]),
                            max_age=ONCE_SECONDS, path="/admin/tokens", secure=request.url.scheme == "https",
                            httponly=True, samesite="strict")
    return response


async def _made_by(request: Request, once: str) -> ApiToken | None:
    """The token this very form (its `once` value) already made for this user, if it did."""
    cookie = request.cookies.get(ONCE_COOKIE)
    if not once or not cookie:
        return None
    try:
        given_once, user_id, token_id = tokens_of(request).loads(ONCE_COOKIE, cookie, max_age=ONCE_SECONDS)
    except (TokenError, ValueError, TypeError):
        return None
    if given_once != once or user_id != staff_of(request).id:
        return None
    return await get_session(request).get(ApiToken, token_id)


async def token_revoke(request: Request) -> Response:
    session = get_session(request)
    token = await get_or_404(session, ApiToken, request.path_params["token_id"], what="token")
    try:
        await apitokens.revoke_token(session, token=token, by_user=staff_of(request), actor=Actor.of(request),
                                     now=utcnow())
    except apitokens.NotAllowedError as exc:
        return admin_error(request, 403, str(exc))
    return RedirectResponse("/admin/tokens?notice=revoked", status_code=303)


routes: list[BaseRoute] = [
    Route("/tokens", tokens, methods=["GET", "POST"], name="admin_tokens"),
    Route("/tokens/{token_id:int}/revoke", token_revoke, methods=["POST"], name="admin_token_revoke"),
]
