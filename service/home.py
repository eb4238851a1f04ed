"""The start page at `/`: what a newcomer who opens the server's address sees. A short list of
where things are (the inquiry form, the newsletter signup, the archive, the admin), no data."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.web import render


async def home(request: Request) -> Response:
    return render(request, "home.html")


route = Route("/", home, methods=["GET", "HEAD"], name="home")
