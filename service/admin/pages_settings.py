"""Settings (admins only): the organisation's brand, kept in the database (`service.admin.brand`)
with the environment as defaults: name, accent colour, logo, postal address, footer text and the
blog's address, each with "Reset to default"; and a preview of every email in the brand, saved
or as typed. Saves are CSRF-checked by the guard and audited; a refused value changes nothing.

The save is a multipart form (the logo), mounted beside /admin with a body limit of its own
(`upload_routes`), so that a logo over the size limit gets an error by its field, not a 413."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route, request_response

from service.admin import brand_values as bv
from service.admin.audit import Actor
from service.admin.brand import (
    FIELDS,
    MAX_ADDRESS,
    Brand,
    BrandFormError,
    clean_postal_address,
    load_brand,
    reset_brand_field,
    save_brand,
)
from service.admin.brand_preview import PREVIEWS, render_brand_preview
from service.admin.brand_web import forget_brand
from service.admin.guard import AdminGuardMiddleware, admin_error, page, staff_of
from service.admin.pages_mail import FRAME_CSP
from service.db import get_session, utcnow
from service.web import settings_of

TEXT_FIELDS = ("org_name", "accent_color", "postal_address", "footer_text", "blog_url")
UPLOAD_LIMIT = 1024 * 1024  # the whole form; the logo's own limit (200 KB) is checked by its field
ONLY_ADMINS = "Only admins can change the settings."


async def settings_page(request: Request) -> Response:
    if not staff_of(request).is_admin:
        return admin_error(request, 403, ONLY_ADMINS)
    brand = await load_brand(get_session(request), settings_of(request))
    return _page(request, _values(brand), saved=request.query_params.get("saved", ""))


def _values(brand: Brand) -> dict[str, str]:
    return {"org_name": brand.name, "accent_color": brand.accent, "postal_address": brand.postal_address,
            "footer_text": brand.footer_text, "blog_url": brand.blog_url or ""}


async def settings_save(request: Request) -> Response:
    if not staff_of(request).is_admin:
        return admin_error(request, 403, ONLY_ADMINS)
    async with request.form() as form:
        values = {name: str(form[name]) for name in TEXT_FIELDS if isinstance(form.get(name), str)}
        upload = form.get("logo")
        logo = await upload.read() if isinstance(upload, UploadFile) and upload.filename else None
    try:
        await save_brand(get_session(request), settings=settings_of(request), values=values, logo=logo,
                         actor=Actor.of(request), now=utcnow())
    except BrandFormError as exc:
        brand = await load_brand(get_session(request), settings_of(request))
        return _page(request, {**_values(brand), **values}, errors=exc.errors, status_code=422)
    await get_session(request).commit()  # before the cache is dropped, so no one caches the old brand again
    forget_brand(request)
    return RedirectResponse("/admin/settings?saved=1", status_code=303)


async def settings_reset(request: Request) -> Response:
    if not staff_of(request).is_admin:
        return admin_error(request, 403, ONLY_ADMINS)
    name = request.path_params["field"]
    if name not in FIELDS:
        return admin_error(request, 404, "There is no such setting.")
    await reset_brand_field(get_session(request), name=name, actor=Actor.of(request), now=utcnow())
    await get_session(request).commit()
    forget_brand(request)
    return RedirectResponse(f"/admin/settings?saved={name}", status_code=303)


def _page(request: Request, values: dict[str, str], *, saved: str = "", errors: dict[str, str] | None = None,
          status_code: int = 200) -> Response:
    settings = settings_of(request)
    preview = request.query_params.get("preview", "digest")
    preview = preview if preview in PREVIEWS else "digest"
    typed = {k: v for k, v in values.items() if k in TEXT_FIELDS}
    ctx: dict[str, Any] = {
        "values": values, "errors": errors or {}, "saved": saved, "saved_label": FIELDS.get(saved, ""),
        "max_address": MAX_ADDRESS, "max_footer": bv.MAX_FOOTER, "max_name": bv.MAX_NAME,
        "max_logo_kb": bv.MAX_LOGO_BYTES // 1024, "fields": FIELDS, "previews": PREVIEWS, "preview": preview,
        "frame_url": f"/admin/settings/preview/{preview}.html?" + urlencode(typed),
        "defaults": {"org_name": settings.org_name, "accent_color": settings.brand_accent_color,
                     "postal_address": settings.org_postal_address, "footer_text": settings.brand_footer_text,
                     "blog_url": settings.blog_url or "", "logo": settings.brand_logo_url or ""},
    }
    return page(request, "admin/settings.html", ctx, status_code)


async def settings_preview(request: Request) -> Response:
    """One email in the brand in force, with the values typed on the page (query string) in
    place of the saved ones where they are valid; served under the outbox's sandbox CSP."""
    if not staff_of(request).is_admin:
        return admin_error(request, 403, ONLY_ADMINS)
    name = request.path_params["name"]
    if name not in PREVIEWS:
        return admin_error(request, 404, "There is no such email.")
    session, settings = get_session(request), settings_of(request)
    brand = await load_brand(session, settings)
    typed = {k: v for k, v in request.query_params.items() if k in TEXT_FIELDS}
    brand = _typed_brand(brand, typed)
    preview = await render_brand_preview(session, settings, name, brand)
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(settings.base_url))
    csp = FRAME_CSP.replace("img-src https: data:", f"img-src https: data: {origin}")
    return HTMLResponse(preview.html, headers={"content-security-policy": csp, "cache-control": "no-store",
                                               "x-frame-options": "SAMEORIGIN"})


def _typed_brand(brand: Brand, typed: dict[str, str]) -> Brand:
    """`brand` with each typed value that passes its rule (the others keep the saved value)."""
    rules = {"org_name": ("name", bv.clean_name), "accent_color": ("accent", bv.clean_accent),
             "footer_text": ("footer_text", bv.clean_footer), "blog_url": ("blog_url", bv.clean_blog_url),
             "postal_address": ("postal_address", clean_postal_address)}
    changes: dict[str, Any] = {}
    for key, value in typed.items():
        attr, rule = rules[key]
        try:
            changes[attr] = rule(value)
        except ValueError:
            continue
    return replace(brand, **changes)


routes: list[BaseRoute] = [
    Route("/settings", settings_page, name="admin_settings"),
    Route("/settings/reset/{field:str}", settings_reset, methods=["POST"], name="admin_settings_reset"),
    Route("/settings/preview/{name:str}.html", settings_preview, name="admin_settings_preview"),
]

# Mounted beside the /admin Mount (before it), behind the same guard, with a larger body limit.
upload_routes: list[BaseRoute] = [
    Route("/admin/settings", AdminGuardMiddleware(request_response(settings_save)), methods=["POST"],
          max_body_size=UPLOAD_LIMIT, name="admin_settings_save"),
]
