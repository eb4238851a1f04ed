"""The audit log: every recorded action, newest first, filtered by action, actor and a range of
days (UTC, both ends included)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.admin.audit import audit_actions, count_audit_events, list_audit_events
from service.admin.audit_words import action_label, describe_targets, detail_phrases
from service.admin.filters import FilterError, format_cursor, parse_cursor, parse_day
from service.admin.guard import page
from service.admin.paging import paginate
from service.db import day_start, get_session
from service.web import settings_of


async def audit_log(request: Request) -> Response:
    params = request.query_params
    session = get_session(request)
    ctx: dict[str, Any] = {"params": params, "actions": await audit_actions(session), "rows": [], "error": None,
                           "action_label": action_label}
    try:
        since = parse_day(params.get("from"), "From")
        until = parse_day(params.get("to"), "To")
        after = parse_cursor(params.get("after"))
    except FilterError as exc:
        return page(request, "admin/audit.html", {**ctx, "error": str(exc)}, 400)
    flt: dict[str, Any] = {"action": params.get("action") or None, "actor": params.get("actor") or None,
                           "since": day_start(since) if since else None,
                           "until": day_start(until + dt.timedelta(days=1)) if until else None}
    paging = await paginate(request, lambda limit: list_audit_events(session, **flt, before=after, limit=limit),
                            cursor=lambda e: format_cursor(e.created_at, e.id), cursor_param="after")
    targets = await describe_targets(session, paging.rows, local_outbox=settings_of(request).uses_local_outbox)
    return page(request, "admin/audit.html", {
        **ctx, "rows": paging.rows, "paging": paging, "total": await count_audit_events(session, **flt),
        "targets": targets, "action_label": action_label, "detail_phrases": detail_phrases})


routes: list[BaseRoute] = [
    Route("/audit", audit_log, name="admin_audit"),
]
