"""Mailgun's webhooks (JSON: `signature` and `event-data`). The signature is HMAC-SHA256 of
timestamp + token with MAILGUN_WEBHOOK_SIGNING_KEY; it does not cover the body, so a timestamp
more than five minutes from our clock is refused and each token is accepted once (a captured
request cannot be replayed with another body).

Events: `failed` with severity `permanent` is hard, `temporary` soft; `complained` is a
complaint; the rest (delivered, opened, ...) is ignored."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from service.bounces.events import MailEvent
from service.bounces.queries import use_nonce
from service.bounces.webhooks.common import (
    MAX_SKEW,
    Received,
    Refused,
    diagnostic,
    epoch_time,
    event_key,
    fresh,
    message_id,
    obj,
    optional_obj,
    parse_json,
    recipient,
    status_of,
)

KINDS = {("failed", "permanent"): "hard", ("failed", "temporary"): "soft", ("complained", None): "complaint"}


async def verify(received: Received, signed: dict[str, Any]) -> None:
    timestamp, token, given = (signed.get(k) for k in ("timestamp", "token", "signature"))
    if not all(isinstance(v, str) and v for v in (timestamp, token, given)):
        raise Refused(401, "signature: expected timestamp, token and signature (Mailgun's signed webhook)")
    assert isinstance(timestamp, str) and isinstance(token, str) and isinstance(given, str)
    key = received.settings.mailgun_webhook_signing_key
    assert key is not None
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Refused(403, "signature: does not verify with MAILGUN_WEBHOOK_SIGNING_KEY")
    fresh(timestamp, received.now, "signature")
    if len(token) > 180 or not await use_nonce(received.session, key=f"mailgun:{token}", now=received.now,
                                               keep=2 * MAX_SKEW):
        raise Refused(403, "signature: this token was used before; refused as a replay")


async def receive(received: Received) -> list[MailEvent]:
    data = obj(parse_json(received.body), "the body")
    signed = data.get("signature")
    await verify(received, signed if isinstance(signed, dict) else {})
    event = obj(data.get("event-data"), "event-data")
    name = event.get("event")
    key: Any = (name, event.get("severity") if name == "failed" else None)
    kind = KINDS.get(key)
    if kind is None:
        return []
    ident = event.get("id")
    if not isinstance(ident, str) or not ident:
        raise Refused(400, "event-data.id: expected Mailgun's event id")
    status = optional_obj(event.get("delivery-status"))
    headers = (event.get("message") or {}).get("headers") if isinstance(event.get("message"), dict) else None
    texts = (status.get("message"), status.get("description"))
    return [MailEvent(kind=kind, recipient=recipient(event.get("recipient"), "event-data.recipient"),
                      source="mailgun", event_key=event_key("mailgun", ident),
                      occurred_at=epoch_time(event.get("timestamp"), received.now),
                      diagnostic=diagnostic(str(status.get("code") or ""), *texts, event.get("reason")),
                      status=status_of(*texts),
                      message_id=message_id(headers.get("message-id")) if isinstance(headers, dict) else None)]
