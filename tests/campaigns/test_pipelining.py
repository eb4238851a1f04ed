"""Against a server that offers PIPELINING, campaign messages go out with MAIL, RCPT and DATA in
one write, and every kind of answer still lands on the right delivery."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from service.settings import Settings
from tests.conftest import Database
from tests.factories import add_subscriber, deliveries, make_campaign, sender_for, subscriber
from tests.smtp import RecordingHandler, SmtpServer


class PipeliningHandler(RecordingHandler):
    def __init__(self) -> None:
        super().__init__()
        self.offered: list[str] = []

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        responses = [*responses[:-1], "250-PIPELINING", responses[-1]]
        self.offered = responses
        return responses


@pytest.fixture
def pipelining_smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.handler = PipeliningHandler()
    server.start()
    yield server
    server.stop()


async def test_pipelined_sends_record_every_answer_on_the_right_delivery(
    db: Database, settings: Settings, pipelining_smtp: SmtpServer
) -> None:
    smtp = pipelining_smtp
    good = [await add_subscriber(db, f"ok{i}@example.org") for i in range(8)]
    gone = await add_subscriber(db, "gone@example.org")
    campaign_id = await make_campaign(db, settings)
    smtp.handler.behaviour.refuse_recipients = {"gone@example.org": "550 5.1.1 no such user"}
    smtp.handler.behaviour.data_failures = ["451 4.3.0 try again"]
    smtp.handler.behaviour.drop_connections = 1
    sender = sender_for(db, settings, smtp.url, backoff_base=0.01, backoff_cap=0.02)
    assert await sender.run_campaign(campaign_id) == "sent"
    pipes = sender.transport._idle  # type: ignore[attr-defined]
    assert pipes and all(pipe.pipelining for pipe in pipes)
    await sender.transport.close()
    assert "250-PIPELINING" in smtp.handler.offered  # type: ignore[attr-defined]
    assert Counter(r for m in smtp.received for r in m.recipients) == {f"ok{i}@example.org": 1 for i in range(8)}
    rows = {r.subscriber_id: r for r in await deliveries(db, campaign_id)}
    assert all(rows[s].status == "sent" and rows[s].message_id for s in good)
    by_id = {m.message["Message-ID"]: m.recipients[0] for m in smtp.received}
    assert {by_id[rows[s].message_id] for s in good} == {f"ok{i}@example.org" for i in range(8)}
    assert rows[gone].status == "failed" and rows[gone].bounced
    assert (await subscriber(db, gone)).status == "bounced"
