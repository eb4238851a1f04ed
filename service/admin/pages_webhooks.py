"""Webhook endpoints in the admin (admins only): register one and choose its events, see its
recent deliveries (status, answer, timing), send one again, send a test event, rotate its secret
(shown once), trust it with health data, enable or disable it. The actions and their audit rows
are `service.webhooks.actions`.

Registering and rotating answer with a redirect (POST, redirect, GET), so that reloading the page
that shows the new secret does not register a second endpoint or rotate again (which would drop
the secret the receiver still uses from the overlap). The redirect carries no secret: a signed
`shown` token names the endpoint, the admin and a keyed hash of the secret, and for SHOW_SECONDS
the page shows the endpoint's secret while it is still that one."""

from __future__ import annotations

import functools
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from service.admin.audit import Actor
from service.admin.guard import Handler, admin_error, get_or_404, page, staff_of
from service.db import get_session, utcnow
from service.forms import tokens_of
from service.tokens import TokenError
from service.validation import small_int
from service.web import settings_of
from service.webhooks import actions
from service.webhooks import queries as q
from service.webhooks.events import EVENTS
from service.webhooks.models import WebhookDelivery, WebhookEndpoint


def _admins(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        if not staff_of(request).is_admin:
            return admin_error(request, 403, "Only admins can manage webhooks.")
        return await handler(request)

    return wrapper


def _form(data: FormData) -> dict[str, Any]:
    return {"url": str(data.get("url", "")), "description": str(data.get("description", "")),
            "events": [str(e) for e in data.getlist("events")]}


async def _list_page(request: Request, *, form: dict[str, Any] | None = None,
                     error: actions.EndpointError | None = None, status_code: int = 200) -> Response:
    session = get_session(request)
    return page(request, "admin/webhooks.html", {
        "section": "webhooks", "endpoints": await q.list_endpoints(session), "counts": await q.delivery_counts(session),
        "events": EVENTS, "form": form or {"url": "", "description": "", "events": []}, "error": error,
        "settings": settings_of(request)}, status_code)


async def _endpoint_page(request: Request, endpoint: WebhookEndpoint, *, secret: str | None = None,
                         error: str | None = None, form: dict[str, Any] | None = None,
                         status_code: int = 200) -> Response:
    session = get_session(request)
    before = request.query_params.get("before", "")
    rows = await q.list_deliveries(session, endpoint_id=endpoint.id, limit=50,
                                   before_id=small_int(before))
    return page(request, "admin/webhook.html", {
        "section": "webhooks", "endpoint": endpoint, "deliveries": rows, "secret": secret, "error": error,
        "events": EVENTS, "notice": request.query_params.get("notice", ""),
        "form": form or {"url": endpoint.url, "description": endpoint.description, "events": endpoint.event_list()}},
        status_code)


@_admins
async def webhooks(request: Request) -> Response:
    if request.method == "GET":
        return await _list_page(request)
    async with request.form() as data:
        form = _form(data)
    try:
        endpoint, _secret = await actions.register_endpoint(
            get_session(request), settings=settings_of(request), actor=Actor.of(request), url=form["url"],
            events=form["events"], description=form["description"], now=utcnow())
    except actions.EndpointError as exc:
        return await _list_page(request, form=form, error=exc, status_code=422)
    return _show_secret(request, endpoint, "registered")


async def _endpoint(request: Request) -> WebhookEndpoint:
    return await get_or_404(get_session(request), WebhookEndpoint, request.path_params["endpoint_id"],
                            what="webhook endpoint")


SHOW_SECONDS = 600  # how long the page after registering or rotating shows the new secret
_SHOWN = "webhook-secret-shown"


def _show_secret(request: Request, endpoint: WebhookEndpoint, notice: str) -> Response:
    """303 to the endpoint's page, which then shows its new secret (to this admin, for a while)."""
    tokens = tokens_of(request)
    shown = tokens.dumps(_SHOWN, [endpoint.id, staff_of(request).id, tokens.keyed_hash(_SHOWN, endpoint.secret)])
    return RedirectResponse(f"/admin/webhooks/{endpoint.id}?notice={notice}&shown={shown}", status_code=303)


def _secret_to_show(request: Request, endpoint: WebhookEndpoint) -> str | None:
    """The endpoint's secret when the `shown` token of `_show_secret` is valid for it now."""
    given = request.query_params.get("shown")
    if not given:
        return None
    tokens = tokens_of(request)
    try:
        data = tokens.loads(_SHOWN, given, max_age=SHOW_SECONDS)
    except TokenError:
        return None
    wanted = [endpoint.id, staff_of(request).id, tokens.keyed_hash(_SHOWN, endpoint.secret)]
    return endpoint.secret if data == wanted else None


def _back(endpoint_id: int, notice: str) -> Response:
    return RedirectResponse(f"/admin/webhooks/{endpoint_id}?notice={notice}", status_code=303)


@_admins
async def webhook(request: Request) -> Response:
    endpoint = await _endpoint(request)
    if request.method == "GET":
        secret = _secret_to_show(request, endpoint)
        response = await _endpoint_page(request, endpoint, secret=secret)
        if secret:
            response.headers["cache-control"] = "no-store"
        return response
    async with request.form() as data:
        form = _form(data)
    try:
        await actions.update_endpoint(get_session(request), settings=settings_of(request), actor=Actor.of(request),
                                      endpoint=endpoint, url=form["url"], events=form["events"],
                                      description=form["description"])
    except actions.EndpointError as exc:
        return await _endpoint_page(request, endpoint, error=str(exc), form=form, status_code=422)
    return _back(endpoint.id, "saved")


@_admins
async def rotate(request: Request) -> Response:
    endpoint = await _endpoint(request)
    await actions.rotate_secret(get_session(request), actor=Actor.of(request), endpoint=endpoint, now=utcnow())
    return _show_secret(request, endpoint, "rotated")


@_admins
async def trust(request: Request) -> Response:
    endpoint = await _endpoint(request)
    async with request.form() as data:
        trusted = data.get("trusted") == "1"
    await actions.set_trusted(get_session(request), actor=Actor.of(request), endpoint=endpoint, trusted=trusted)
    return _back(endpoint.id, "trusted" if trusted else "untrusted")


@_admins
async def enabled(request: Request) -> Response:
    endpoint = await _endpoint(request)
    async with request.form() as data:
        on = data.get("enabled") == "1"
    await actions.set_enabled(get_session(request), actor=Actor.of(request), endpoint=endpoint, enabled=on,
                              now=utcnow())
    return _back(endpoint.id, "enabled" if on else "disabled")


@_admins
async def test_event(request: Request) -> Response:
    endpoint = await _endpoint(request)
    if not endpoint.enabled:
        return admin_error(request, 409, "This endpoint is disabled: enable it to send it a test event.")
    await actions.send_test(get_session(request), actor=Actor.of(request), endpoint=endpoint, now=utcnow())
    return _back(endpoint.id, "test-queued")


@_admins
async def delete(request: Request) -> Response:
    endpoint = await _endpoint(request)
    await actions.delete_endpoint(get_session(request), actor=Actor.of(request), endpoint=endpoint)
    return RedirectResponse("/admin/webhooks", status_code=303)


@_admins
async def send_again(request: Request) -> Response:
    row = await get_or_404(get_session(request), WebhookDelivery, request.path_params["delivery_id"],
                           what="webhook delivery")
    try:
        await actions.send_again(get_session(request), actor=Actor.of(request), delivery_id=row.id, now=utcnow())
    except q.RedeliveryError as exc:
        return admin_error(request, 409, str(exc))
    return _back(row.endpoint_id, "queued-again")


routes: list[BaseRoute] = [
    Route("/webhooks", webhooks, methods=["GET", "POST"], name="admin_webhooks"),
    Route("/webhooks/{endpoint_id:int}", webhook, methods=["GET", "POST"], name="admin_webhook"),
    Route("/webhooks/{endpoint_id:int}/rotate", rotate, methods=["POST"], name="admin_webhook_rotate"),
    Route("/webhooks/{endpoint_id:int}/trust", trust, methods=["POST"], name="admin_webhook_trust"),
    Route("/webhooks/{endpoint_id:int}/enabled", enabled, methods=["POST"], name="admin_webhook_enabled"),
    Route("/webhooks/{endpoint_id:int}/test", test_event, methods=["POST"], name="admin_webhook_test"),
    Route("/webhooks/{endpoint_id:int}/delete", delete, methods=["POST"], name="admin_webhook_delete"),
    Route("/webhooks/deliveries/{delivery_id:int}/again", send_again, methods=["POST"],
          name="admin_webhook_send_again"),
]
