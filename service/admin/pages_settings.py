"""Settings: what staff change at run time, kept in the database (`service.admin.brand`); for
now the organisation's postal address that every newsletter footer carries. The POST is
CSRF-checked by the guard and audited; a refused address changes nothing."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from service.admin.audit import Actor
from service.admin.brand import MAX_ADDRESS, PostalAddressError, load_brand, save_postal_address
from service.admin.guard import page
from service.db import get_session, utcnow
from service.web import settings_of


async def settings_page(request: Request) -> Response:
    session = get_session(request)
    if request.method == "GET":
        brand = await load_brand(session, settings_of(request))
        return _page(request, address=brand.postal_address, stored=brand.stored,
                     saved=request.query_params.get("saved") == "1")
    async with request.form() as form:
        address = str(form.get("postal_address") or "")[: MAX_ADDRESS * 2]
    try:
        await save_postal_address(session, address=address, actor=Actor.of(request), now=utcnow())
    except PostalAddressError as exc:
        return _page(request, address=address, stored=True, error=f"Postal address: {exc}.", status_code=422)
    return RedirectResponse("/admin/settings?saved=1", status_code=303)


def _page(request: Request, *, address: str, stored: bool, saved: bool = False, error: str | None = None,
          status_code: int = 200) -> Response:
    ctx = {"address": address, "stored": stored, "saved": saved, "error": error, "max_address": MAX_ADDRESS,
           "default_address": settings_of(request).org_postal_address}
    return page(request, "admin/settings.html", ctx, status_code)


routes: list[BaseRoute] = [
    Route("/settings", settings_page, methods=["GET", "POST"], name="admin_settings"),
]
