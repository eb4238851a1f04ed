"""The gate in front of every /admin route: a valid session or a redirect to the sign-in page,
a CSRF check on every state-changing request, and the sliding renewal of the session cookie.

It wraps the whole admin Mount, so a route added later is protected without anyone having to
remember it. Only the sign-in (and its code step), set-password, reset-password and forgot-password
pages are open:
they carry their own form token, bound to the browser by a pre-session cookie and checked with `Origin`/`Referer`
(`preauth_form_ok`), so another site cannot sign a browser in to an account of its choosing.

When an admin requires a second factor of everyone, an account without one is sent to set it
up, and can reach nothing else (but signing out) until it has.

Behind the gate every page renders through `page` and every refusal through `admin_error`; a
record that does not exist is `get_or_404`, whose HTTPException the app hands to `http_error`,
so a missing id is the same "Not found" page in the admin layout wherever it happens.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.admin.auth import (
    COOKIE_NAME,
    COOKIE_PATH,
    IDLE_SECONDS,
    LOGIN_FORM_SECONDS,
    RENEW_AFTER_SECONDS,
    AdminSession,
    csrf_ok,
    csrf_token,
    is_login_binding,
    login_form_token_ok,
    new_login_binding,
    read_session_cookie,
    safe_next,
    session_cookie_value,
)
from service.admin.models import StaffUser
from service.admin.twofactor import two_factor_required
from service.db import get_session
from service.forms import tokens_of
from service.web import error_detail, error_response, http_exception_handler, render, settings_of, wants_json

T = TypeVar("T")

OPEN_PATHS = ("/admin/login", "/admin/login/code", "/admin/set-password/", "/admin/reset-password/",
              "/admin/forgot-password")
ENROL_PATHS = ("/admin/account/two-factor", "/admin/logout")  # all that is open to an account that must enrol
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def set_session_cookie(response: Response, conn: HTTPConnection, value: str) -> None:
    response.set_cookie(COOKIE_NAME, value, max_age=IDLE_SECONDS, path=COOKIE_PATH, httponly=True,
                        samesite="lax", secure=settings_of(conn).https)


def clear_session_cookie(response: Response, conn: HTTPConnection) -> None:
    response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH, httponly=True, samesite="lax",
                           secure=settings_of(conn).https)


# -- the forms before a session exists (sign-in, set-password) ---------------------------------

LOGIN_COOKIE = "tidings_login"


def login_binding(conn: HTTPConnection) -> tuple[str, bool]:
    """This browser's pre-session value (from its cookie), and whether it is new and must be set."""
    value = conn.cookies.get(LOGIN_COOKIE)
    if is_login_binding(value):
        return str(value), False
    return new_login_binding(), True


def set_login_cookie(response: Response, conn: HTTPConnection, value: str) -> None:
    response.set_cookie(LOGIN_COOKIE, value, max_age=LOGIN_FORM_SECONDS, path=COOKIE_PATH, httponly=True,
                        samesite="lax", secure=settings_of(conn).https)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(conn: HTTPConnection) -> bool:
    """Whether a form without a session was sent from our own pages (OWASP "verifying origin with
    standard headers"): `Origin` must be this site (BASE_URL's origin or the one requested);
    without `Origin`, `Referer` must be; with neither (some privacy settings strip both) the
    request is allowed, because the form token bound to the browser's cookie is checked anyway."""
    ours = {_origin(settings_of(conn).base_url), _origin(str(conn.url))}
    origin = conn.headers.get("origin")
    if origin is not None:
        return origin.strip().lower().rstrip("/") in ours  # "null" (sandboxed, privacy) is refused
    referer = conn.headers.get("referer")
    if referer:
        return _origin(referer) in ours
    return True


def preauth_form_ok(conn: HTTPConnection, given: str | None) -> bool:
    """The CSRF check of the sign-in and set-password forms: same origin, and the form token
    was issued to this browser (its pre-session cookie)."""
    binding = conn.cookies.get(LOGIN_COOKIE)
    return same_origin(conn) and login_form_token_ok(tokens_of(conn), given, binding)


def staff_of(request: Request) -> StaffUser:
    return request.state.staff


def login_redirect(conn: HTTPConnection) -> Response:
    """To the sign-in page, coming back afterwards to this page (or, for a form sent after the
    session ended, to the page the form was on)."""
    target = conn.url.path + (f"?{conn.url.query}" if conn.url.query else "")
    if conn.scope["method"] not in SAFE_METHODS:
        referer = urlsplit(conn.headers.get("referer", ""))
        same_site = referer.netloc == conn.url.netloc and referer.scheme == conn.url.scheme
        target = safe_next(referer.path + (f"?{referer.query}" if referer.query else "")) if same_site else "/admin/"
    return RedirectResponse(f"/admin/login?next={quote(target, safe='/')}", status_code=303)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPException(400, "The request was interrupted.")
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _submitted_csrf(scope: Scope, body: bytes) -> str | None:
    request = Request(scope, _replay(body))
    if request.headers.get(CSRF_HEADER):
        return request.headers[CSRF_HEADER]
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return None
    async with request.form() as form:
        value = form.get(CSRF_FIELD)
    return value if isinstance(value, str) else None


class AdminGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        path = scope["path"]
        if path in OPEN_PATHS or any(path.startswith(p) for p in OPEN_PATHS if p.endswith("/")):
            await self.app(scope, receive, send)
            return
        tokens = tokens_of(conn)
        admin_session = read_session_cookie(tokens, conn.cookies.get(COOKIE_NAME))
        user = await self._user(conn, admin_session)
        if admin_session is None or user is None:
            response = login_redirect(conn)
            if COOKIE_NAME in conn.cookies:
                clear_session_cookie(response, conn)
            await response(scope, receive, send)
            return
        if (not user.has_two_factor and path not in ENROL_PATHS
                and await two_factor_required(get_session(conn))):
            # required of everyone: until this account has a second factor, it may only set one up
            await RedirectResponse(ENROL_PATHS[0], status_code=303)(scope, receive, send)
            return
        scope.setdefault("state", {})
        scope["state"]["staff"] = user
        scope["state"]["admin_session"] = admin_session
        scope["state"]["csrf_token"] = csrf_token(tokens, admin_session)
        if scope["method"] not in SAFE_METHODS:
            body = await _read_body(receive)
            if not csrf_ok(tokens, admin_session, await _submitted_csrf(scope, body)):
                response = error_response(Request(scope), 403, "This form has expired or did not come from "
                                          "this site. Go back, reload the page and try again.")
                await response(scope, receive, send)
                return
            receive = _replay(body)
        renew = admin_session.signed_age > RENEW_AFTER_SECONDS

        async def send_renewed(message: Message) -> None:
            if renew and message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "set-cookie" not in headers:  # sign-out and password change set their own
                    value = session_cookie_value(tokens, user, admin_session.issued_at)
                    probe = Response()
                    set_session_cookie(probe, conn, value)
                    headers.append("set-cookie", probe.headers["set-cookie"])
            await send(message)

        await self.app(scope, receive, send_renewed)

    async def _user(self, conn: HTTPConnection, admin_session: AdminSession | None) -> StaffUser | None:
        if admin_session is None:
            return None
        user = await get_session(conn).get(StaffUser, admin_session.user_id)
        if user is None or not user.active or user.session_version != admin_session.version:
            return None
        return user


Handler = Callable[[Request], Awaitable[Response]]


def admin_only(handler: Handler) -> Handler:
    """Refuse (403) a signed-in user who is not an admin."""

    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        if not staff_of(request).is_admin:
            return admin_error(request, 403, "Only admins can manage staff accounts.")
        return await handler(request)

    return wrapper


def admin_error(request: Request, status: int, message: str) -> Response:
    """An error page inside the admin layout (navigation kept) when someone is signed in."""
    if getattr(request.state, "staff", None) is None:
        return error_response(request, status, message)
    titles = {400: "Bad request", 403: "Not allowed", 404: "Not found", 405: "Method not allowed",
              409: "Not possible", 410: "Expired", 422: "Please check the form"}
    return page(request, "admin/error.html", {"title": titles.get(status, "Error"), "message": message}, status)


async def http_error(request: Request, exc: Exception) -> Response:
    """The app's handler of HTTPException: inside the admin layout for a signed-in staff member
    (a `get_or_404` miss, an /admin address that does not exist), else the public error page;
    JSON either way when JSON was asked for (the campaign progress poll)."""
    assert isinstance(exc, HTTPException)
    if getattr(request.state, "staff", None) is None or exc.status_code < 400 or wants_json(request):
        return await http_exception_handler(request, exc)
    response = admin_error(request, exc.status_code, error_detail(exc) or "We could not find that page.")
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def get_or_404(session: AsyncSession, model: type[T], ident: Any, *, what: str) -> T:
    """The `model` row with primary key `ident`, or a 404 page saying "There is no such {what}."."""
    row = await session.get(model, ident)
    if row is None:
        raise no_such(what)
    return row


def no_such(what: str) -> HTTPException:
    """The 404 of `get_or_404`, for a lookup that is not by primary key (raise it)."""
    return HTTPException(404, f"There is no such {what}.")


def page(request: Request, template: str, ctx: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    """Render an admin page with the signed-in user and the CSRF token; never cached."""
    base = {"staff": getattr(request.state, "staff", None), "csrf_token": getattr(request.state, "csrf_token", "")}
    response = render(request, template, {**base, **(ctx or {})}, status_code=status_code)
    response.headers["cache-control"] = "no-store"
    return response
