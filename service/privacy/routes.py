"""Public privacy pages: the access request from the preference centre, and the page and
downloads its emailed link leads to. No cookie is involved: the preference link's signed token
names the subscriber (and only lets them ask), the emailed access token (24 hours) lets them read."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.db import get_session
from service.forms import tokens_of
from service.i18n import set_language
from service.newsletter.flows import mask_email, subscriber_language
from service.newsletter.models import Subscriber
from service.newsletter.queries import get_subscriber
from service.newsletter.tokens import read_unsubscribe_token
from service.privacy import access
from service.tokens import TokenError
from service.web import render, settings_of

# The token is in the URL: keep it out of Referer headers, caches and search engines.
_PRIVATE = {"cache-control": "no-store", "referrer-policy": "no-referrer", "x-robots-tag": "noindex"}


async def request_access(request: Request) -> Response:
    """POST from the preference centre: the same answer whether or not an email goes out."""
    try:
        subscriber_id = read_unsubscribe_token(tokens_of(request), request.path_params["token"])
    except (TokenError, TypeError, ValueError):
        return render(request, "newsletter/link_problem.html", {"gone": False}, status_code=400)
    await access.request_access(get_session(request), settings=settings_of(request), tokens=tokens_of(request),
                                subscriber_id=subscriber_id)
    sub = await get_subscriber(get_session(request), subscriber_id=subscriber_id)
    if sub is not None:
        set_language(subscriber_language(settings_of(request), sub))
    return render(request, "privacy/access_requested.html",
                  {"hours": access.ACCESS_MAX_AGE // 3600, "included": access.INCLUDED}, headers=_PRIVATE)


async def _subscriber_or_problem(request: Request) -> Subscriber | Response:
    """The subscriber the access link names, or the page that says why there is none."""
    try:
        subscriber_id = access.read_access_token(tokens_of(request), request.path_params["token"])
    except TokenError as exc:
        status = 410 if exc.expired else 400
        return render(request, "privacy/access_problem.html", {"expired": exc.expired},
                      status_code=status, headers=_PRIVATE)
    except (TypeError, ValueError):
        return render(request, "privacy/access_problem.html", {"expired": False}, status_code=400,
                      headers=_PRIVATE)
    sub = await get_subscriber(get_session(request), subscriber_id=subscriber_id)
    if sub is None:
        return render(request, "newsletter/link_problem.html", {"gone": True}, status_code=404,
                      headers=_PRIVATE)
    set_language(subscriber_language(settings_of(request), sub))
    return sub


async def access_page(request: Request) -> Response:
    sub = await _subscriber_or_problem(request)
    if isinstance(sub, Response):
        return sub
    token = request.path_params["token"]
    return render(request, "privacy/access.html", {
        "masked": mask_email(sub.email), "included": access.INCLUDED,
        "json_url": f"/access/{token}/data.json", "csv_url": f"/access/{token}/data.csv"}, headers=_PRIVATE)


async def _download(request: Request, kind: str) -> Response:
    sub = await _subscriber_or_problem(request)
    if isinstance(sub, Response):
        return sub
    data = await access.subscriber_data(get_session(request), settings=settings_of(request), subscriber=sub)
    body, media = (access.as_json(data), "application/json") if kind == "json" else (access.as_csv(data), "text/csv")
    return Response(body, media_type=f"{media}; charset=utf-8", headers={
        **_PRIVATE, "content-disposition": f'attachment; filename="my-data.{kind}"'})


async def download_json(request: Request) -> Response:
    return await _download(request, "json")


async def download_csv(request: Request) -> Response:
    return await _download(request, "csv")


routes = [
    Route("/unsubscribe/{token}/access", request_access, methods=["POST"]),
    Route("/access/{token}", access_page, methods=["GET"]),
    Route("/access/{token}/data.json", download_json, methods=["GET"]),
    Route("/access/{token}/data.csv", download_csv, methods=["GET"]),
]
