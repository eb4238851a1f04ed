"""The Bounces page: every bounce and complaint report Tidings accepted, newest first, filtered by
kind, in keyset pages like the other admin lists, each linked to its subscriber, inquiry and
campaign. The same rows appear as a subscriber's bounce history, and the rates on each
campaign's page and (for the campaign sent last, when too high) on the dashboard; those pages
take their figures from `service.bounces.stats`.

Reports quote an address and the receiving server's diagnostic: shown as text (escaped), to
signed-in staff only (the admin guard), and erased with the subscriber or inquiry."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.admin.filters import FilterError, format_cursor, parse_cursor
from service.admin.guard import page
from service.admin.paging import paginate
from service.bounces.events import KINDS
from service.bounces.stats import count_by_kind, list_bounces
from service.db import get_session

KIND_LABELS = {"hard": "hard bounce", "soft": "soft bounce", "complaint": "complaint"}


async def bounce_list(request: Request) -> Response:
    params = request.query_params
    session = get_session(request)
    ctx: dict[str, Any] = {"kinds": KINDS, "labels": KIND_LABELS, "kind": "", "rows": [], "paging": None,
                           "error": None, "first_page": True, "counts": await count_by_kind(session)}
    try:
        kind = params.get("kind", "")
        if kind and kind not in KINDS:
            raise FilterError(f"Type: expected one of {', '.join(KINDS)}.")
        after = parse_cursor(params.get("after"))
    except FilterError as exc:
        return page(request, "admin/bounces.html", {**ctx, "error": str(exc)}, 400)
    paging = await paginate(
        request, lambda limit: list_bounces(session, kind=kind, after=after, limit=limit),
        cursor=lambda row: format_cursor(row.event.received_at, row.event.id), cursor_param="after")
    return page(request, "admin/bounces.html", {**ctx, "kind": kind, "rows": paging.rows, "paging": paging,
                                                "first_page": after is None})


routes: list[BaseRoute] = [Route("/bounces", bounce_list, name="admin_bounces")]
