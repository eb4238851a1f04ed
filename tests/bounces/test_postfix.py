"""End to end with a real MTA: a digest goes to Debian's Postfix, which relays it to a "remote"
server that refuses the recipient; Postfix itself writes the delivery-status report and delivers
it over LMTP to `tidings inbound` at our VERP address; the subscriber ends up bounced with
Postfix's diagnostic. No DNS: a transport map sends each domain to a loopback port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from service.bounces.inbound import start_inbound
from service.settings import Settings
from tests.bounces.helpers import stored_events
from tests.bounces.postfix import PostfixInstance, unavailable
from tests.campaigns.helpers import add_subscriber, deliveries, make_campaign, sender_for, subscriber
from tests.conftest import Database
from tests.smtp import SmtpServer, free_port

pytestmark = pytest.mark.slow

REFUSAL = "550 5.1.1 <gone@remote.test>: Recipient address rejected: User unknown in local recipient table"


@pytest.fixture
def remote() -> Iterator[SmtpServer]:
    """The recipient's server: accepts the connection, refuses the one address."""
    server = SmtpServer()
    server.start()
    server.handler.behaviour.refuse_recipients = {"gone@remote.test": REFUSAL}
    try:
        yield server
    finally:
        server.stop()


async def test_postfix_bounce_reaches_tidings_inbound_and_suppresses_the_subscriber(
        db: Database, settings: Settings, remote: SmtpServer) -> None:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    inbound = await start_inbound(db.sessions, settings, port=0, hostname="inbound.tidings-test.invalid")
    lmtp_port = inbound.sockets[0].getsockname()[1]
    postfix = PostfixInstance(free_port(), {
        "remote.test": f"smtp:[127.0.0.1]:{remote.port}",
        "bounces.clinic.test": f"lmtp:inet:127.0.0.1:{lmtp_port}",
    })
    try:
        await asyncio.to_thread(postfix.start)
        kept = await add_subscriber(db, "kept@remote.test")
        gone = await add_subscriber(db, "gone@remote.test")
        campaign_id = await make_campaign(db, settings)
        sender = sender_for(db, settings, f"smtp://127.0.0.1:{postfix.port}?starttls=never")
        assert await sender.run_campaign(campaign_id) == "sent"
        await sender.transport.close()
        # Postfix took both: for the campaign they are sent; the bounce comes later, by LMTP.
        assert {d.status for d in await deliveries(db, campaign_id)} == {"sent"}
        deadline = time.monotonic() + 120
        while (await subscriber(db, gone)).status != "bounced":
            assert time.monotonic() < deadline, f"no bounce arrived; Postfix's log:\n{postfix.log}"
            await asyncio.sleep(0.2)
    finally:
        await asyncio.to_thread(postfix.stop)
        inbound.close()
        await inbound.wait_closed()
    assert [m.recipients for m in remote.received] == [["kept@remote.test"]]
    assert remote.received[0].sender.startswith("bounces+") and remote.received[0].sender.endswith(
        "@bounces.clinic.test")  # the VERP address as the remote server saw it in MAIL FROM
    row = await subscriber(db, gone)
    assert "Recipient address rejected: User unknown in local recipient table" in (row.last_bounce or "")
    assert (await subscriber(db, kept)).status == "confirmed"
    (event,) = await stored_events(db)
    assert (event.kind, event.source, event.status, event.outcome) == ("hard", "lmtp", "5.1.1", "suppressed")
    assert event.campaign_id == campaign_id and event.subscriber_id == gone
    assert "550 5.1.1" in event.diagnostic
    assert {d.subscriber_id: d.bounced for d in await deliveries(db, campaign_id)} == {kept: False, gone: True}
