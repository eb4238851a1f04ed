"""The articles page: the imported blog posts a digest is made of, and "Import now", the same
feed import as `tidings articles import`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.admin.audit import Actor
from service.admin.guard import page
from service.admin.pages_campaign_actions import _end_request_transaction
from service.articles.actions import import_articles_as
from service.articles.ingest import IngestError
from service.articles.queries import list_articles
from service.db import get_session
from service.web import settings_of


async def _articles_page(request: Request, *, result: str = "", error: str = "", status_code: int = 200
                         ) -> Response:
    return page(request, "admin/articles.html", {
        "articles": await list_articles(get_session(request)), "feed_url": settings_of(request).feed_url,
        "result": result, "error": error,
    }, status_code)


async def articles(request: Request) -> Response:
    return await _articles_page(request)


async def articles_import(request: Request) -> Response:
    settings = settings_of(request)
    if not settings.feed_url:
        return await _articles_page(request, error="FEED_URL is not set, so there is no feed to import. Set it to "
                                    "the blog's RSS or Atom feed (or run `tidings articles import FILE`).",
                                    status_code=409)
    actor = Actor.of(request)
    await _end_request_transaction(request)
    try:
        result = await import_articles_as(request.app.state.sessions, settings, [], actor=actor)
    except IngestError as exc:
        return await _articles_page(request, error=f"The feed could not be imported, nothing changed: {exc}",
                                    status_code=422)
    return await _articles_page(request, result=f"{result.created} new, {result.updated} updated, "
                                f"{result.unchanged} unchanged.")


routes: list[BaseRoute] = [
    Route("/articles", articles, name="admin_articles"),
    Route("/articles/import", articles_import, methods=["POST"], name="admin_articles_import"),
]
