"""What staff do to a campaign: send a test, send now (queue the deliveries; the worker sends),
schedule, approve, pause, resume, cancel, delete a draft, duplicate. Every one is a CSRF-checked
POST (the guard) and audit-logged; a refused one shows the campaign page again with the reason
and changes nothing. A test answers with a redirect (post/redirect/get), so reloading the page
never sends it again."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from service.admin.audit import Actor
from service.admin.campaign_forms import parse_schedule, parse_test_address
from service.admin.pages_campaigns import _campaign, campaign_detail
from service.campaigns import actions
from service.campaigns import queries as cq
from service.campaigns.actions import STATUS_ACTIONS
from service.campaigns.flows import TestNotSent, send_test
from service.db import get_session, utcnow
from service.mail.bulk import bulk_transport_for
from service.mail.transport import mailer_for
from service.web import settings_of

log = logging.getLogger("tidings.admin")


def _back(campaign_id: int, notice: str, **params: str) -> Response:
    query = urlencode({"notice": notice, **params})
    return RedirectResponse(f"/admin/campaigns/{campaign_id}?{query}", status_code=303)


async def _end_request_transaction(request: Request) -> None:
    """SQLite begins every transaction IMMEDIATE, so the request's session (opened by the guard to
    load the signed-in user, nothing written yet) holds the write lock; a second session of this
    same request (send_test renders in one, the local outbox stores in one) would wait on it."""
    session = get_session(request)
    if session.in_transaction():
        await session.commit()


async def campaign_test(request: Request) -> Response:
    campaign = await _campaign(request)
    async with request.form() as form:
        address, errors = parse_test_address(form)
        raw = str(form.get("address") or "")[:320]
    if address is None:
        return await campaign_detail(request, errors=errors, values={"address": raw}, status_code=422)
    settings = settings_of(request)
    sessions = request.app.state.sessions
    await _end_request_transaction(request)
    mailer = mailer_for(settings, sessions, concurrency=1)
    transport = bulk_transport_for(mailer, concurrency=1)
    try:
        answer = await send_test(sessions, transport, settings=settings, campaign_id=campaign.id, address=address)
    except TestNotSent as exc:
        log.warning("campaign %s: test not sent: %s", campaign.id, exc)
        return _back(campaign.id, "test-failed", reason=exc.reason)
    except cq.CampaignError as exc:
        return await campaign_detail(request, errors={"address": f"Test: {exc}."}, values={"address": address},
                                     status_code=422)
    finally:
        await transport.close()
        await mailer.close()
    await actions.record_test_send(get_session(request), campaign_id=campaign.id, address=address, answer=answer,
                                   actor=Actor.of(request))
    return _back(campaign.id, "test-sent", to=address)


async def campaign_send(request: Request) -> Response:
    campaign = await _campaign(request)
    try:
        await actions.send_campaign_now(get_session(request), settings=settings_of(request),
                                        campaign_id=campaign.id, actor=Actor.of(request),
                                        now=utcnow())
    except cq.CampaignError as exc:
        return await campaign_detail(request, errors={"send": f"Send: {exc}."}, status_code=409)
    return _back(campaign.id, "sending")


async def campaign_schedule(request: Request) -> Response:
    campaign = await _campaign(request)
    async with request.form() as form:
        at, errors = parse_schedule(form)
        values = {"when": str(form.get("when") or ""), "timezone": str(form.get("timezone") or "")}
    if at is None:
        return await campaign_detail(request, errors=errors, values=values, status_code=422)
    try:
        await actions.schedule_campaign(get_session(request), settings=settings_of(request),
                                        campaign_id=campaign.id, at=at, actor=Actor.of(request),
                                        now=utcnow(), timezone=values["timezone"])
    except actions.ScheduleError as exc:
        return await campaign_detail(request, errors={"when": f"Date and time: {exc}."}, values=values,
                                     status_code=422)
    except cq.CampaignError as exc:
        return await campaign_detail(request, errors={"when": f"Schedule: {exc}."}, values=values, status_code=409)
    return _back(campaign.id, "scheduled")


async def campaign_approve(request: Request) -> Response:
    campaign = await _campaign(request)
    try:
        await actions.approve_campaign(get_session(request), settings=settings_of(request),
                                       campaign_id=campaign.id, actor=Actor.of(request),
                                       now=utcnow())
    except cq.CampaignError as exc:
        return await campaign_detail(request, errors={"send": f"Approve: {exc}."}, status_code=409)
    return _back(campaign.id, "approved")


async def campaign_status_action(request: Request) -> Response:
    campaign = await _campaign(request)
    action = request.url.path.rsplit("/", 1)[1]
    try:
        await actions.change_campaign_status(get_session(request), campaign_id=campaign.id, action=action,
                                             actor=Actor.of(request), now=utcnow())
    except cq.CampaignError as exc:
        return await campaign_detail(request, errors={"send": f"{action.title()}: {exc}."}, status_code=409)
    return _back(campaign.id, action)


async def campaign_delete(request: Request) -> Response:
    campaign = await _campaign(request)
    try:
        await actions.delete_draft(get_session(request), campaign_id=campaign.id, actor=Actor.of(request))
    except cq.CampaignError as exc:
        return await campaign_detail(request, errors={"send": f"Delete: {exc}."}, status_code=409)
    return RedirectResponse("/admin/campaigns?notice=deleted", status_code=303)


async def campaign_duplicate(request: Request) -> Response:
    campaign = await _campaign(request)
    copy = await actions.duplicate_campaign(get_session(request), campaign_id=campaign.id, actor=Actor.of(request),
                                            now=utcnow())
    return _back(copy.id, "duplicated", source=str(campaign.id))


routes: list[BaseRoute] = [
    Route("/campaigns/{campaign_id:int}/delete", campaign_delete, methods=["POST"], name="admin_campaign_delete"),
    Route("/campaigns/{campaign_id:int}/duplicate", campaign_duplicate, methods=["POST"],
          name="admin_campaign_duplicate"),
    Route("/campaigns/{campaign_id:int}/test", campaign_test, methods=["POST"], name="admin_campaign_test"),
    Route("/campaigns/{campaign_id:int}/send", campaign_send, methods=["POST"], name="admin_campaign_send"),
    Route("/campaigns/{campaign_id:int}/schedule", campaign_schedule, methods=["POST"],
          name="admin_campaign_schedule"),
    Route("/campaigns/{campaign_id:int}/approve", campaign_approve, methods=["POST"], name="admin_campaign_approve"),
    *(Route(f"/campaigns/{{campaign_id:int}}/{action}", campaign_status_action, methods=["POST"],
            name=f"admin_campaign_{action}") for action in STATUS_ACTIONS),
]
