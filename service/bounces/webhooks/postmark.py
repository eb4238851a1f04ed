"""Postmark's Bounce and SpamComplaint webhooks. Postmark signs nothing: the webhook URL carries
HTTP Basic credentials (https://user:password@host/webhooks/postmark) that must equal
POSTMARK_WEBHOOK_CREDENTIALS, compared in constant time.

Bounce types: HardBounce and BadEmailAddress are hard; SoftBounce, Transient, DnsError and
Blocked are soft; SpamComplaint is a complaint; the rest (AutoResponder, Subscribe, DMARCPolicy,
ManuallyDeactivated, ...) are not about the address and are ignored. Postmark's MessageID is its
own, not our Message-ID: events are matched by address."""

from __future__ import annotations

import base64
import binascii
import hmac

from service.bounces.events import MailEvent
from service.bounces.webhooks.common import (
    Received,
    Refused,
    diagnostic,
    event_key,
    iso_time,
    obj,
    parse_json,
    recipient,
    status_of,
)

HARD = {"HardBounce", "BadEmailAddress"}
SOFT = {"SoftBounce", "Transient", "DnsError", "Blocked"}
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="tidings webhooks", charset="UTF-8"'}


def verify(received: Received) -> None:
    scheme, _, encoded = received.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise Refused(401, "HTTP Basic credentials are missing: put them in the webhook URL in Postmark",
                      _CHALLENGE)
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Refused(401, "the Basic credentials are not base64", _CHALLENGE) from None
    expected = received.settings.postmark_webhook_credentials
    assert expected is not None
    if not hmac.compare_digest(given, expected.encode()):
        raise Refused(401, "the Basic credentials do not match POSTMARK_WEBHOOK_CREDENTIALS", _CHALLENGE)


async def receive(received: Received) -> list[MailEvent]:
    verify(received)
    data = obj(parse_json(received.body), "the body")
    record_type, bounce_type = data.get("RecordType"), data.get("Type")
    if record_type == "SpamComplaint" or (record_type == "Bounce" and bounce_type == "SpamComplaint"):
        kind = "complaint"
    elif record_type == "Bounce" and bounce_type in HARD:
        kind = "hard"
    elif record_type == "Bounce" and bounce_type in SOFT:
        kind = "soft"
    else:
        return []  # deliveries, opens, clicks, auto-replies: nothing about the address
    ident = data.get("ID")
    if not isinstance(ident, (int, str)) or isinstance(ident, bool) or str(ident) == "":
        raise Refused(400, "ID: expected Postmark's record id")
    details = data.get("Details")
    return [MailEvent(kind=kind, recipient=recipient(data.get("Email"), "Email"), source="postmark",
                      event_key=event_key("postmark", str(record_type), str(ident)),
                      occurred_at=iso_time(data.get("BouncedAt"), received.now),
                      diagnostic=diagnostic(f"{bounce_type}:", data.get("Description"), details),
                      status=status_of(details, data.get("Description")))]
