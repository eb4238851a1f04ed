"""Shared web plumbing: templates, the client's IP behind trusted proxies, security headers,
request ids with one access-log line per request, and the error pages."""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import time
import uuid
from typing import Any

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import api_error_body
from service.db import is_database_outage
from service.i18n import (
    N_,
    SOURCE_LANGUAGE,
    current_language,
    format_date,
    gettext,
    set_language,
    shipped_languages,
    translations_for,
)
from service.paths import TEMPLATES_DIR
from service.settings import Settings
from service.validation import phone_digits, safe_http_url

access_log = logging.getLogger("tidings.access")
log = logging.getLogger("tidings")


class _ProcessBytecodeCache(jinja2.BytecodeCache):
    """Compiled templates kept in memory and shared by every app made in this process. A server
    makes one app, but the test suite makes hundreds, and each would otherwise parse and compile
    every template it renders again (~0.1 s a test). Jinja checks each entry against the
    checksum of the template's source, so an edited template is compiled afresh."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_BYTECODE = _ProcessBytecodeCache()


def make_templates(settings: Settings, language: str = SOURCE_LANGUAGE) -> Jinja2Templates:
    """The page templates in `language`: `_()`/`gettext` from its catalogue, `lang` for
    `<html lang>`, and the `date` filter writing dates as that language does."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        extensions=["jinja2.ext.i18n"],
        bytecode_cache=_BYTECODE,
        autoescape=jinja2.select_autoescape(("html", "htm", "xml", "svg"), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations_for(language), newstyle=True)  # type: ignore[attr-defined]
    env.globals["settings"] = settings
    env.globals["lang"] = language
    env.filters["date"] = functools.partial(format_date, lang=language)
    # A setting whose default is in the catalogue (CONTACT_HEADING…): translated when it is that
    # default, as written otherwise (no %-formatting, so any text is safe).
    env.filters["catalogue"] = translations_for(language).gettext
    env.filters["http_url"] = safe_http_url  # only http(s) addresses may become links
    env.filters["topic_order"] = settings.in_topic_order
    env.filters["tel"] = phone_digits  # a stored phone number as a tel: link target
    return Jinja2Templates(env=env)


def make_localised_templates(settings: Settings) -> dict[str, Jinja2Templates]:
    """The page templates of every shipped language (see `templates`)."""
    return {lang: make_templates(settings, lang) for lang in shipped_languages()}


def templates(conn: HTTPConnection) -> Jinja2Templates:
    """The page templates in the language of this request (`service.i18n.current_language`)."""
    localised: dict[str, Jinja2Templates] = conn.app.state.templates
    return localised.get(current_language()) or localised[SOURCE_LANGUAGE]


def render(request: Request, name: str, ctx: dict[str, Any] | None = None, status_code: int = 200,
           headers: dict[str, str] | None = None) -> Response:
    return templates(request).TemplateResponse(request, name, ctx or {}, status_code=status_code,
                                               headers=headers)


def settings_of(conn: HTTPConnection) -> Settings:
    return conn.app.state.settings


def client_ip(conn: HTTPConnection) -> str:
    """The client's address: the peer, or, when the peer is a trusted proxy, the right-most
    X-Forwarded-For entry that is not itself a trusted proxy."""
    peer = conn.client.host if conn.client else ""
    trusted = settings_of(conn).trusted_proxies
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    forwarded = ",".join(conn.headers.getlist("x-forwarded-for"))
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop if _valid_ip(hop) else peer
    return hops[0] if hops and _valid_ip(hops[0]) else peer


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=1024)  # the proxy's own address is asked on every request
def _is_trusted(address: str, networks: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/api/", "/webhooks/")) or "application/json" in request.headers.get("accept", "")


# -- middleware -------------------------------------------------------------------------------


class BodyTooLargeMiddleware:
    """Starlette's body limit (MAX_BODY_BYTES, or a route's own) answers an oversized request
    with a plain-text "Content Too Large" of its own, replacing whatever the app answered, even
    where the client was promised JSON (/api, /webhooks) or our error page. This turns that one
    answer into ours: `error_response` for 413, JSON or the page as the request wants."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_ours(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if message["type"] == "http.response.start" and message["status"] == 413 and \
                    dict(message.get("headers", [])).get(b"content-type", b"").startswith(b"text/plain"):
                replaced = True
                response = error_response(Request(scope), 413)
                await response(scope, receive, send)
                return
            await send(message)

        await self.app(scope, receive, send_ours)


def security_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    """The headers every answer carries (SecurityHeadersMiddleware adds those a response lacks)."""
    ancestors = " ".join(["'self'", *settings.allowed_origins])
    csp = (
        "default-src 'self'; img-src 'self' data: https:; style-src 'self'; script-src 'self'; "
        f"form-action 'self'; frame-ancestors {ancestors}; base-uri 'none'; object-src 'none'"
    )
    headers = [
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    ]
    if settings.https:
        headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
    return headers


class SecurityHeadersMiddleware:
    """CSP, frame-ancestors, nosniff, referrer policy, and HSTS when BASE_URL is https."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.headers = security_headers(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in self.headers if n not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


_SECRET_SEGMENT = re.compile(r"/[A-Za-z0-9_\-.]{24,}")


def redact_path(path: str) -> str:
    """Paths carry tokens (/confirm/…, /unsubscribe/…): never write them to the log."""
    return _SECRET_SEGMENT.sub("/…", path)


class RequestLogMiddleware:
    """A request id (X-Request-ID) and one access-log line per request; no query strings, no tokens."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log_request(scope, status, started, request_id)


def new_request_id() -> str:
    """The X-Request-ID of a request: 16 random hex characters."""
    return uuid.uuid4().hex[:16]


def log_request(scope: Scope, status: int, started: float, request_id: str) -> None:
    """The access-log line of a request (`started` from time.perf_counter)."""
    if access_log.isEnabledFor(logging.INFO):
        access_log.info("%s %s %s %.1fms rid=%s", scope["method"], redact_path(scope["path"]), status,
                        (time.perf_counter() - started) * 1000, request_id)


# -- error pages ------------------------------------------------------------------------------

_TITLES = {
    400: N_("Bad request"), 403: N_("Forbidden"), 404: N_("Page not found"), 405: N_("Method not allowed"),
    413: N_("Too much data"), 415: N_("Unsupported content type"), 422: N_("Please check the form"),
    429: N_("Too many requests"), 500: N_("Something went wrong"), 503: N_("Temporarily unavailable"),
}
_MESSAGES = {
    404: N_("We could not find that page."),
    413: N_("The request is larger than this server accepts."),
    500: N_("Something went wrong on our side. Please try again in a moment."),
    503: N_("The service is briefly unavailable. Please try again in a minute; nothing you sent was lost."),
}


def error_response(request: Request, status: int, detail: str | None = None) -> Response:
    """The error page (or JSON) in the request's language; `detail` is already in it."""
    title = gettext(_TITLES.get(status, N_("Error")))
    message = detail or (gettext(_MESSAGES[status]) if status in _MESSAGES else title)
    headers = {"Retry-After": "30"} if status == 503 else None
    if request.url.path.startswith("/api/v1/"):  # the admin API's one error shape
        return JSONResponse(api_error_body(status, message), status_code=status, headers=headers)
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    return render(request, "error.html", {"status": status, "title": title, "message": message},
                  status_code=status, headers=headers)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304) or exc.status_code < 400:
        return Response(status_code=exc.status_code, headers=exc.headers)
    response = error_response(request, exc.status_code, error_detail(exc))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def error_detail(exc: HTTPException) -> str | None:
    """The exception's own message, or None when it is only the status's phrase ("Not Found")."""
    return exc.detail if exc.detail and exc.detail != _default_phrase(exc.status_code) else None


def _default_phrase(status: int) -> str:
    import http

    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


class DatabaseOutageMiddleware:
    """A lost database answers 503 (Retry-After; JSON on /api, the error page elsewhere) with one
    log line. Without it the error would reach Starlette's ServerErrorMiddleware, which answers
    the same 503 but then re-raises: uvicorn logs a full traceback for every request of the
    outage and closes the keep-alive connection under the client's next request. Sits outside
    DbSessionMiddleware, so a commit that fails is caught too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            if started or not is_database_outage(exc):
                raise
            log.error("database unavailable: %s (answered 503)", type(exc).__name__)
            await error_response(Request(scope), 503)(scope, receive, send)


async def server_error_handler(request: Request, exc: Exception) -> Response:
    """500 or, for a lost database, 503. This runs in Starlette's outermost middleware, outside
    SecurityHeadersMiddleware, so it adds the security headers itself (and, outside
    LanguageMiddleware too, picks the page's language itself)."""
    if not request.url.path.startswith("/admin"):
        set_language(settings_of(request).language)
    if is_database_outage(exc):
        log.error("database unavailable: %s", type(exc).__name__)
        response = error_response(request, 503)
    else:
        response = error_response(request, 500)
    for name, value in security_headers(settings_of(request)):
        response.headers.setdefault(name.decode(), value.decode())
    return response
