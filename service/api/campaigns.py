"""/api/v1/campaigns and /api/v1/articles (articles fall under the campaigns scope): list and
read campaigns, create a draft (the composer's own validation, `DigestForm`), preview it as a
subscriber, schedule, send now, pause, and its figures; list articles and import the feed now.
Every change goes through the admin's action (service.campaigns.actions,
service.articles.actions), so it audits the same."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.admin.campaign_forms import DigestForm
from service.admin.filters import FilterError, text_param
from service.admin.pages_campaign_actions import _end_request_transaction
from service.admin.pages_campaigns import progress_json
from service.api.core import (
    MAX_ID,
    ApiError,
    actor_of,
    bad_cursor,
    cursor_param,
    int_list,
    invalid,
    is_number,
    iso,
    json_body,
    needs,
    page_limit,
    page_of,
    path_id,
    str_list,
    text_field,
)
from service.articles.actions import import_articles_as
from service.articles.ingest import IngestError
from service.articles.models import Article
from service.articles.queries import list_articles
from service.campaigns import actions
from service.campaigns import queries as cq
from service.campaigns.flows import render_preview
from service.campaigns.models import Campaign
from service.campaigns.stats import campaign_stats
from service.db import get_session, utcnow
from service.web import settings_of


def campaign_json(c: Campaign) -> dict[str, Any]:
    return {"id": c.id, "subject": c.subject, "preheader": c.preheader, "intro": c.intro, "body": c.body,
            "status": c.status, "audience_topics": list(c.audience_topics),
            "article_ids": [row.article_id for row in c.article_rows], "requires_approval": c.requires_approval,
            "created_at": iso(c.created_at), "scheduled_at": iso(c.scheduled_at), "started_at": iso(c.started_at),
            "sent_at": iso(c.sent_at)}


def article_json(a: Article) -> dict[str, Any]:
    return {"id": a.id, "title": a.title, "link": a.link, "summary": a.summary, "published_at":
            iso(a.published_at), "topics": a.topics, "tags": list(a.tags or [])}


def _id_cursor(request: Request) -> int | None:
    raw = cursor_param(request)
    if raw is None:
        return None
    if not is_number(raw) or not 0 < int(raw) <= MAX_ID:
        raise bad_cursor()
    return int(raw)


async def _campaign(request: Request) -> Campaign:
    campaign = await get_session(request).get(Campaign, path_id(request, "campaign_id"))
    if campaign is None:
        raise ApiError(404, "There is no such campaign.")
    return campaign


@needs("campaigns", "read")
async def list_(request: Request) -> Response:
    before, limit = _id_cursor(request), page_limit(request)
    rows = await cq.list_campaigns(get_session(request), before_id=before, limit=limit + 1)
    return page_of(rows, limit, item=campaign_json, cursor=lambda c: str(c.id))


@needs("campaigns", "read")
async def read(request: Request) -> Response:
    return JSONResponse(campaign_json(await _campaign(request)))


@needs("campaigns", "write")
async def create(request: Request) -> Response:
    """A draft: a Markdown `body`, `article_ids`, or both; `audience_topics` empty means everyone."""
    data = await json_body(request)
    texts = {f: text_field(data, f) for f in ("subject", "preheader", "intro", "body")}
    article_ids, topics = int_list(data, "article_ids"), str_list(data, "audience_topics")
    session = get_session(request)
    known = {a.id for a in await list_articles(session)}
    missing = [i for i in article_ids if i not in known]
    if missing:
        raise invalid("article_ids", f"article_ids: no article {', '.join(map(str, missing[:5]))}.")
    form = FormData([*texts.items(), ("audience", "topics" if topics else "all"), *(("topics", t) for t in topics),
                     *(("order", str(i)) for i in article_ids), *(("article", str(i)) for i in article_ids)])
    parsed = DigestForm.parse(form, known_ids=known, topics=settings_of(request).topics)
    if parsed.errors:
        field, message = next(iter(parsed.errors.items()))
        field = {"articles": "article_ids", "topics": "audience_topics"}.get(field, field)
        raise invalid(field, message)
    campaign = await actions.create_campaign(session, actor=actor_of(request), now=utcnow(), subject=parsed.subject,
                                             preheader=parsed.preheader, intro=parsed.intro, body=parsed.body,
                                             article_ids=parsed.article_ids, audience_topics=parsed.audience_topics)
    await session.refresh(campaign, ["article_rows"])
    return JSONResponse(campaign_json(campaign), status_code=201)


@needs("campaigns", "read")
async def preview(request: Request) -> Response:
    """The campaign as a subscriber (`email`) would get it, or as someone of every topic."""
    campaign = await _campaign(request)
    try:
        email = text_param(request.query_params, "email", "email", 320)
    except FilterError as exc:
        raise invalid("email", str(exc)) from None
    try:
        subject, html, text = await render_preview(get_session(request), settings=settings_of(request),
                                                   campaign_id=campaign.id, email=email or None)
    except cq.CampaignError as exc:
        raise invalid("email", f"email: {exc}.") from None
    return JSONResponse({"subject": subject, "html": html, "text": text})


@needs("campaigns", "write")
async def schedule(request: Request) -> Response:
    campaign = await _campaign(request)
    data = await json_body(request)
    raw = text_field(data, "at", required=True)
    try:
        at = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise invalid("at", "at: expected a date and time with a UTC offset, e.g. 2026-12-01T09:00+00:00.") from None
    try:
        await actions.schedule_campaign(get_session(request), settings=settings_of(request), campaign_id=campaign.id,
                                        at=at, actor=actor_of(request), now=utcnow())
    except actions.ScheduleError as exc:
        raise invalid("at", f"at: {exc}.") from None
    except cq.CampaignError as exc:
        raise ApiError(409, f"Schedule: {exc}.") from None
    return JSONResponse(campaign_json(campaign))


@needs("campaigns", "write")
async def send(request: Request) -> Response:
    campaign = await _campaign(request)
    try:
        queued = await actions.send_campaign_now(get_session(request), settings=settings_of(request),
                                                 campaign_id=campaign.id, actor=actor_of(request), now=utcnow())
    except cq.CampaignError as exc:
        raise ApiError(409, f"Send: {exc}.") from None
    return JSONResponse({**campaign_json(campaign), "queued": queued})


@needs("campaigns", "write")
async def pause(request: Request) -> Response:
    campaign = await _campaign(request)
    try:
        await actions.pause_campaign(get_session(request), campaign_id=campaign.id, actor=actor_of(request),
                                     now=utcnow())
    except cq.CampaignError as exc:
        raise ApiError(409, f"Pause: {exc}.") from None
    return JSONResponse(campaign_json(campaign))


@needs("campaigns", "read")
async def stats(request: Request) -> Response:
    campaign = await _campaign(request)
    figures = await campaign_stats(get_session(request), campaign_id=campaign.id)
    return JSONResponse({"id": campaign.id, **progress_json(figures)})


@needs("campaigns", "read")
async def articles(request: Request) -> Response:
    """Newest first (by publication), paged by the article's position in that order."""
    before, limit = _id_cursor(request), page_limit(request)
    rows = list(await list_articles(get_session(request)))
    if before is not None:
        at = next((n for n, a in enumerate(rows) if a.id == before), None)
        if at is None:
            raise bad_cursor()
        rows = rows[at + 1:]
    return page_of(rows[:limit + 1], limit, item=article_json, cursor=lambda a: str(a.id))


@needs("campaigns", "write")
async def import_articles(request: Request) -> Response:
    """Import FEED_URL now (as the admin's "Import now"), audited as `articles_import`."""
    settings = settings_of(request)
    if not settings.feed_url:
        raise ApiError(409, "FEED_URL is not set, so there is no feed to import.")
    actor = actor_of(request)
    await _end_request_transaction(request)
    try:
        result = await import_articles_as(request.app.state.sessions, settings, [], actor=actor)
    except IngestError as exc:
        raise ApiError(422, f"The feed could not be imported, nothing changed: {exc}", field="feed") from None
    return JSONResponse({"new": result.created, "updated": result.updated, "unchanged": result.unchanged})


routes = [
    Route("/campaigns", list_, methods=["GET"]),
    Route("/campaigns", create, methods=["POST"]),
    Route("/campaigns/{campaign_id:int}", read, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}/preview", preview, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}/schedule", schedule, methods=["POST"]),
    Route("/campaigns/{campaign_id:int}/send", send, methods=["POST"]),
    Route("/campaigns/{campaign_id:int}/pause", pause, methods=["POST"]),
    Route("/campaigns/{campaign_id:int}/stats", stats, methods=["GET"]),
    Route("/articles", articles, methods=["GET"]),
    Route("/articles/import", import_articles, methods=["POST"]),
]
