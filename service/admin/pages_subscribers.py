"""The subscriber list (filtered by status, topic and a search, with the CSV export of the same
filter) and a subscriber's detail page with their consent evidence and deliveries. What staff do
to a subscriber (unsubscribe, suppress, erase, import, export) is in `pages_subscriber_actions`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.admin.filters import FilterError, format_cursor, parse_cursor, text_param
from service.admin.guard import get_or_404, page
from service.admin.paging import list_total, paginate
from service.bounces.stats import subscriber_bounces
from service.campaigns.queries import subscriber_deliveries
from service.db import get_session
from service.newsletter.models import SUBSCRIBER_STATUSES, Subscriber
from service.newsletter.queries import SubscriberFilter, count_subscribers, list_subscribers
from service.web import settings_of


def subscriber_filter(params: Mapping[str, str]) -> SubscriberFilter:
    """The list's filter from query parameters (the admin page's and the API's)."""
    status = params.get("status", "")
    if status and status not in SUBSCRIBER_STATUSES:
        raise FilterError(f"Status: expected one of {', '.join(SUBSCRIBER_STATUSES)}.", field="status")
    return SubscriberFilter(status=status, topic=text_param(params, "topic", "Topic", 40),
                            q=text_param(params, "q", "Search", 200))


def _filter(request: Request) -> SubscriberFilter:
    return subscriber_filter(request.query_params)


async def subscriber_list(request: Request) -> Response:
    params = request.query_params
    ctx: dict[str, Any] = {"statuses": SUBSCRIBER_STATUSES, "topics": settings_of(request).topics,
                           "params": params, "rows": [], "error": None, "notice": params.get("notice", ""),
                           "export_url": "/admin/subscribers/export.csv"}
    try:
        flt = _filter(request)
        after = parse_cursor(params.get("after"))
    except FilterError as exc:
        return page(request, "admin/subscribers.html", {**ctx, "error": str(exc)}, 400)
    paging = await paginate(
        request, lambda limit: list_subscribers(get_session(request), flt=flt, after=after, limit=limit),
        cursor=lambda s: format_cursor(s.created_at, s.id), cursor_param="after")
    if flt.query_args():
        ctx["export_url"] += "?" + urlencode(flt.query_args())
    total, more = await list_total(paging, lambda: count_subscribers(get_session(request), flt=flt))
    return page(request, "admin/subscribers.html", {**ctx, "rows": paging.rows, "paging": paging, "total": total,
                                                    "more": more})


async def subscriber_detail(request: Request) -> Response:
    session = get_session(request)
    subscriber = await get_or_404(session, Subscriber, request.path_params["subscriber_id"], what="subscriber")
    deliveries = await subscriber_deliveries(session, subscriber_id=subscriber.id)
    bounces = await subscriber_bounces(session, subscriber_id=subscriber.id)
    return page(request, "admin/subscriber.html", {"subscriber": subscriber, "deliveries": deliveries,
                                                   "bounces": bounces,
                                                   "notice": request.query_params.get("notice", "")})


routes: list[BaseRoute] = [
    Route("/subscribers", subscriber_list, name="admin_subscribers"),
    Route("/subscribers/{subscriber_id:int}", subscriber_detail, name="admin_subscriber"),
]
