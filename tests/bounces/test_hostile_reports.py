"""Reports quoting fields the database cannot hold as they are (a NUL, which PostgreSQL refuses
in text; a Message-ID longer than its column; a status that is not one): each is recorded with
the field cleaned, and answered once, never "try again later" for ever."""

from __future__ import annotations

import pytest

from service.bounces.inbound import start_inbound
from service.settings import Settings
from tests.bounces.helpers import lmtp_send, sample, stored_events
from tests.bounces.test_intake import _sent
from tests.conftest import Database
from tests.factories import subscriber
from tests.smtp import SmtpServer

FINAL = b"Final-Recipient: rfc822; ana@example.org"


def _nul_in_message_id(raw: bytes, message_id: bytes) -> bytes:
    return raw.replace(message_id, message_id.replace(b"@", b"\0@"))


def _long_message_id(raw: bytes, message_id: bytes) -> bytes:
    return raw.replace(message_id, message_id[:-1] + b"." + b"m" * 300 + b">")


def _nul_in_recipient(raw: bytes, message_id: bytes) -> bytes:
    return raw.replace(FINAL, FINAL.replace(b"ana@", b"an\0a@"))


def _nul_in_status(raw: bytes, message_id: bytes) -> bytes:
    return raw.replace(b"Status: 5.1.1", b"Status: 5.1\0" + b"1")


@pytest.mark.parametrize("damage", [_nul_in_message_id, _long_message_id, _nul_in_recipient, _nul_in_status],
                         ids=lambda f: f.__name__.strip("_"))
async def test_a_report_with_unstorable_fields_is_recorded_cleaned_not_deferred_for_ever(
    db: Database, settings: Settings, smtp: SmtpServer, damage: object
) -> None:
    sent = await _sent(db, settings, smtp, "ana@example.org")
    sid, verp, message_id = sent["ana@example.org"]
    raw = sample("postfix_dsn", return_path=verp, rcpt="ana@example.org", message_id=message_id)
    raw = damage(raw, message_id.encode())  # type: ignore[operator]
    server = await start_inbound(db.sessions, settings, port=0)
    try:
        _rcpt, data = await lmtp_send(server.sockets[0].getsockname()[1], [verp], raw)
    finally:
        server.close()
        await server.wait_closed()
    assert data == ["250 2.0.0 bounce recorded"]
    assert (await subscriber(db, sid)).status == "bounced"
    (stored,) = await stored_events(db)
    assert stored.recipient == "ana@example.org"
    assert stored.message_id is None or ("\0" not in stored.message_id and len(stored.message_id) <= 255)
    assert stored.status in ("5.1.1", None)
