"""`GET|HEAD /r/{token}`: a digest link. Counted (in aggregate, `service.insight.counter`) unless
CLICK_COUNTING is off, then redirected to the one address the token was signed for."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.insight.counter import ClickCounter
from service.insight.links import LinkReader
from service.tokens import TokenError
from service.web import client_ip, error_response, settings_of

REFUSED = ("This link is not valid: it was changed after it was sent, or cut short. Open the link from the "
           "email again, or copy all of it.")


async def click(request: Request) -> Response:
    reader: LinkReader = request.app.state.links
    try:
        link = reader.read(request.path_params["token"])
    except TokenError:
        return error_response(request, 400, REFUSED)
    if settings_of(request).click_counting:
        counter: ClickCounter = request.app.state.clicks
        await counter.record(link, method=request.method, ip=client_ip(request),
                             user_agent=request.headers.get("user-agent", ""))
    response = Response(status_code=302)  # RedirectResponse would quote the URL again on every click
    response.raw_headers += [(b"location", reader.location(link)), (b"cache-control", b"no-store")]
    return response


routes = [Route("/r/{token}", click, methods=["GET", "HEAD"])]
