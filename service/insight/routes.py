"""`GET|HEAD /r/{token}`: a digest link. Counted (in aggregate, `service.insight.counter`) unless
CLICK_COUNTING is off, then redirected to the one address the token was signed for.

A digest's links are the most frequent request Tidings gets (every reader of a campaign follows
the very same few links), so a link whose token is good is answered by `ClickMiddleware`, in
front of the middleware stack: a 302 needs no session, brand, language, CSRF or body limit, and
skipping them (and the router) about halves the time of a click. It still sends what every answer
carries: the security headers, X-Request-ID and one access-log line. A token that is not good
goes on to the `click` route, which answers the refusal page as any other page is answered."""

from __future__ import annotations

import time

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from service.insight.counter import ClickCounter
from service.insight.links import Link, LinkReader
from service.settings import Settings
from service.tokens import TokenError
from service.web import client_ip, error_response, log_request, new_request_id, security_headers, settings_of

REFUSED = ("This link is not valid: it was changed after it was sent, or cut short. Open the link from the "
           "email again, or copy all of it.")
PREFIX = "/r/"


async def follow(conn: HTTPConnection, link: Link) -> list[tuple[bytes, bytes]]:
    """Count a click of `link` (unless CLICK_COUNTING is off); the redirect's own headers."""
    state = conn.app.state
    if settings_of(conn).click_counting:
        counter: ClickCounter = state.clicks
        await counter.record(link, method=conn.scope["method"], ip=client_ip(conn),
                             user_agent=conn.headers.get("user-agent", ""))
    reader: LinkReader = state.links
    return [(b"location", reader.location(link)), (b"cache-control", b"no-store")]


async def click(request: Request) -> Response:
    """The full path of a link (reached when ClickMiddleware did not answer: a bad token)."""
    reader: LinkReader = request.app.state.links
    try:
        link = reader.read(request.path_params["token"])
    except TokenError:
        return error_response(request, 400, REFUSED)
    response = Response(status_code=302)  # RedirectResponse would quote the URL again on every click
    response.raw_headers += await follow(request, link)
    return response


class ClickMiddleware:
    """Answers GET/HEAD /r/{token} with a good token before the rest of the stack (see above)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.headers = [*security_headers(settings), (b"content-length", b"0")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(PREFIX) or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        conn = HTTPConnection(scope)
        reader: LinkReader = conn.app.state.links
        try:
            link = reader.read(path[len(PREFIX):])
        except TokenError:
            await self.app(scope, receive, send)  # the refusal page
            return
        request_id = new_request_id()
        headers = [*await follow(conn, link), *self.headers, (b"x-request-id", request_id.encode())]
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        log_request(scope, 302, started, request_id)


routes = [Route("/r/{token}", click, methods=["GET", "HEAD"])]
