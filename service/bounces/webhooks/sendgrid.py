"""SendGrid's signed Event Webhook: an ECDSA P-256 signature (SHA-256, DER, base64) of the
timestamp header followed by the raw body, checked with SENDGRID_WEBHOOK_PUBLIC_KEY (the
verification key SendGrid shows, base64 DER; PEM works too). A timestamp more than five minutes
from our clock is refused. The body is a list of events: `bounce` of type bounce is hard and of
type blocked soft, `dropped` because of a bounced address is hard, `spamreport` is a complaint;
the rest (processed, delivered, deferred, opens, ...) is ignored."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from service.bounces.events import MailEvent
from service.bounces.webhooks.common import (
    Received,
    Refused,
    diagnostic,
    epoch_time,
    event_key,
    fresh,
    message_id,
    obj,
    parse_json,
    recipient,
    status_of,
)
from service.bounces.webhooks.keys import load_public_key

SIGNATURE = "x-twilio-email-event-webhook-signature"
TIMESTAMP = "x-twilio-email-event-webhook-timestamp"
MAX_EVENTS = 10_000


def verify(received: Received) -> None:
    given, timestamp = received.headers.get(SIGNATURE), received.headers.get(TIMESTAMP)
    if not given or not timestamp:
        raise Refused(401, "X-Twilio-Email-Event-Webhook-Signature and -Timestamp are required (signed event "
                           "webhook)")
    key = load_public_key(received.settings.sendgrid_webhook_public_key or "")
    try:
        key.verify(base64.b64decode(given, validate=True), timestamp.encode() + received.body,
                   ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise Refused(403, "the signature does not verify with SENDGRID_WEBHOOK_PUBLIC_KEY") from None
    fresh(timestamp, received.now, "X-Twilio-Email-Event-Webhook-Timestamp")


def _kind(event: dict[str, Any]) -> str | None:
    name = event.get("event")
    if name == "bounce":
        return "soft" if event.get("type") == "blocked" else "hard"
    if name == "dropped" and "bounce" in str(event.get("reason", "")).lower():
        return "hard"
    return "complaint" if name == "spamreport" else None


async def receive(received: Received) -> list[MailEvent]:
    verify(received)
    items = parse_json(received.body)
    if not isinstance(items, list) or len(items) > MAX_EVENTS:
        raise Refused(400, f"the body: expected a list of at most {MAX_EVENTS} events")
    events = []
    for n, item in enumerate(items):
        event = obj(item, f"[{n}]")
        kind = _kind(event)
        if kind is None:
            continue
        ident = event.get("sg_event_id")
        if not isinstance(ident, str) or not ident:
            raise Refused(400, f"[{n}].sg_event_id: expected SendGrid's event id")
        reason = event.get("reason")
        events.append(MailEvent(
            kind=kind, recipient=recipient(event.get("email"), f"[{n}].email"), source="sendgrid",
            event_key=event_key("sendgrid", ident), occurred_at=epoch_time(event.get("timestamp"), received.now),
            diagnostic=diagnostic(event.get("type") or event.get("event"), reason),
            status=status_of(event.get("status"), reason), message_id=message_id(event.get("smtp-id"))))
    return events
