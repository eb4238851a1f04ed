"""The start page at `/`: what a newcomer who opens the server's address sees. A short list of
where things are (the inquiry form, the newsletter signup, the archive, the admin), no data."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.i18n import pick_language, set_language
from service.web import render, settings_of


async def home(request: Request) -> Response:
    set_language(pick_language(request.query_params.get("lang"), settings_of(request).language))
    return render(request, "home.html")


route = Route("/", home, methods=["GET", "HEAD"], name="home")
