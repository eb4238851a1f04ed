"""Campaign pages: the list with figures, the composer (new and edit a draft: a Markdown body,
articles, or both), the detail page with the audience size before sending and its live progress
(and the JSON it polls), and the preview as a chosen subscriber.
The preview's HTML is served from its own route under the outbox's `sandbox` CSP and framed."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from service.admin.audit import Actor
from service.admin.brand import load_brand
from service.admin.campaign_forms import DigestForm
from service.admin.guard import admin_error, get_or_404, page
from service.admin.pages_mail import FRAME_CSP
from service.admin.paging import paginate
from service.articles.queries import list_articles
from service.bounces.stats import campaign_rates
from service.campaigns import actions
from service.campaigns import queries as cq
from service.campaigns.flows import TEST_FAILURES, default_subject, render_preview
from service.campaigns.models import Campaign
from service.campaigns.queries import awaiting_approval
from service.campaigns.render import markdown_html
from service.campaigns.skips import LIST_LIMIT, count_skips, list_skipped
from service.campaigns.stats import CampaignStats, campaign_rows, campaign_stats
from service.db import get_session, utcnow
from service.validation import FieldError, clean_email, small_int
from service.web import settings_of

PAGE = 25
DEFAULT_INTRO = "Here is what we published since our last digest."


async def _campaign(request: Request) -> Campaign:
    """The campaign of the path, or the admin's 404 page."""
    return await get_or_404(get_session(request), Campaign, request.path_params["campaign_id"], what="campaign")


def progress_json(stats: CampaignStats, audience: cq.AudienceFigures | None = None) -> dict[str, Any]:
    """What the progress box shows, as JSON (polled by admin.js) and as the page's first state."""
    handled = stats.sent + stats.failed + stats.skipped
    return {
        "state": progress_state(stats), "finished": stats.status in ("sent", "cancelled"),
        "audience": audience.audience if audience else None, "receiving": audience.receiving if audience else None,
        "status": stats.status, "total": stats.total, "queued": stats.queued, "sent": stats.sent,
        "failed": stats.failed, "bounced": stats.bounced, "skipped": stats.skipped,
        "unsubscribed_after": stats.unsubscribed_after, "done": handled,
        "percent": round(100.0 * handled / stats.total, 1) if stats.total else (100.0 if stats.status == "sent"
                                                                                else 0.0),
        # No rate until a message went out: "0.0/s" while the worker has not started says nothing true.
        "rate": round(stats.rate, 2) if stats.rate is not None and stats.sent else None,
        "eta_seconds": round(stats.eta_seconds) if stats.eta_seconds is not None else None,
    }


def progress_state(stats: CampaignStats) -> str:
    """One sentence of what is happening now, true at every moment of a send."""
    left = stats.queued
    if stats.status == "draft":
        return "Draft: nothing has been sent."
    if stats.status == "scheduled":
        return "Scheduled: nothing has been sent yet."
    if stats.status == "paused":
        return f"Paused with {left} left to send. Resume to go on."
    if stats.status == "cancelled":
        return f"Cancelled after {stats.sent} sent; the {left} left will not be sent." if stats.total else "Cancelled."
    if stats.status == "sent":
        return f"Finished: {stats.sent} sent, {stats.failed} failed, {stats.skipped} skipped."
    if stats.done == 0:
        return f"Queued for {stats.total}: waiting for the send worker to start."
    if left == 0:
        return f"All {stats.total} handled: finishing."
    return f"Sending: {stats.done} of {stats.total} handled, {left} left."


async def _audience(request: Request, campaign: Campaign) -> cq.AudienceFigures | None:
    """The audience as it stands, while the campaign has not been queued yet."""
    if campaign.started_at is not None or campaign.status not in ("draft", "scheduled"):
        return None
    return await cq.audience_figures(get_session(request), topics=campaign.audience_topics,
                                     has_body=bool(campaign.body.strip()),
                                     article_ids=[row.article_id for row in campaign.article_rows])


# -- list -------------------------------------------------------------------------------------


async def campaign_list(request: Request) -> Response:
    session = get_session(request)
    before = request.query_params.get("before", "")
    before_id = small_int(before)
    paging = await paginate(request, lambda limit: campaign_rows(session, before_id=before_id, limit=limit),
                            cursor=lambda row: str(row.campaign.id), cursor_param="before", size=PAGE)
    audiences = {row.campaign.id: figures for row in paging.rows
                 if (figures := await _audience(request, row.campaign)) is not None}
    return page(request, "admin/campaigns.html", {
        "rows": paging.rows, "paging": paging, "audiences": audiences, "total": await cq.count_campaigns(session),
        "approval": await awaiting_approval(session), "notice": request.query_params.get("notice", ""),
    })


# -- compose ----------------------------------------------------------------------------------


async def _compose_page(request: Request, form: DigestForm, *, campaign: Campaign | None, status_code: int = 200
                        ) -> Response:
    articles = {a.id: a for a in await list_articles(get_session(request))}
    ordered = [articles[i] for i in form.order if i in articles]
    figures = await cq.audience_figures(get_session(request), topics=form.audience_topics,
                                        has_body=bool(form.body.strip()), article_ids=form.article_ids)
    return page(request, "admin/campaign_form.html", {
        "form": form, "articles": ordered, "campaign": campaign, "topics": settings_of(request).topics,
        "figures": figures,
    }, status_code)


async def _posted_form(request: Request) -> DigestForm:
    known = {a.id for a in await list_articles(get_session(request))}
    async with request.form() as data:
        return DigestForm.parse(data, known_ids=known, topics=settings_of(request).topics)


async def campaign_new(request: Request) -> Response:
    session = get_session(request)
    if request.method == "GET":
        articles = await list_articles(session)
        since = await cq.articles_since_last_digest(session)
        subject = default_subject(await load_brand(session, settings_of(request)), utcnow())
        form = DigestForm.for_new(articles, since, subject, DEFAULT_INTRO)
        return await _compose_page(request, form, campaign=None)
    form = await _posted_form(request)
    if form.moved:
        return await _compose_page(request, form, campaign=None)
    if form.errors:
        return await _compose_page(request, form, campaign=None, status_code=422)
    campaign = await actions.create_campaign(session, actor=Actor.of(request), now=utcnow(), subject=form.subject,
                                             preheader=form.preheader, intro=form.intro, body=form.body,
                                             article_ids=form.article_ids, audience_topics=form.audience_topics)
    return await _saved(campaign.id, "created", request)


async def _saved(campaign_id: int, notice: str, request: Request) -> Response:
    if request.query_params.get("then") == "preview":
        return RedirectResponse(f"/admin/campaigns/{campaign_id}/preview", status_code=303)
    return RedirectResponse(f"/admin/campaigns/{campaign_id}?notice={notice}", status_code=303)


async def campaign_edit(request: Request) -> Response:
    campaign = await _campaign(request)
    if campaign.status != "draft":
        return admin_error(request, 409, f"This campaign is {campaign.status}; only a draft can be edited.")
    if request.method == "GET":
        form = DigestForm.for_campaign(campaign, await list_articles(get_session(request)))
        return await _compose_page(request, form, campaign=campaign)
    form = await _posted_form(request)
    if form.moved:
        return await _compose_page(request, form, campaign=campaign)
    if form.errors:
        return await _compose_page(request, form, campaign=campaign, status_code=422)
    await actions.edit_draft(get_session(request), campaign_id=campaign.id, actor=Actor.of(request), now=utcnow(),
                             subject=form.subject, preheader=form.preheader, intro=form.intro, body=form.body,
                             audience_topics=form.audience_topics, article_ids=form.article_ids)
    return await _saved(campaign.id, "saved", request)


async def campaign_audience(request: Request) -> Response:
    """The composer's audience figures for its current choices (admin.js asks as they change)."""
    params = request.query_params
    known = set(settings_of(request).topics)
    topics = sorted({t for t in params.getlist("topics") if t in known}) if params.get("audience") == "topics" else []
    ids = [i for i in (small_int(v) for v in params.getlist("article")) if i is not None][:500]
    figures = await cq.audience_figures(get_session(request), topics=topics, has_body=params.get("body") == "1",
                                        article_ids=ids)
    return JSONResponse({"audience": figures.audience, "receiving": figures.receiving, "by_topic": figures.by_topic,
                         "any_topic": figures.any_topic}, headers={"cache-control": "no-store"})


# -- detail, progress -------------------------------------------------------------------------


async def campaign_detail(request: Request, *, errors: dict[str, str] | None = None,
                          values: dict[str, str] | None = None, status_code: int = 200,
                          notice: str | None = None) -> Response:
    campaign = await _campaign(request)
    session = get_session(request)
    stats = await campaign_stats(session, campaign_id=campaign.id)
    figures = await _audience(request, campaign)
    return page(request, "admin/campaign.html", {
        "campaign": campaign, "stats": stats, "progress": progress_json(stats, figures), "figures": figures,
        "body_html": markdown_html(campaign.body),
        "articles": await cq.campaign_articles(session, campaign_id=campaign.id),
        "errors": errors or {}, "values": values or {},
        "notice": notice if notice is not None else request.query_params.get("notice", ""),
        "test_to": _address_or_empty(request.query_params.get("to", "")),
        "test_failure": TEST_FAILURES.get(request.query_params.get("reason", "")),
        "awaiting_approval": campaign.requires_approval and campaign.approved_at is None, "eta": eta_text,
        "rates": await campaign_rates(session, campaign_id=campaign.id),
        **await _skips(request, campaign.id),
    }, status_code)


async def _skips(request: Request, campaign_id: int) -> dict[str, Any]:
    """Why recipients were skipped (counts per reason) and, with ?skipped=REASON (or "all"), who."""
    session = get_session(request)
    wanted = request.query_params.get("skipped")
    reason = None if wanted in (None, "all") else ("" if wanted == "unrecorded" else wanted)
    return {"skips": await count_skips(session, campaign_id=campaign_id), "skipped_filter": wanted,
            "skipped_list": await list_skipped(session, campaign_id=campaign_id, reason=reason)
            if wanted is not None else None, "skipped_limit": LIST_LIMIT}


async def campaign_progress(request: Request) -> Response:
    campaign = await _campaign(request)
    stats = await campaign_stats(get_session(request), campaign_id=campaign.id)
    return JSONResponse(progress_json(stats, await _audience(request, campaign)), headers={"cache-control": "no-store"})


# -- preview ----------------------------------------------------------------------------------


async def _preview(request: Request, campaign: Campaign) -> tuple[str, str, str]:
    email = request.query_params.get("email", "").strip()[:320]
    return await render_preview(get_session(request), settings=settings_of(request), campaign_id=campaign.id,
                                email=email or None)


async def campaign_preview(request: Request) -> Response:
    campaign = await _campaign(request)
    email = request.query_params.get("email", "").strip()[:320]
    ctx: dict[str, Any] = {"campaign": campaign, "email": email, "error": None, "subject": "", "text": "",
                           "frame_url": f"/admin/campaigns/{campaign.id}/preview.html"
                           + ("?" + urlencode({"email": email}) if email else "")}
    try:
        ctx["subject"], _html, ctx["text"] = await _preview(request, campaign)
    except cq.CampaignError as exc:
        ctx["error"] = f"Preview as: {exc}."
        return page(request, "admin/campaign_preview.html", ctx, 422)
    return page(request, "admin/campaign_preview.html", ctx)


async def campaign_preview_html(request: Request) -> Response:
    campaign = await _campaign(request)
    try:
        _subject, html, _text = await _preview(request, campaign)
    except cq.CampaignError as exc:
        html, status = f"<p>{_escape(str(exc))}</p>", 422
    else:
        status = 200
    return HTMLResponse(html, status_code=status, headers={
        "content-security-policy": FRAME_CSP, "cache-control": "no-store", "x-frame-options": "SAMEORIGIN"})


def _address_or_empty(value: str) -> str:
    """The test notice names an address from the query string only when it is one."""
    try:
        return clean_email({"to": value}, "to")
    except FieldError:
        return ""


def _escape(value: str) -> str:
    from markupsafe import escape

    return str(escape(value))


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return str(dt.timedelta(seconds=round(seconds)))


routes: list[BaseRoute] = [
    Route("/campaigns", campaign_list, name="admin_campaigns"),
    Route("/campaigns/audience", campaign_audience, name="admin_campaign_audience"),
    Route("/campaigns/new", campaign_new, methods=["GET", "POST"], name="admin_campaign_new"),
    Route("/campaigns/{campaign_id:int}", campaign_detail, name="admin_campaign"),
    Route("/campaigns/{campaign_id:int}/edit", campaign_edit, methods=["GET", "POST"], name="admin_campaign_edit"),
    Route("/campaigns/{campaign_id:int}/progress", campaign_progress, name="admin_campaign_progress"),
    Route("/campaigns/{campaign_id:int}/preview", campaign_preview, name="admin_campaign_preview"),
    Route("/campaigns/{campaign_id:int}/preview.html", campaign_preview_html, name="admin_campaign_preview_html"),
]
