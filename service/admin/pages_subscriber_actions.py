"""What staff do to subscribers: unsubscribe, suppress, erase (after typing the address), CSV
import (a dry run first, then apply) and CSV export of the current filter. The import and the
export are the newsletter's own code (`importer.import_subscribers`, `exporter.export_rows`),
the same as `tidings subscribers import|export`.

Between the dry run and "apply" the file is not kept anywhere: the dry-run page carries a signed
token naming the file's SHA-256 (and the staff user), and "apply" asks for the same file again and
refuses any other. Nothing lives on one app server's disk, so any process can take the second
step. The upload route sits outside the /admin Mount with its own body limit (the guard reads the
whole body to check the CSRF token, so the limit must be raised in front of the guard)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import IO, Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, request_response

from service.admin.audit import Actor, filter_detail
from service.admin.guard import AdminGuardMiddleware, admin_error, get_or_404, page, staff_of
from service.csvfile import stream_csv
from service.db import get_session
from service.forms import tokens_of
from service.newsletter.actions import (
    SubscriberStateError,
    erase_as,
    file_sha256,
    import_subscribers_as,
    record_subscriber_export,
    suppress_as,
    unsubscribe_as,
)
from service.newsletter.exporter import export_rows
from service.newsletter.importer import ImportFileError, ImportReport
from service.newsletter.layouts import LAYOUTS, PLAIN
from service.newsletter.models import SUBSCRIBER_STATUSES, Subscriber
from service.newsletter.queries import SubscriberFilter
from service.tokens import TokenError
from service.validation import FieldError, clean_text
from service.web import settings_of

MAX_IMPORT_BYTES = 20 * 1024 * 1024
IMPORT_PURPOSE = "admin-subscriber-import"
SOURCE_LABELS = {**{name: layout.label for name, layout in LAYOUTS.items()}, PLAIN: "our own columns"}
IMPORT_TOKEN_AGE = 3600


async def _subscriber(request: Request) -> Subscriber:
    return await get_or_404(get_session(request), Subscriber, request.path_params["subscriber_id"], what="subscriber")


async def _reload_staff(request: Request) -> None:
    """The importer and erasure expire the session's objects; load the signed-in user again now
    (the page and the audit event read it, and a lazy load cannot happen in a template)."""
    await get_session(request).refresh(staff_of(request))


def _to_detail(subscriber_id: int, notice: str) -> Response:
    return RedirectResponse(f"/admin/subscribers/{subscriber_id}?notice={notice}", status_code=303)


# -- unsubscribe, suppress, erase -------------------------------------------------------------


async def subscriber_unsubscribe(request: Request) -> Response:
    sub = await _subscriber(request)
    try:
        await unsubscribe_as(get_session(request), subscriber=sub, actor=Actor.of(request))
    except SubscriberStateError as exc:
        return admin_error(request, 409, str(exc))
    return _to_detail(sub.id, "unsubscribed")


async def subscriber_suppress(request: Request) -> Response:
    """Stop mailing without it being their own unsubscribe: the newsletter's complaint status (the
    strongest do-not-mail state), with the staff's reason kept as the subscriber's last note."""
    sub = await _subscriber(request)
    async with request.form() as form:
        data = {"reason": str(form.get("reason") or "")}
    try:
        reason = clean_text(data, "reason", label="Reason", max_length=300, required=True)
    except FieldError as exc:
        return admin_error(request, 422, f"{exc.message}. Nothing was changed.")
    try:
        await suppress_as(get_session(request), subscriber=sub, reason=reason, actor=Actor.of(request))
    except SubscriberStateError as exc:
        return admin_error(request, 409, str(exc))
    return _to_detail(sub.id, "suppressed")


async def subscriber_erase(request: Request) -> Response:
    """GET: the confirmation page; POST: erase when the typed address matches."""
    sub = await _subscriber(request)
    if request.method == "GET":
        return page(request, "admin/subscriber_erase.html", {"subscriber": sub, "error": None})
    async with request.form() as form:
        typed = str(form.get("confirm_email") or "").strip()
    if typed.lower() != sub.email_key:
        return page(request, "admin/subscriber_erase.html", {
            "subscriber": sub, "error": "Type the subscriber's address exactly to confirm. Nothing was erased."},
            422)
    actor = Actor.of(request)  # taken before the erase expires the session's objects
    await erase_as(get_session(request), tokens=tokens_of(request), subscriber_id=sub.id, status=sub.status,
                   actor=actor)
    await _reload_staff(request)
    return RedirectResponse("/admin/subscribers?notice=erased", status_code=303)


# -- import -----------------------------------------------------------------------------------


def _import_page(request: Request, status_code: int = 200, **ctx: Any) -> Response:
    # An error is about the check form's file (the apply form is not shown again), or its "From".
    base: dict[str, Any] = {"report": None, "error": None, "error_field": "check-file", "token": None,
                            "applied": False, "filename": "",
                            "send_confirmation": False, "max_mb": MAX_IMPORT_BYTES >> 20, "sources": SOURCE_LABELS,
                            "layout": "", "consented": False}
    return page(request, "admin/subscriber_import.html", {**base, **ctx}, status_code)


async def _run_import(request: Request, binary: IO[bytes], *, filename: str, sha256: str, dry_run: bool,
                      send_confirmation: bool, layout: str, consented: bool) -> ImportReport:
    """The newsletter's import action in a savepoint of the request's transaction: rolled back for
    a dry run or a bad file (ImportFileError), kept (with its audit row) for an apply."""
    session = get_session(request)
    actor = Actor.of(request)
    nested = await session.begin_nested()
    try:
        report = await import_subscribers_as(session, binary, actor=actor, filename=filename, sha256=sha256,
                                             settings=settings_of(request), tokens=tokens_of(request),
                                             source="admin import", send_confirmation=send_confirmation,
                                             dry_run=dry_run, layout=layout or None, consented=consented)
    except BaseException:
        await nested.rollback()
        await _reload_staff(request)
        raise
    if dry_run:
        await nested.rollback()
    else:
        await nested.commit()
    await _reload_staff(request)
    return report


async def import_upload(request: Request) -> Response:
    async with request.form(max_files=1) as form:
        upload = form.get("file")
        step = str(form.get("step") or "check")
        send_confirmation = form.get("send_confirmation") == "1"
        consented = form.get("consented") == "1"
        layout = str(form.get("from") or "")
        token = str(form.get("token") or "")
        if layout and layout not in SOURCE_LABELS:
            return _import_page(request, 422, error=f"From: expected one of {', '.join(SOURCE_LABELS.values())}.",
                                error_field="check-from")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return _import_page(request, 422, error="File: choose a CSV file to upload.")
        filename = upload.filename[:200]
        digest = file_sha256(upload.file)
        tokens = tokens_of(request)
        if step == "apply":
            try:
                signed = tokens.loads(IMPORT_PURPOSE, token, max_age=IMPORT_TOKEN_AGE)
            except TokenError:
                return _import_page(request, 422, error="This check has expired or was not made here: check the "
                                    "file again first. Nothing was imported.")
            if signed.get("sha256") != digest or signed.get("staff") != staff_of(request).id:
                return _import_page(request, 422, error="File: this is not the file that was checked. Check it "
                                    "first, then apply the same file. Nothing was imported.")
            send_confirmation = bool(signed.get("confirm"))
            layout, consented = str(signed.get("from") or ""), bool(signed.get("consented"))
        try:
            report = await _run_import(request, upload.file, filename=filename, sha256=digest,
                                       dry_run=step != "apply", send_confirmation=send_confirmation,
                                       layout=layout, consented=consented)
        except ImportFileError as exc:
            return _import_page(request, 422, error=f"{filename}: {exc}. Nothing was imported.")
    if step != "apply":
        signed_token = tokens.dumps(IMPORT_PURPOSE, {"sha256": digest, "staff": staff_of(request).id,
                                                     "confirm": send_confirmation, "from": layout,
                                                     "consented": consented})
        return _import_page(request, report=report, token=signed_token, filename=filename,
                            send_confirmation=send_confirmation, layout=layout, consented=consented)
    return _import_page(request, report=report, applied=True, filename=filename)


async def import_page(request: Request) -> Response:
    return _import_page(request)


# -- export -----------------------------------------------------------------------------------


def _export_filter(request: Request) -> SubscriberFilter:
    params = request.query_params
    status = params.get("status", "")
    return SubscriberFilter(status=status if status in SUBSCRIBER_STATUSES else "", topic=params.get("topic", "")[:40],
                            q=params.get("q", "").strip()[:200])


def _matches(flt: SubscriberFilter, row: dict[str, Any]) -> bool:
    """The list page's topic and search filters, applied to the exporter's rows."""
    if flt.topic and flt.topic not in row["topics"].split(";"):
        return False
    q = flt.q.lower()
    return not q or q in row["email"].lower() or q in row["name"].lower()


async def subscriber_export(request: Request) -> Response:
    params = request.query_params
    if params.get("status") and params["status"] not in SUBSCRIBER_STATUSES:
        return admin_error(request, 400, f"Status: expected one of {', '.join(SUBSCRIBER_STATUSES)}.")
    flt = _export_filter(request)
    await record_subscriber_export(get_session(request), actor=Actor.of(request),
                                   detail=filter_detail(flt.query_args()))
    sessions = request.app.state.sessions

    async def body() -> AsyncIterator[list[Any]]:
        async with sessions() as session:
            header: list[str] | None = None
            async for cells in export_rows(session, status=flt.status or None):
                if header is None:
                    header = cells
                    yield cells
                elif _matches(flt, dict(zip(header, cells, strict=True))):
                    yield cells

    return StreamingResponse(stream_csv(body()), media_type="text/csv; charset=utf-8", headers={
        "content-disposition": 'attachment; filename="subscribers.csv"', "cache-control": "no-store"})


routes: list[BaseRoute] = [
    Route("/subscribers/export.csv", subscriber_export, name="admin_subscribers_export"),
    Route("/subscribers/import", import_page, name="admin_subscribers_import"),
    Route("/subscribers/{subscriber_id:int}/unsubscribe", subscriber_unsubscribe, methods=["POST"],
          name="admin_subscriber_unsubscribe"),
    Route("/subscribers/{subscriber_id:int}/suppress", subscriber_suppress, methods=["POST"],
          name="admin_subscriber_suppress"),
    Route("/subscribers/{subscriber_id:int}/erase", subscriber_erase, methods=["GET", "POST"],
          name="admin_subscriber_erase"),
]

# Mounted beside the /admin Mount (before it), behind the same guard, with a larger body limit.
upload_routes: list[BaseRoute] = [
    Route("/admin/subscribers/import", AdminGuardMiddleware(request_response(import_upload)), methods=["POST"],
          max_body_size=MAX_IMPORT_BYTES, name="admin_subscribers_import_upload"),
]
