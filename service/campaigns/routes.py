"""Public archive: web versions of digests that went out (no personal parts)."""

from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.campaigns.models import Campaign
from service.campaigns.queries import campaign_articles
from service.campaigns.render import article_context, markdown_html
from service.db import get_session
from service.forms import tokens_of
from service.i18n import gettext, pick_language, set_language
from service.newsletter.tokens import read_preview_token
from service.tokens import TokenError
from service.web import error_response, render, settings_of

PUBLIC_STATUSES = ("sending", "sent")


def _use_language(request: Request) -> None:
    """`?lang=` (a digest's "view in your browser" link names its reader's language), else the install's."""
    set_language(pick_language(request.query_params.get("lang"), settings_of(request).language))


async def archive_index(request: Request) -> Response:
    _use_language(request)
    session = get_session(request)
    campaigns = (await session.scalars(
        select(Campaign).where(Campaign.status.in_(PUBLIC_STATUSES))
        .order_by(Campaign.started_at.desc(), Campaign.id.desc()).limit(200)
    )).all()
    return render(request, "campaigns/archive.html", {"campaigns": campaigns})


def _previewed(request: Request, campaign: Campaign | None) -> bool:
    """A test send's "view in browser" link (`?preview=TOKEN`) shows the campaign before it is sent."""
    token = request.query_params.get("preview")
    if campaign is None or not token:
        return False
    try:
        return read_preview_token(tokens_of(request), token) == campaign.id
    except (TokenError, TypeError, ValueError):
        return False


async def archive_detail(request: Request) -> Response:
    _use_language(request)
    session = get_session(request)
    campaign = (await session.scalars(select(Campaign).where(Campaign.slug == request.path_params["slug"]))).first()
    if campaign is not None and campaign.status not in PUBLIC_STATUSES and not _previewed(request, campaign):
        campaign = None
    if campaign is None:
        return error_response(request, 404, gettext("There is no digest at this address."))
    articles = [article_context(a) for a in await campaign_articles(session, campaign_id=campaign.id)]
    paragraphs = [p.strip() for p in campaign.intro.split("\n\n") if p.strip()]
    return render(request, "campaigns/digest.html",
                  {"campaign": campaign, "articles": articles, "intro_paragraphs": paragraphs,
                   "body_html": markdown_html(campaign.body)})


routes = [
    Route("/archive", archive_index, methods=["GET", "HEAD"]),
    Route("/archive/{slug}", archive_detail, methods=["GET", "HEAD"]),
]
