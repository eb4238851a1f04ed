"""`POST /webhooks/{provider}`: one route for every provider. A provider whose setting is not
set does not exist (404). A refused request is answered with `{"error": ...}` and its
transaction rolled back, so nothing it did (a Mailgun token taken) stays; an accepted one
records its events in the request's transaction and answers what they did."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.bounces.events import MailEvent
from service.bounces.policy import record_many
from service.bounces.webhooks import generic, mailgun, postmark, sendgrid, sns
from service.bounces.webhooks.common import Received, Refused
from service.db import get_session
from service.settings import Settings
from service.web import settings_of

Receiver = Callable[[Received], Awaitable[list[MailEvent]]]

# provider -> (is it on, its receiver)
PROVIDERS: dict[str, tuple[Callable[[Settings], bool], Receiver]] = {
    "ses": (lambda s: bool(s.sns_topic_arns), sns.receive),
    "postmark": (lambda s: s.postmark_webhook_credentials is not None, postmark.receive),
    "mailgun": (lambda s: s.mailgun_webhook_signing_key is not None, mailgun.receive),
    "sendgrid": (lambda s: s.sendgrid_webhook_public_key is not None, sendgrid.receive),
    "generic": (lambda s: s.webhook_secret is not None, generic.receive),
}


async def webhook(request: Request) -> Response:
    settings = settings_of(request)
    provider = PROVIDERS.get(request.path_params.get("provider", "generic"))
    if provider is None or not provider[0](settings):
        return JSONResponse({"error": "no such webhook: it is not configured on this server"}, status_code=404)
    session = get_session(request)
    received = Received(request.headers, await request.body(), settings, session, request.app.state)
    try:
        events = await provider[1](received)
    except Refused as refused:
        await session.rollback()
        return JSONResponse({"error": refused.message}, status_code=refused.status, headers=refused.headers)
    actions: dict[str, int] = {}
    for outcome in await record_many(session, events, settings=settings):
        actions[outcome.action] = actions.get(outcome.action, 0) + 1
    return JSONResponse({"events": len(events), "outcomes": actions})


# The generic webhook has a route of its own: it is part of the documented API (service/openapi.py).
routes = [Route("/webhooks/generic", webhook, methods=["POST"], name="generic_webhook"),
          Route("/webhooks/{provider}", webhook, methods=["POST"], name="bounce_webhook")]
