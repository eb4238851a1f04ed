"""The campaign report on known data from real events: a digest sent over SMTP to four readers,
one hard bounce (Postfix's DSN) and one spam complaint (an ARF report), both arriving at the
signed return path, and one reader leaving by the link in their email. The report page and its
CSV say delivered 3, bounced 1, complained 1, unsubscribed after 1; the page draws its chart as
SVG with a text table of the same figures beside it."""

from __future__ import annotations

import csv
import io
import re

import httpx
import pytest

from service.bounces.intake import process_report
from service.settings import Settings
from tests.bounces.conftest import RETURN_PATH
from tests.bounces.helpers import sample
from tests.conftest import Database, make_settings
from tests.factories import ROOMY, add_subscriber, link_in, make_campaign, sender_for, subscriber
from tests.smtp import SmtpServer


@pytest.fixture
def settings(db: Database) -> Settings:
    return make_settings(db, return_path=RETURN_PATH, form_rate_limit=ROOMY)


async def test_bounces_complaints_and_unsubscribes_of_a_sent_digest_are_in_its_report(
        db: Database, settings: Settings, smtp: SmtpServer, admin_client: httpx.AsyncClient) -> None:
    readers = ["ana@example.org", "gone@example.org", "angry@example.org", "leaving@example.org"]
    for email in readers:
        await add_subscriber(db, email)
    campaign_id = await make_campaign(db, settings)
    sender = sender_for(db, settings, smtp.url)
    assert await sender.run_campaign(campaign_id) == "sent"
    await sender.transport.close()
    sent = {m.recipients[0]: m for m in smtp.received}
    assert set(sent) == set(readers)

    for name, email in (("postfix_dsn", "gone@example.org"), ("arf_abuse", "angry@example.org")):
        message_id = str(sent[email].message["Message-ID"])
        raw = sample(name, return_path=sent[email].sender, rcpt=email, message_id=message_id)
        async with db.sessions.begin() as session:
            await process_report(session, raw, settings=settings, source="lmtp")
    assert (await subscriber(db, "gone@example.org")).status == "bounced"  # type: ignore[union-attr]
    assert (await subscriber(db, "angry@example.org")).status == "complained"  # type: ignore[union-attr]
    leave = link_in(sent["leaving@example.org"].message, "/unsubscribe/")
    assert (await admin_client.post(leave, data={"List-Unsubscribe": "One-Click"})).status_code in (200, 303)
    assert (await subscriber(db, "leaving@example.org")).status == "unsubscribed"  # type: ignore[union-attr]

    r = await admin_client.get(f"/admin/reports/campaigns/{campaign_id}.csv")
    assert r.status_code == 200
    measures = {(m, item): value for m, item, value in list(csv.reader(io.StringIO(r.text)))[1:]}
    assert {k: measures[(k, "")] for k in ("delivered", "bounced", "complained", "unsubscribed_after")} == {
        "delivered": "3", "bounced": "1", "complained": "1", "unsubscribed_after": "1"}

    page = await admin_client.get(f"/admin/reports/campaigns/{campaign_id}")
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    for label, figure in (("Delivered", "3"), ("Bounced", "1"), ("Complained", "1"), ("Unsubscribed after", "1")):
        assert re.search(rf"{label}[^0-9]{{0,40}}{figure}\b", text, re.I), (label, text[:2000])
    assert "<svg" in page.text and "<table" in page.text  # the chart, and its figures as text beside it
