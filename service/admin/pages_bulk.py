"""Bulk actions on the admin lists: tick rows, press one button. Inquiries: set a status (Mark
as spam is the status "spam"). Subscribers: unsubscribe, suppress (with a reason), export the
selected ones as CSV. One form per list (the admin guard checks its CSRF token); every change
is audit-logged one row per thing changed, like the single action; the list comes back with a
notice saying how many changed and how many were left as they were (and why)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from service.admin.audit import Actor
from service.admin.guard import admin_error
from service.admin.paging import NOTICE_PARAMS
from service.csvfile import stream_csv
from service.db import get_session
from service.inquiries.actions import set_inquiry_status
from service.inquiries.models import INQUIRY_STATUSES
from service.inquiries.queries import HeldInquiryError, InquiryNotFoundError
from service.newsletter.actions import SubscriberStateError, record_subscriber_export, suppress_as, unsubscribe_as
from service.newsletter.exporter import export_rows
from service.newsletter.queries import get_subscriber
from service.validation import FieldError, clean_text, small_int

MAX_SELECTED = 500


def _ids(form: FormData) -> list[int]:
    ids = sorted({i for i in (small_int(v) for v in form.getlist("ids")) if i is not None})
    return ids[:MAX_SELECTED]


def _back(form: FormData, list_path: str, **notice: object) -> Response:
    """Back to the list the form was on (its filters kept), with the result notice."""
    parts = urlsplit(str(form.get("back") or ""))
    query = parts.query if not parts.scheme and not parts.netloc and parts.path == list_path else ""
    kept = [(k, v) for k, v in parse_qsl(query) if k not in NOTICE_PARAMS]
    return RedirectResponse(f"{list_path}?{urlencode([*kept, *notice.items()])}", status_code=303)


def _nothing(request: Request, what: str) -> Response:
    return admin_error(request, 422, f"No {what} selected: tick the ones to change first. Nothing was changed.")


async def inquiries_bulk(request: Request) -> Response:
    async with request.form() as form:
        ids, status = _ids(form), "spam" if form.get("spam") else str(form.get("status") or "")
        if status not in INQUIRY_STATUSES:
            return admin_error(request, 422, f"Status: expected one of {', '.join(INQUIRY_STATUSES)}. "
                                             "Nothing was changed.")
        if not ids:
            return _nothing(request, "inquiries")
        session, actor, changed, skipped = get_session(request), Actor.of(request), 0, 0
        for inquiry_id in ids:
            try:
                event = await set_inquiry_status(session, inquiry_id=inquiry_id, status=status, actor=actor,
                                                 bulk=True)
            except (InquiryNotFoundError, HeldInquiryError):
                event = None
            if event is None:  # gone, held, or already in that status
                skipped += 1
                continue
            changed += 1
        return _back(form, "/admin/inquiries", notice=f"status-{status}", done=changed, skipped=skipped)


async def subscribers_bulk(request: Request) -> Response:
    async with request.form() as form:
        ids, action = _ids(form), str(form.get("action") or "")
        if action not in ("unsubscribe", "suppress", "export"):
            return admin_error(request, 422, "Choose what to do with the selected subscribers. Nothing was changed.")
        if not ids:
            return _nothing(request, "subscribers")
        if action == "export":
            return await _export_selected(request, ids)
        reason = ""
        if action == "suppress":
            try:
                reason = clean_text({"reason": str(form.get("reason") or "")}, "reason", label="Reason",
                                    max_length=300, required=True)
            except FieldError as exc:
                return admin_error(request, 422, f"{exc.message} for suppressing. Nothing was changed.")
        changed = await _change_subscribers(request, ids, action, reason)
        return _back(form, "/admin/subscribers", notice=f"bulk-{action}", done=changed, skipped=len(ids) - changed)


async def _change_subscribers(request: Request, ids: list[int], action: str, reason: str) -> int:
    """Unsubscribe or suppress each one whose status allows it (the single actions, marked bulk)."""
    session, actor, changed = get_session(request), Actor.of(request), 0
    for subscriber_id in ids:
        sub = await get_subscriber(session, subscriber_id=subscriber_id)
        if sub is None:
            continue
        try:
            if action == "unsubscribe":
                await unsubscribe_as(session, subscriber=sub, actor=actor, bulk=True)
            else:
                await suppress_as(session, subscriber=sub, reason=reason, actor=actor, bulk=True)
        except SubscriberStateError:
            continue
        changed += 1
    return changed


async def _export_selected(request: Request, ids: list[int]) -> Response:
    """At most MAX_SELECTED rows, so written whole, in the request's own transaction (the same
    one that records the export)."""
    session = get_session(request)
    await record_subscriber_export(session, actor=Actor.of(request), detail={"filter": {"selected": len(ids)}})
    text = "".join([chunk async for chunk in stream_csv(export_rows(session, ids=ids))])
    return Response(text, media_type="text/csv; charset=utf-8", headers={
        "content-disposition": 'attachment; filename="subscribers-selected.csv"', "cache-control": "no-store"})


routes: list[BaseRoute] = [
    Route("/inquiries/bulk", inquiries_bulk, methods=["POST"], name="admin_inquiries_bulk"),
    Route("/subscribers/bulk", subscribers_bulk, methods=["POST"], name="admin_subscribers_bulk"),
]
