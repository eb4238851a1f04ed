"""Campaign pages: the list with figures, the digest composer (new and edit a draft), the detail
page with its live progress (and the JSON it polls), and the preview as a chosen subscriber.
The preview's HTML is served from its own route under the outbox's `sandbox` CSP and framed."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from service.admin.campaign_forms import DigestForm
from service.admin.guard import admin_error, get_or_404, page
from service.admin.pages_mail import FRAME_CSP
from service.admin.paging import paginate
from service.articles.queries import list_articles
from service.campaigns import queries as cq
from service.campaigns.flows import default_subject, render_preview
from service.campaigns.models import Campaign
from service.campaigns.queries import awaiting_approval
from service.campaigns.stats import CampaignStats, campaign_rows, campaign_stats
from service.db import get_session, utcnow
from service.web import settings_of

PAGE = 25
DEFAULT_INTRO = "Here is what we published since our last digest."


async def _campaign(request: Request) -> Campaign:
    """The campaign of the path, or the admin's 404 page."""
    return await get_or_404(get_session(request), Campaign, request.path_params["campaign_id"], what="campaign")


def progress_json(stats: CampaignStats) -> dict[str, Any]:
    handled = stats.sent + stats.failed + stats.skipped
    return {
        "status": stats.status, "total": stats.total, "queued": stats.queued, "sent": stats.sent,
        "failed": stats.failed, "bounced": stats.bounced, "skipped": stats.skipped,
        "unsubscribed_after": stats.unsubscribed_after, "done": handled,
        "percent": round(100.0 * handled / stats.total, 1) if stats.total else (100.0 if stats.status == "sent"
                                                                                else 0.0),
        "rate": round(stats.rate, 2) if stats.rate is not None else None,
        "eta_seconds": round(stats.eta_seconds) if stats.eta_seconds is not None else None,
    }


# -- list -------------------------------------------------------------------------------------


async def campaign_list(request: Request) -> Response:
    session = get_session(request)
    before = request.query_params.get("before", "")
    before_id = int(before) if before.isdigit() else None
    paging = await paginate(request, lambda limit: campaign_rows(session, before_id=before_id, limit=limit),
                            cursor=lambda row: str(row.campaign.id), cursor_param="before", size=PAGE)
    return page(request, "admin/campaigns.html", {
        "rows": paging.rows, "paging": paging, "total": await cq.count_campaigns(session),
        "approval": await awaiting_approval(session), "notice": request.query_params.get("notice", ""),
    })


# -- compose ----------------------------------------------------------------------------------


async def _compose_page(request: Request, form: DigestForm, *, campaign: Campaign | None, status_code: int = 200
                        ) -> Response:
    articles = {a.id: a for a in await list_articles(get_session(request))}
    ordered = [articles[i] for i in form.order if i in articles]
    return page(request, "admin/campaign_form.html", {
        "form": form, "articles": ordered, "campaign": campaign, "topics": settings_of(request).topics,
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
        form = DigestForm.for_new(articles, since, default_subject(settings_of(request), utcnow()), DEFAULT_INTRO)
        return await _compose_page(request, form, campaign=None)
    form = await _posted_form(request)
    if form.moved:
        return await _compose_page(request, form, campaign=None)
    if form.errors:
        return await _compose_page(request, form, campaign=None, status_code=422)
    campaign = await cq.create_campaign(session, subject=form.subject, preheader=form.preheader, intro=form.intro,
                                        article_ids=form.article_ids, audience_topics=form.audience_topics,
                                        now=utcnow())
    return RedirectResponse(f"/admin/campaigns/{campaign.id}?notice=created", status_code=303)


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
    await cq.update_draft(get_session(request), campaign_id=campaign.id, subject=form.subject,
                          preheader=form.preheader, intro=form.intro, audience_topics=form.audience_topics,
                          article_ids=form.article_ids, now=utcnow())
    return RedirectResponse(f"/admin/campaigns/{campaign.id}?notice=saved", status_code=303)


# -- detail, progress -------------------------------------------------------------------------


async def campaign_detail(request: Request, *, errors: dict[str, str] | None = None,
                          values: dict[str, str] | None = None, status_code: int = 200,
                          notice: str | None = None) -> Response:
    campaign = await _campaign(request)
    session = get_session(request)
    stats = await campaign_stats(session, campaign_id=campaign.id)
    return page(request, "admin/campaign.html", {
        "campaign": campaign, "stats": stats, "progress": progress_json(stats),
        "articles": await cq.campaign_articles(session, campaign_id=campaign.id),
        "errors": errors or {}, "values": values or {},
        "notice": notice if notice is not None else request.query_params.get("notice", ""),
        "awaiting_approval": campaign.requires_approval and campaign.approved_at is None, "eta": eta_text,
    }, status_code)


async def campaign_progress(request: Request) -> Response:
    campaign = await _campaign(request)
    stats = await campaign_stats(get_session(request), campaign_id=campaign.id)
    return JSONResponse(progress_json(stats), headers={"cache-control": "no-store"})


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


def _escape(value: str) -> str:
    from markupsafe import escape

    return str(escape(value))


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return str(dt.timedelta(seconds=round(seconds)))


routes: list[BaseRoute] = [
    Route("/campaigns", campaign_list, name="admin_campaigns"),
    Route("/campaigns/new", campaign_new, methods=["GET", "POST"], name="admin_campaign_new"),
    Route("/campaigns/{campaign_id:int}", campaign_detail, name="admin_campaign"),
    Route("/campaigns/{campaign_id:int}/edit", campaign_edit, methods=["GET", "POST"], name="admin_campaign_edit"),
    Route("/campaigns/{campaign_id:int}/progress", campaign_progress, name="admin_campaign_progress"),
    Route("/campaigns/{campaign_id:int}/preview", campaign_preview, name="admin_campaign_preview"),
    Route("/campaigns/{campaign_id:int}/preview.html", campaign_preview_html, name="admin_campaign_preview_html"),
]
