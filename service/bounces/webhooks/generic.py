"""The generic JSON webhook, for a relay or script of your own: the body is signed with
WEBHOOK_SECRET (HMAC-SHA256 of the raw body, hex, in `X-Tidings-Signature: sha256=<hex>`).

    {"events": [{"id": "relay-7f3a", "type": "hard", "recipient": "ana@example.org",
                 "occurred_at": "2026-12-02T10:00:00Z", "status": "5.1.1",
                 "diagnostic": "smtp; 550 5.1.1 no such user",
                 "message_id": "<...@example.org>", "return_path": "bounces+...@bounces.example.org"}]}

`id` (your event id: the same id twice counts once), `type` (hard, soft or complaint) and
`recipient` are required; the rest is optional. A single event object without the `events`
list works too. Every event is checked before any is recorded: one bad event refuses the batch.
The schema is in the OpenAPI document (service/openapi.py GENERIC_WEBHOOK).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from service.bounces.events import KINDS, MailEvent
from service.bounces.webhooks.common import (
    Received,
    Refused,
    diagnostic,
    event_key,
    iso_time,
    message_id,
    parse_json,
    return_token,
)
from service.validation import FieldError, clean_email

HEADER = "x-tidings-signature"
MAX_EVENTS = 1000
MAX_ID = 190


def signature(secret: str, body: bytes) -> str:
    """The header value that signs `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(received: Received) -> None:
    given = received.headers.get(HEADER)
    if not given:
        raise Refused(401, "X-Tidings-Signature is missing: expected sha256=<hex HMAC-SHA256 of the body>")
    secret = received.settings.webhook_secret
    assert secret is not None
    if not hmac.compare_digest(given.strip().lower().encode(), signature(secret, received.body).encode()):
        raise Refused(403, "X-Tidings-Signature does not match the body (HMAC-SHA256 with WEBHOOK_SECRET)")


async def receive(received: Received) -> list[MailEvent]:
    verify(received)
    data = parse_json(received.body)
    items = data.get("events") if isinstance(data, dict) and "events" in data else [data]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_EVENTS:
        raise Refused(422, f"events: expected a list of 1 to {MAX_EVENTS} events")
    return [_event(received, item, f"events[{n}]") for n, item in enumerate(items)]


def _event(received: Received, item: Any, where: str) -> MailEvent:
    if not isinstance(item, dict):
        raise Refused(422, f"{where}: expected an object")
    ident, kind, recipient = item.get("id"), item.get("type"), item.get("recipient")
    if not isinstance(ident, str) or not 1 <= len(ident) <= MAX_ID:
        raise Refused(422, f"{where}.id: expected your event id, 1 to {MAX_ID} characters")
    if kind not in KINDS:
        raise Refused(422, f"{where}.type: expected one of {', '.join(KINDS)}")
    try:
        recipient = clean_email({"recipient": recipient if isinstance(recipient, str) else ""}, "recipient")
    except FieldError:
        raise Refused(422, f"{where}.recipient: expected an email address") from None
    for key in ("occurred_at", "status", "diagnostic", "message_id", "return_path"):
        if item.get(key) is not None and not isinstance(item[key], str):
            raise Refused(422, f"{where}.{key}: expected a string")
    status = item.get("status") or None
    if status is not None and len(status) > 16:
        raise Refused(422, f"{where}.status: expected an enhanced status code such as 5.1.1")
    return MailEvent(kind=kind, recipient=recipient, source="webhook", event_key=event_key("webhook", ident),
                     occurred_at=iso_time(item.get("occurred_at"), received.now),
                     diagnostic=diagnostic(item.get("diagnostic")), status=status,
                     return_token=return_token(received.settings, item.get("return_path")),
                     message_id=message_id(item.get("message_id")))
