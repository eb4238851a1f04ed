"""The outbox page. On the embedded default (no SMTP_URL) it lists what the local mailbox
"delivered", so every flow can be tried without an SMTP server; with SMTP it shows the
transactional queue with failures and a retry button. A message's HTML is served from its own
route under a strict `sandbox` CSP (no scripts, no forms, no same-origin) and framed by the page.

Messages carry personal data, and the inquiry notifications and auto-replies carry inquiry data
(health information), so opening any message is audit-logged (`outbox_view`, its kind, never its
text), and so is a filtered list that shows inquiry mail (`outbox_list`, counts only) and every
search by recipient or subject (`outbox_search`: how many matched, never the words).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from email.message import EmailMessage
from functools import partial
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from service.admin.audit import filter_detail, record_audit
from service.admin.guard import admin_error, get_or_404, page
from service.admin.paging import Page, paginate
from service.db import get_session, utcnow
from service.mail.message import build_message, header_text, message_parts, parse_raw
from service.mail.models import OUTBOX_STATUSES, MailboxMessage, OutboxMessage
from service.mail.outbox import outbox_email, retry_outbox_message
from service.mail.queries import count_mailbox, count_outbox, list_mailbox, list_outbox, outbox_counts
from service.validation import small_int
from service.web import settings_of

INQUIRY_KINDS = ("inquiry_staff", "inquiry_autoreply")
FRAME_CSP = ("sandbox; default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; "
             "font-src https: data:; frame-ancestors 'self'; form-action 'none'; base-uri 'none'")


def _local(request: Request) -> bool:
    return settings_of(request).uses_local_outbox


def _before(request: Request) -> int | None:
    return small_int(request.query_params.get("before", ""))


def _row_id(message: MailboxMessage | OutboxMessage) -> str:
    return str(message.id)


async def outbox(request: Request) -> Response:
    session = get_session(request)
    before = _before(request)
    q = request.query_params.get("q", "").strip()[:200]
    ctx: dict[str, Any] = {"local": _local(request), "statuses": OUTBOX_STATUSES, "status": "", "counts": {},
                           "q": q}
    fetch: Callable[..., Awaitable[Sequence[MailboxMessage | OutboxMessage]]]
    if ctx["local"]:
        fetch = partial(list_mailbox, session, q=q, before_id=before)
        ctx["total"] = await count_mailbox(session, q=q)
    else:
        status = request.query_params.get("status", "")
        status = status if status in OUTBOX_STATUSES else ""
        fetch = partial(list_outbox, session, status=status, q=q, before_id=before)
        ctx.update(status=status, counts=await outbox_counts(session),
                   total=await count_outbox(session, status=status, q=q))
    paging: Page[MailboxMessage | OutboxMessage] = await paginate(
        request, lambda limit: fetch(limit=limit), cursor=_row_id, cursor_param="before")
    rows = paging.rows
    if q:
        await _audit_search(request, status=ctx["status"], matched=ctx["total"], first_page=before is None)
    else:
        await _audit_filtered_list(request, ctx["status"], rows, first_page=before is None)
    return page(request, "admin/outbox.html", {**ctx, "rows": rows, "paging": paging})


async def _audit_search(request: Request, *, status: str, matched: int, first_page: bool) -> None:
    """A search finds staff notices and auto-replies by a client's name or address (inquiry
    data): record that one ran and how many messages matched, never the words, like the
    inquiry search."""
    args = {"status": status, "q": "1"} if status else {"q": "1"}
    await record_audit(get_session(request), request=request, action="outbox_search", target_type="outbox_message",
                       detail={"matched": matched, "first_page": first_page, **filter_detail(args)})


async def _audit_filtered_list(request: Request, status: str, rows: Sequence[MailboxMessage | OutboxMessage], *,
                               first_page: bool) -> None:
    inquiry_rows = sum(1 for r in rows if getattr(r, "kind", "") in INQUIRY_KINDS)
    if status and inquiry_rows:  # a filtered list that shows inquiry mail
        await record_audit(get_session(request), request=request, action="outbox_list",
                           target_type="outbox_message",
                           detail={"status": status, "first_page": first_page, "shown": len(rows),
                                   "inquiry_messages": inquiry_rows})


async def _message(request: Request) -> MailboxMessage | OutboxMessage:
    model: type[MailboxMessage | OutboxMessage] = MailboxMessage if _local(request) else OutboxMessage
    return await get_or_404(get_session(request), model, request.path_params["message_id"], what="message")


async def _audit_view(request: Request, row: MailboxMessage | OutboxMessage, message: EmailMessage,
                      part: str) -> None:
    """Record that a staff member opened a message (`part`: the page or its HTML frame)."""
    kind = row.kind if isinstance(row, OutboxMessage) else str(message["X-Tidings-Kind"] or "")
    await record_audit(get_session(request), request=request, action="outbox_view", target_type="outbox_message",
                       target_id=row.id, detail={"kind": kind, "part": part})


def _email(row: MailboxMessage | OutboxMessage) -> EmailMessage:
    """The message as sent, or (queued outbox mail is rendered at send) as it will be sent."""
    if isinstance(row, MailboxMessage):
        return parse_raw(row.raw)
    try:
        return outbox_email(row)
    except Exception as exc:  # a broken template: show why instead of the message
        return build_message(sender="unknown@invalid", to=row.recipient, subject=header_text(row.subject), html="",
                             text=f"This message cannot be rendered: {type(exc).__name__}: {exc}",
                             message_id=row.message_id)


async def outbox_message(request: Request) -> Response:
    row = await _message(request)
    message = _email(row)
    await _audit_view(request, row, message, "page")
    text, html = message_parts(message)
    headers = [(name, str(message[name])) for name in ("From", "To", "Reply-To", "Subject", "Date", "Message-ID",
                                                         "List-Unsubscribe") if message[name] is not None]
    return page(request, "admin/outbox_message.html", {"row": row, "local": _local(request), "headers": headers,
                                                       "text": text, "has_html": bool(html)})


async def outbox_message_html(request: Request) -> Response:
    row = await _message(request)
    message = _email(row)
    await _audit_view(request, row, message, "html")
    _, html = message_parts(message)
    return HTMLResponse(html, headers={"content-security-policy": FRAME_CSP, "cache-control": "no-store",
                                       "x-frame-options": "SAMEORIGIN"})


async def outbox_retry(request: Request) -> Response:
    if _local(request):
        raise HTTPException(404, "The local outbox has nothing to retry.")
    message_id = request.path_params["message_id"]
    session = get_session(request)
    if not await retry_outbox_message(session, message_id=message_id, now=utcnow()):
        return admin_error(request, 409, "This message is not failed (any more), so it cannot be retried.")
    await record_audit(session, request=request, action="outbox_retry", target_type="outbox_message",
                       target_id=message_id)
    return RedirectResponse(f"/admin/outbox/{message_id}", status_code=303)


routes: list[BaseRoute] = [
    Route("/outbox", outbox, name="admin_outbox"),
    Route("/outbox/{message_id:int}", outbox_message, name="admin_outbox_message"),
    Route("/outbox/{message_id:int}/html", outbox_message_html, name="admin_outbox_message_html"),
    Route("/outbox/{message_id:int}/retry", outbox_retry, methods=["POST"], name="admin_outbox_retry"),
]
