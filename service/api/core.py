"""What every /api/v1 route shares: the gate (a bearer token, nothing else), the declaration of
what a route needs (`needs`: a scope, and whether only admins may), the one error shape, cursor
pages and JSON bodies.

The gate wraps the whole /api/v1 Mount, so a route added later cannot be reached without a
token. It reads only `Authorization: Bearer tdg_…`: cookies are never looked at, so a signed-in
browser is no way in and no CSRF check is needed (another site cannot make a browser send our
bearer token). The admin's own gate reads only its session cookie, so a token never opens an
HTML page. Each token is rate-limited (API_RATE_LIMIT) before the request's own transaction
begins: the counter lives in a short transaction of its own (service.ratelimit).

Errors: `{"error": {"code": "…", "message": "…", "field": "…" or null}}` for every 4xx and 5xx
under /api/v1, including those the app answers for any route (404, 405, 413, 503), whose
`service.web.error_response` calls `api_error_body`.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.admin import apitokens
from service.admin.audit import Actor
from service.admin.models import ApiToken, StaffUser
from service.api.errors import api_error_body
from service.db import get_session, short_transaction, utcnow
from service.forms import read_json
from service.ratelimit import hit_rate_limit
from service.web import client_ip, settings_of

API_PREFIX = "/api/v1"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
T = TypeVar("T")


class ApiError(Exception):
    """An answer other than success: raised by handlers, turned into the error shape by `needs`."""

    def __init__(self, status: int, message: str, *, code: str | None = None, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.field, self.headers = status, message, code, field, headers

    def response(self) -> Response:
        return JSONResponse(api_error_body(self.status, self.message, code=self.code, field=self.field),
                            status_code=self.status, headers=self.headers)


def invalid(field: str, message: str) -> ApiError:
    """422: `field` is wrong (the message says how)."""
    return ApiError(422, message, field=field)


# -- the gate -----------------------------------------------------------------------------------

_REFUSALS = {
    "unknown": ("invalid_token", "This token is not valid."),
    "expired": ("token_expired", "This token has expired; create a new one on /admin/tokens."),
    "revoked": ("token_revoked", "This token was revoked."),
    "inactive": ("invalid_token", "The account this token belongs to is deactivated."),
    "no_second_factor": ("two_factor_required", "Two-factor sign-in is required of every staff member: the owner of "
                         "this token must set it up at /admin/account/two-factor before the token works again."),
}


def _unauthorized(code: str, message: str) -> Response:
    return ApiError(401, message, code=code, headers={"WWW-Authenticate": 'Bearer realm="tidings"'}).response()


def bearer_token(conn: HTTPConnection) -> str | None:
    scheme, _, value = conn.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


class ApiGateMiddleware:
    """A valid, unexpired, unrevoked token of an active staff member, within its rate limit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        raw = bearer_token(conn)
        if raw is None:
            await _unauthorized("missing_token", "Send a personal access token: Authorization: Bearer tdg_…")(
                scope, receive, send)
            return
        if apitokens.looks_like_token(raw):
            limit = settings_of(conn).api_rate_limit
            async with short_transaction(conn.app.state.sessions) as counter:
                within = await hit_rate_limit(counter, key=f"api:{apitokens.hash_token(raw)[:40]}", limit=limit)
            if not within:
                wait = limit.seconds - int(time.time()) % limit.seconds
                await ApiError(429, f"Too many calls with this token (API_RATE_LIMIT is {limit}); try again in "
                               f"{wait} s.", headers={"Retry-After": str(wait)}).response()(scope, receive, send)
                return
        state = await apitokens.check_token(get_session(conn), raw, now=utcnow())
        if state.status != "ok":
            await _unauthorized(*_REFUSALS[state.status])(scope, receive, send)
            return
        scope.setdefault("state", {})
        scope["state"]["api_token"] = state.token
        scope["state"]["api_user"] = state.user
        await self.app(scope, receive, send)


# -- what a route needs -------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """What a route needs: `level` (read or write) on `resource`, and, with `admin`, the admin role."""

    resource: str
    level: str
    admin: bool = False


Handler = Callable[[Request], Awaitable[Response]]


def needs(resource: str, level: str, *, admin: bool = False) -> Callable[[Handler], Handler]:
    """Declare and enforce what a handler needs (403 `insufficient_scope` or `admin_only`); the
    declaration is kept on the handler (`api_access`) for the docs and the authorisation test."""
    access = Access(resource, level, admin)

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: Request) -> Response:
            token: ApiToken = request.state.api_token
            if not apitokens.token_allows(token.scopes, resource, level):
                return ApiError(403, f"This token lacks the scope {resource}:{level}.",
                                code="insufficient_scope").response()
            if admin and not user_of(request).is_admin:
                return ApiError(403, "Only an admin may do this.", code="admin_only").response()
            try:
                return await handler(request)
            except ApiError as exc:
                return exc.response()

        wrapper.api_access = access  # type: ignore[attr-defined]
        return wrapper

    return wrap


def user_of(request: Request) -> StaffUser:
    return request.state.api_user


def actor_of(request: Request) -> Actor:
    """Who acts: the token's owner, from the client's address (as the admin records a signed-in user)."""
    return Actor.staff(user_of(request), client_ip(request))


# -- bodies, pages, ids -------------------------------------------------------------------------


async def json_body(request: Request) -> dict[str, Any]:
    return await read_json(request, what="the request")


def text_field(data: dict[str, Any], field: str, *, required: bool = False, default: str = "") -> str:
    value = data.get(field, default)
    if value is None:
        value = default
    if not isinstance(value, str):
        raise invalid(field, f"{field}: expected a string.")
    if required and not value.strip():
        raise invalid(field, f"{field}: required.")
    return value


def str_list(data: dict[str, Any], field: str) -> list[str]:
    value = data.get(field) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(field, f"{field}: expected a list of strings.")
    return value


def int_list(data: dict[str, Any], field: str) -> list[int]:
    value = data.get(field) or []
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_ID
                                              for v in value):
        raise invalid(field, f"{field}: expected a list of ids.")
    return list(dict.fromkeys(value))


def is_number(raw: str) -> bool:
    """Plain ASCII digits (str.isdigit also takes "²" and other digits int() refuses), at most ten."""
    return re.fullmatch(r"[0-9]{1,10}", raw) is not None


def page_limit(request: Request) -> int:
    raw = request.query_params.get("limit", "")
    if not raw:
        return DEFAULT_LIMIT
    if not is_number(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise invalid("limit", f"limit: a whole number from 1 to {MAX_LIMIT}.")
    return int(raw)


def cursor_param(request: Request) -> str | None:
    return request.query_params.get("cursor") or None


def bad_cursor() -> ApiError:
    return ApiError(400, "cursor: this is not a cursor this list gave; start again without one.", field="cursor")


def page_of(rows: Sequence[T], limit: int, *, item: Callable[[T], dict[str, Any]], cursor: Callable[[T], str]
            ) -> JSONResponse:
    """`rows` fetched with limit + 1: one page of items and the cursor of the next (null on the last)."""
    more = len(rows) > limit
    shown = list(rows[:limit])
    return JSONResponse({"data": [item(r) for r in shown],
                         "next_cursor": cursor(shown[-1]) if more and shown else None})


MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database: a larger one names nothing


def path_id(request: Request, name: str) -> int:
    """The path's id; 404 for one no row can have (PostgreSQL would refuse to compare it)."""
    value: int = request.path_params[name]
    if not 0 < value <= MAX_ID:
        raise ApiError(404, "There is no such thing here.")
    return value


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
