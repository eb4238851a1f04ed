"""Reading what came back by email: RFC 3464 delivery-status reports, RFC 5965 abuse reports
(feedback loops), the non-standard bounces of big MTAs (flufl.bounce: the detectors GNU
Mailman uses), and auto-replies (RFC 3834), which are recognised and ignored.

Order matters: bounce and complaint reports are recognised first, because MTAs mark their own
bounces as automatic (Postfix and Exim send `Auto-Submitted: auto-replied`); only a message that
is neither is checked for the marks of an out-of-office or other automatic answer.

The message a report is about is identified by the return path: the token of our VERP address,
from the envelope recipient (LMTP) or from the report's own To / Delivered-To / X-Original-To
headers, or the Return-Path of a returned message (feedback loops quote the whole message). The
Message-ID of the returned headers is kept too, since a delivery-status report has no field for
it. Nothing here touches the database: `service.bounces.policy.record` decides what counts.
"""

from __future__ import annotations

import datetime as dt
import email
import email.errors
import email.header
import email.policy
import functools
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from email.message import Message
from email.utils import parsedate_to_datetime

from flufl.bounce import all_failures

from service.bounces.events import MailEvent, one_line, report_key
from service.bounces.mime import DsnParts, Fields, address_of, addresses_of, headers_only, lean_dsn, quick_report
from service.bounces.returnpath import token_of_address
from service.db import utcnow
from service.settings import Settings

# flufl.bounce logs every detector it runs (info) and a detector's exception (error) before
# raising it; `_non_standard` handles that exception, so neither belongs in our logs.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)

# Automatic answers (RFC 3834 and the common non-standard marks) that are never bounces.
_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Vacation", "X-Mail-Autoreply")
_AUTO_SUBJECT = re.compile(r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheit|"
                           r"absence|vacation|away from|r[ée]ponse automatique|auto:)", re.IGNORECASE)
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_MESSAGE_ID = re.compile(r"^Message-ID:\s*(<[^>\s]+>)", re.IGNORECASE | re.MULTILINE)
# Permanent codes that say "not now" rather than "no such address": counted as soft bounces.
_SOFT_PERMANENT = ("5.2.2", "5.7.")
# Feedback types of RFC 5965 that are complaints ("not-spam" and the rest are not).
_COMPLAINT_TYPES = ("abuse", "fraud", "virus", "other")
# Where a report names the address it was sent to (our return path), in the order they are tried.
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To")


@dataclass(frozen=True)
class Failure:
    kind: str  # hard | soft | complaint
    recipient: str
    status: str | None = None
    diagnostic: str = ""


@dataclass(frozen=True)
class Report:
    """What a message is. `kind`: bounce, complaint, autoreply, delay (a DSN that is only a
    warning or a success notice), unrecognised."""

    kind: str
    failures: tuple[Failure, ...] = ()
    report_id: str | None = None  # the report's own Message-ID
    message_id: str | None = None  # our Message-ID, from the returned headers
    tokens: tuple[str, ...] = ()  # return-path tokens found in the report (unverified)
    occurred_at: dt.datetime | None = None
    detail: str = ""


def parse_report(raw: bytes, settings: Settings) -> Report:
    """Classify one message and read its failures: a plain delivery-status report by the lean
    reader, another standard report by the quick reader (both `service.bounces.mime`), anything
    else, or a report whose returned message names no Message-ID there, with the email
    package's full parse. Each gives what the full parse would."""
    lean = lean_dsn(raw)
    report = _lean_report(lean, settings) if lean is not None else None
    if report is not None:
        return report
    quick = quick_report(raw)
    if quick is not None:
        report = report_of(quick, settings)
        if report.message_id or report.kind not in ("bounce", "complaint"):
            return report
    return report_of(email.message_from_bytes(raw, policy=email.policy.compat32), settings)


def report_of(msg: Message, settings: Settings) -> Report:
    """Classify one parsed message and read its failures."""
    report_type = (msg.get_param("report-type") or "") if msg.get_content_type() == "multipart/report" else ""
    if str(report_type).lower() == "delivery-status":
        report = _dsn(msg)
    elif str(report_type).lower() == "feedback-report":
        report = _arf(msg)
    else:
        report = _non_standard(msg)
    if report is None:
        kind = "autoreply" if is_autoreply(msg) else "unrecognised"
        report = Report(kind, detail="an automatic reply, ignored" if kind == "autoreply" else
                        "neither a bounce nor a complaint report")
    returned = _returned_headers(msg)
    message_id = _header(returned, "Message-ID") if returned is not None else ""
    if not message_id and report.kind in ("bounce", "complaint"):
        found = _MESSAGE_ID.search(_text_of(msg))
        message_id = found.group(1) if found else ""
    tokens = _tokens(settings, msg, returned)
    return Report(report.kind, report.failures, report_id=_header(msg, "Message-ID") or None,
                  message_id=message_id or None, tokens=tokens, occurred_at=_date(msg), detail=report.detail)


def mail_events(report: Report, *, source: str, raw: bytes, return_token: str | None = None) -> list[MailEvent]:
    """The events of a bounce or complaint report; `return_token` (the envelope recipient's)
    wins over any token found in the report."""
    token = return_token or (report.tokens[0] if report.tokens else None)
    at = report.occurred_at or utcnow()
    return [
        MailEvent(kind=f.kind, recipient=f.recipient, source=source, occurred_at=at, diagnostic=f.diagnostic,
                  status=f.status, return_token=token, message_id=report.message_id,
                  event_key=report_key(report_message_id=report.report_id, recipient=f.recipient, kind=f.kind,
                                       fallback=raw))
        for f in report.failures
    ]


# -- the formats ----------------------------------------------------------------------------


def _dsn(msg: Message) -> Report | None:
    """RFC 3464: one block per recipient with Action, Status, Final-Recipient, Diagnostic-Code."""
    part = next((p for p in msg.walk() if p.get_content_type() == "message/delivery-status"), None)
    blocks = part.get_payload() if part is not None else None
    if not isinstance(blocks, list):
        return None
    return _dsn_of([functools.partial(_header, b) for b in blocks[1:] if isinstance(b, Message)])


def _lean_report(parts: DsnParts, settings: Settings) -> Report | None:
    """`report_of` for the fields `mime.lean_dsn` read; None when the returned message names no
    Message-ID (the full parse then looks for one in the text)."""
    report = _dsn_of([functools.partial(_field, b) for b in parts.blocks[1:]])
    message_id = _field(parts.returned, "Message-ID")
    if not message_id and report.kind == "bounce":
        return None
    candidates: list[str] = []
    for name in _RECIPIENT_HEADERS:
        candidates += addresses_of(parts.top.get(name.lower(), []))
    if parts.returned is not None:
        candidates += addresses_of(parts.returned.get("return-path", []))
    return Report(report.kind, report.failures, report_id=_field(parts.top, "Message-ID") or None,
                  message_id=message_id or None, tokens=_known_tokens(settings, candidates),
                  occurred_at=_date_of(_field(parts.top, "Date")), detail=report.detail)


def _dsn_of(blocks: Sequence[Callable[[str], str]]) -> Report:
    """The report of the per-recipient blocks, each given as its field reader."""
    failures, actions = [], []
    for field in blocks:
        action = field("Action").lower()
        actions.append(action)
        recipient = _address_field(field("Final-Recipient") or field("Original-Recipient"))
        if action != "failed" or not recipient:
            continue
        status_match = _STATUS.search(field("Status"))
        status = status_match.group(0) if status_match else None
        diagnostic = one_line(field("Diagnostic-Code") or f"{status or ''} {action}".strip())
        failures.append(Failure(_bounce_kind(status), recipient, status, diagnostic))
    if failures:
        return Report("bounce", tuple(failures), detail="a delivery-status report (RFC 3464)")
    return Report("delay", detail=f"a delivery-status report that is no failure ({', '.join(actions) or 'empty'})")


def _bounce_kind(status: str | None) -> str:
    if status is None:
        return "hard"
    if status.startswith("4.") or status.startswith(_SOFT_PERMANENT):
        return "soft"
    return "hard"


def _arf(msg: Message) -> Report | None:
    """RFC 5965: Feedback-Type and (optionally) Original-Rcpt-To, with the reported message."""
    part = next((p for p in msg.walk() if p.get_content_type() == "message/feedback-report"), None)
    if part is None:
        return None
    payload = part.get_payload()
    first = payload[0] if isinstance(payload, list) and payload else None
    fields: Message = first if isinstance(first, Message) else email.message_from_string(
        str(payload), policy=email.policy.compat32)
    feedback_type = _header(fields, "Feedback-Type").lower()
    if feedback_type not in _COMPLAINT_TYPES:
        return Report("delay", detail=f"a feedback report of type {feedback_type or 'none'}, not a complaint")
    returned = _returned_headers(msg)
    recipients = [_address_field(v) for v in fields.get_all("Original-Rcpt-To", [])]
    if not any(recipients) and returned is not None:
        recipients = addresses_of(returned.get_all("To", []))
    recipients = [r for r in recipients if r] or [""]
    diagnostic = one_line(f"{feedback_type} report from {_header(fields, 'User-Agent') or 'a feedback loop'}")
    return Report("complaint", tuple(Failure("complaint", r, None, diagnostic) for r in recipients),
                  detail="an abuse report (RFC 5965)")


def _non_standard(msg: Message) -> Report | None:
    """The bounce formats of MTAs that send no DSN (flufl.bounce's detectors)."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector tripped over a malformed message: it is not a bounce we can read
        return None
    text = _text_of(msg)
    failures = [_explained("hard", _decode(a), text, msg) for a in sorted(permanent)]
    failures += [_explained("soft", _decode(a), text, msg) for a in sorted(temporary - permanent)]
    failures = [f for f in failures if "@" in f.recipient]
    if not failures:
        return None
    return Report("bounce", tuple(failures), detail="a non-standard bounce")


def _explained(kind: str, recipient: str, text: str, msg: Message) -> Failure:
    """A non-standard bounce's failure, with the lines of its text about the address (the
    server's answer is usually there) as the diagnostic, and the status code in them if any."""
    lines = text.splitlines()
    at = next((i for i, line in enumerate(lines) if recipient.lower() in line.lower()), None)
    snippet = " ".join(lines[at:at + 4]) if at is not None else ""
    status = _STATUS.search(snippet)
    code = status.group(0) if status else None
    if code is not None and code[0] in "45":
        kind = _bounce_kind(code)
    return Failure(kind, recipient, code, one_line(snippet or _header(msg, "Subject") or "a bounce"))


def is_autoreply(msg: Message) -> bool:
    """RFC 3834's Auto-Submitted (anything but "no"), the common X-Autoreply-style headers,
    Precedence auto_reply, or an out-of-office subject."""
    auto = _header(msg, "Auto-Submitted").lower()
    if auto and auto != "no":
        return True
    if any(msg.get(h) is not None for h in _AUTO_HEADERS):
        return True
    if _header(msg, "Precedence").lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.match(_header(msg, "Subject")))


# -- pieces ---------------------------------------------------------------------------------


def _header(msg: Message | None, name: str) -> str:
    if msg is None:
        return ""
    value = msg.get(name)
    return "" if value is None else _clean(str(value))


def _field(fields: Fields | None, name: str) -> str:
    """`_header` of plain fields (`mime.Fields`)."""
    values = fields.get(name.lower()) if fields is not None else None
    return _clean(values[0]) if values else ""


def _clean(text: str) -> str:
    """A header value as read: encoded words decoded, whitespace runs as one space."""
    if "=?" in text:
        try:
            text = str(email.header.make_header(email.header.decode_header(text)))
        except (LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
            pass  # an unknown charset or a broken encoded word: keep the raw text
    return " ".join(text.split())


def _decode(address: bytes | str) -> str:
    return address.decode("utf-8", "replace") if isinstance(address, bytes) else address


def _address_field(value: str) -> str:
    """`rfc822; user@example.org` -> user@example.org."""
    _type, _sep, address = value.partition(";")
    address = (address if _sep else value).strip()
    return address_of(address) or address.strip("<>")


def _date(msg: Message) -> dt.datetime | None:
    return _date_of(_header(msg, "Date"))


def _date_of(text: str) -> dt.datetime | None:
    try:
        when = parsedate_to_datetime(text)
        when = when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)  # "-0000": UTC, zone unknown
        when.astimezone(dt.UTC)  # a time UTC cannot hold (31 Dec 9999 west of Greenwich) is no time
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when


def _returned_headers(msg: Message) -> Message | None:
    """The headers of the message the report returns (message/rfc822 or text/rfc822-headers)."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
        elif kind == "text/rfc822-headers":
            return headers_only(bytes(part.get_payload(decode=True) or b""))
    return None


def _text_of(msg: Message) -> str:
    chunks = []
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            body = part.get_payload(decode=True)
            if isinstance(body, bytes):
                chunks.append(body.decode("utf-8", "replace"))
    return "\n".join(chunks)


def _tokens(settings: Settings, msg: Message, returned: Message | None) -> tuple[str, ...]:
    """Return-path tokens in the report's recipient headers, then in the returned message's
    Return-Path."""
    candidates: list[str] = []
    for name in _RECIPIENT_HEADERS:
        candidates += addresses_of(msg.get_all(name, []))
    if returned is not None:
        candidates += addresses_of(returned.get_all("Return-Path", []))
    return _known_tokens(settings, candidates)


def _known_tokens(settings: Settings, addresses: list[str]) -> tuple[str, ...]:
    return tuple(_unique(t for c in addresses if (t := token_of_address(settings, c))))


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def envelope_tokens(settings: Settings, recipients: Sequence[str]) -> list[str]:
    """The tokens of the envelope recipients that are our return-path addresses."""
    return _unique(t for r in recipients if (t := token_of_address(settings, r)))
