"""/api/v1/subscribers: the admin's list (status, topic, search), one subscriber with their
consent evidence, a signup on someone's behalf (pending, with a confirmation email: double
opt-in as on the public form), an import of a CSV with its consent evidence (the admin's import,
`tidings subscribers import`), unsubscribe, suppress and erase: every change through the same
action as the admin page (service.newsletter.actions), so it audits the same."""

from __future__ import annotations

import io
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.admin.filters import FilterError, format_cursor, parse_cursor
from service.admin.pages_subscriber_actions import MAX_IMPORT_BYTES, SOURCE_LABELS
from service.admin.pages_subscribers import subscriber_filter
from service.api.core import (
    ApiError,
    actor_of,
    bad_cursor,
    cursor_param,
    invalid,
    iso,
    json_body,
    needs,
    page_limit,
    page_of,
    path_id,
    str_list,
    text_field,
)
from service.db import get_session
from service.forms import tokens_of
from service.newsletter import actions
from service.newsletter.importer import ImportFileError, ImportReport
from service.newsletter.models import Subscriber
from service.newsletter.queries import list_subscribers
from service.validation import FieldError, clean_mailable_email, clean_text
from service.web import settings_of

_NO_SUCH = "There is no such subscriber."
EVIDENCE = ("signup_at", "signup_ip", "signup_user_agent", "signup_source", "signup_page", "consent_text",
            "confirmed_at", "confirm_ip")


def summary_json(s: Subscriber) -> dict[str, Any]:
    return {"id": s.id, "email": s.email, "name": s.name, "status": s.status, "topics": s.topics,
            "created_at": iso(s.created_at), "status_changed_at": iso(s.status_changed_at)}


def detail_json(s: Subscriber) -> dict[str, Any]:
    evidence = {f: getattr(s, f) for f in EVIDENCE}
    for f in ("signup_at", "confirmed_at"):
        evidence[f] = iso(evidence[f])
    return {**summary_json(s), "consent": evidence, "unsubscribed_at": iso(s.unsubscribed_at),
            "bounced_at": iso(s.bounced_at), "complained_at": iso(s.complained_at), "language": s.language}


async def _subscriber(request: Request) -> Subscriber:
    sub = await get_session(request).get(Subscriber, path_id(request, "subscriber_id"))
    if sub is None:
        raise ApiError(404, _NO_SUCH)
    return sub


@needs("subscribers", "read")
async def list_(request: Request) -> Response:
    try:
        flt = subscriber_filter(request.query_params)
        after = parse_cursor(cursor_param(request))
    except FilterError as exc:
        if exc.field == "cursor":
            raise bad_cursor() from None
        raise invalid(exc.field or "", str(exc)) from None
    limit = page_limit(request)
    rows = await list_subscribers(get_session(request), flt=flt, after=after, limit=limit + 1)
    return page_of(rows, limit, item=summary_json, cursor=lambda s: format_cursor(s.created_at, s.id))


@needs("subscribers", "read")
async def read(request: Request) -> Response:
    return JSONResponse(detail_json(await _subscriber(request)))


@needs("subscribers", "write")
async def create(request: Request) -> Response:
    """A signup on the person's behalf: pending, and a confirmation email goes out."""
    data = await json_body(request)
    settings = settings_of(request)
    try:
        email = clean_mailable_email({"email": text_field(data, "email", required=True)})
        name = clean_text({"name": text_field(data, "name")}, "name", label="name", max_length=200)
    except FieldError as exc:
        raise invalid(exc.field, str(exc)) from None
    topics = str_list(data, "topics")
    unknown = sorted(set(topics) - set(settings.topics))
    if unknown:
        raise invalid("topics", f"topics: unknown topic(s) {', '.join(unknown)}; expected some of "
                                f"{', '.join(settings.topics)}.")
    sub = await actions.subscribe_as(get_session(request), settings=settings, tokens=tokens_of(request),
                                     actor=actor_of(request), email=email, name=name, topics=topics,
                                     user_agent=request.headers.get("user-agent", "")[:500])
    return JSONResponse(detail_json(sub), status_code=202)


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise invalid(name, f"{name}: expected true or false.")
    return value in ("true", "1")


def report_json(report: ImportReport) -> dict[str, Any]:
    return {"dry_run": report.dry_run, "rows": report.rows, "added": report.added, "updated": report.updated,
            "unchanged": report.unchanged, "skipped": report.skipped, "confirmations_queued":
            report.confirmations_queued, "pending_without_consent_date": report.pending_without_consent_date,
            "errors": [{"line": line, "message": message} for line, message in report.errors],
            "error_count": report.error_count, "unused_columns": report.unused_columns}


@needs("subscribers", "write")
async def import_csv(request: Request) -> Response:
    """The admin's CSV import (its columns carry the consent evidence: signup_at, signup_ip,
    consent_text…), in one transaction; ?dry_run=true checks it and changes nothing."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "text/csv":
        raise ApiError(415, "Send the CSV file as the body with Content-Type: text/csv.")
    layout = request.query_params.get("from", "")
    if layout and layout not in SOURCE_LABELS:
        raise invalid("from", f"from: expected one of {', '.join(SOURCE_LABELS)}.")
    dry_run, confirm, consented = _flag(request, "dry_run"), _flag(request, "send_confirmation"), \
        _flag(request, "consented")
    body = await request.body()
    binary = io.BytesIO(body)
    session = get_session(request)
    actor = actor_of(request)
    nested = await session.begin_nested()
    try:
        report = await actions.import_subscribers_as(
            session, binary, actor=actor, filename="api.csv", sha256=actions.file_sha256(binary),
            settings=settings_of(request), tokens=tokens_of(request), source="api import",
            send_confirmation=confirm, dry_run=dry_run, layout=layout or None, consented=consented)
    except ImportFileError as exc:
        await nested.rollback()
        raise invalid("body", f"The file: {exc}. Nothing was imported.") from None
    except BaseException:
        await nested.rollback()
        raise
    if dry_run:
        await nested.rollback()
    else:
        await nested.commit()
    return JSONResponse(report_json(report))


@needs("subscribers", "write")
async def unsubscribe(request: Request) -> Response:
    sub = await _subscriber(request)
    try:
        await actions.unsubscribe_as(get_session(request), subscriber=sub, actor=actor_of(request))
    except actions.SubscriberStateError as exc:
        raise ApiError(409, str(exc)) from None
    return JSONResponse(detail_json(sub))


@needs("subscribers", "write")
async def suppress(request: Request) -> Response:
    sub = await _subscriber(request)
    data = await json_body(request)
    try:
        reason = clean_text({"reason": text_field(data, "reason")}, "reason", label="reason", max_length=300,
                            required=True)
    except FieldError as exc:
        raise invalid("reason", f"{exc.message}. Nothing was changed.") from None
    try:
        await actions.suppress_as(get_session(request), subscriber=sub, reason=reason, actor=actor_of(request))
    except actions.SubscriberStateError as exc:
        raise ApiError(409, str(exc)) from None
    return JSONResponse(detail_json(sub))


@needs("subscribers", "write")
async def erase(request: Request) -> Response:
    """Erase, confirmed by sending the subscriber's address as `confirm_email` (as the admin asks it typed)."""
    sub = await _subscriber(request)
    data = await json_body(request)
    typed = text_field(data, "confirm_email", required=True).strip()
    if typed.lower() != sub.email_key:
        raise invalid("confirm_email", "confirm_email: send the subscriber's address exactly to confirm. "
                                       "Nothing was erased.")
    subscriber_id = sub.id
    await actions.erase_as(get_session(request), tokens=tokens_of(request), subscriber_id=subscriber_id,
                           status=sub.status, actor=actor_of(request))
    return JSONResponse({"id": subscriber_id, "erased": True})


routes = [
    Route("/subscribers", list_, methods=["GET"]),
    Route("/subscribers", create, methods=["POST"]),
    Route("/subscribers/import", import_csv, methods=["POST"], max_body_size=MAX_IMPORT_BYTES),
    Route("/subscribers/{subscriber_id:int}", read, methods=["GET"]),
    Route("/subscribers/{subscriber_id:int}/unsubscribe", unsubscribe, methods=["POST"]),
    Route("/subscribers/{subscriber_id:int}/suppress", suppress, methods=["POST"]),
    Route("/subscribers/{subscriber_id:int}/erase", erase, methods=["POST"]),
]
