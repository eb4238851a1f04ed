"""The brand on the web: every page template gets `brand` (the one in force, `load_brand`'s
rules), the uploaded logo is served from a URL named by its hash (cached for a year, so emails
and pages load it once), and a changed accent colour reaches the stylesheets through
`/brand.css` (the CSP allows no inline styles)."""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from service.admin.brand import LOGO_PATH, Brand, effective_brand, logo_of, read_brand
from service.admin.brand_values import DEFAULT_ACCENT
from service.db import get_session, is_database_outage
from service.web import settings_of

log = logging.getLogger("tidings")
YEAR = "public, max-age=31536000, immutable"
# Answers that never show the brand: no brand is read for them (the JSON API shows its consent text).
_NO_PAGE = ("/webhooks/", "/static/", "/healthz", "/readyz", "/brand", "/openapi")


CACHE_SECONDS = 10.0  # how soon a change saved through another process shows in this one


class BrandMiddleware:
    """Puts the brand in force into `request.state.brand` for every page (and JSON answer, whose
    consent text names the organisation). It is read at most every CACHE_SECONDS per app (a
    change saved here is seen at once: `forget_brand`), so most requests do not touch the
    database for it, and in a session of its own that ends at once: the request's session would
    hold a read transaction open through the handler, which on SQLite blocks a write made from
    another session."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(_NO_PAGE):
            conn = HTTPConnection(scope)
            state = conn.app.state
            cached: tuple[float, Brand] | None = getattr(state, "brand_cache", None)
            now = time.monotonic()
            if cached is None or now - cached[0] > CACHE_SECONDS:
                cached = state.brand_cache = (now, await _fresh_brand(conn, stale=cached))
            scope.setdefault("state", {})["brand"] = cached[1]
        await self.app(scope, receive, send)


async def _fresh_brand(conn: HTTPConnection, *, stale: tuple[float, Brand] | None) -> Brand:
    """The brand read now; while the database is away, the one read last (else the
    environment's): the brand decorates an answer and must never be why it fails. A page that
    needs the database still answers 503 by itself; `/api/form-token` and the forms keep
    working, so what a person sends during an outage gets its own clear answer."""
    settings = settings_of(conn)
    try:
        async with conn.app.state.sessions() as session:  # ended at once: no transaction held open
            return await read_brand(session, settings)
    except Exception as exc:
        if not is_database_outage(exc):
            raise
        log.warning("brand not read (database unavailable: %s); using the last one", type(exc).__name__)
        return stale[1] if stale is not None else effective_brand(None, settings)


def forget_brand(conn: HTTPConnection) -> None:
    """After a change: the next request reads the brand afresh."""
    conn.app.state.brand_cache = None


def brand_of(conn: HTTPConnection) -> Brand:
    """The request's brand (the defaults where it was not read, e.g. an error answered early)."""
    brand = getattr(conn.state, "brand", None)
    return brand if isinstance(brand, Brand) else effective_brand(None, settings_of(conn))


def template_brand(request: Request) -> dict[str, Any]:
    """Jinja context processor: `brand` in every page template, and the stylesheet that carries a
    changed accent colour (None when it is the stylesheets' own)."""
    brand = brand_of(request)
    css = f"/brand.css?v={brand.accent[1:]}" if brand.accent != DEFAULT_ACCENT else None
    return {"brand": brand, "brand_css": css}


async def brand_css(request: Request) -> Response:
    brand = await read_brand(get_session(request), settings_of(request))
    body = f":root {{ --accent: {brand.accent}; }}\n"
    fresh = request.query_params.get("v") == brand.accent[1:]
    return Response(body, media_type="text/css", headers={"cache-control": YEAR if fresh else "no-cache"})


async def brand_logo(request: Request) -> Response:
    """The uploaded logo; any older hash still gets the current logo (a sent email keeps showing
    one), cached briefly, while the current hash is cached for a year."""
    logo = await logo_of(get_session(request))
    if logo is None:
        return Response("No logo has been uploaded.", status_code=404, media_type="text/plain")
    data, content_type, sha = logo
    current = request.path_params["name"] == f"{sha[:16]}.{'png' if content_type == 'image/png' else 'jpg'}"
    return Response(data, media_type=content_type, headers={
        "cache-control": YEAR if current else "public, max-age=3600", "x-content-type-options": "nosniff"})


routes: list[BaseRoute] = [
    Route("/brand.css", brand_css, methods=["GET", "HEAD"], name="brand_css"),
    Route(LOGO_PATH + "/{name:str}", brand_logo, methods=["GET", "HEAD"], name="brand_logo"),
]
