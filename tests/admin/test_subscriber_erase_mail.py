"""Erasing a subscriber removes every stored copy of the mail to them (outbox rows with the
rendered bytes and context, the local mailbox the admin's outbox page shows) and notes the
erasure in the ledger by keyed hash."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from service.campaigns.models import Campaign, Delivery
from service.mail.models import MailboxMessage
from service.privacy.erase import subscriber_hash
from service.settings import Settings
from service.tokens import Tokens
from tests.conftest import Database
from tests.factories import count, signup, subscriber, token_in
from tests.privacy.helpers import deliver_locally, ledger, mailbox_mentions

ADDRESS = "fran.forget@example.org"


async def _confirm_from_mailbox(client: httpx.AsyncClient, db: Database) -> None:
    async with db.sessions() as session:
        raws = (await session.scalars(select(MailboxMessage.raw).where(MailboxMessage.recipients == ADDRESS))).all()
    found = re.search(rb"http://testserver(/confirm/[A-Za-z0-9_.\-]+)", b"".join(raws))
    assert found, "a confirmation email in the local mailbox"
    assert (await client.post(found.group(1).decode())).status_code == 200


async def test_erasing_a_subscriber_scrubs_the_stored_copies_of_their_mail(
        admin_client: httpx.AsyncClient, client: httpx.AsyncClient, db: Database, settings: Settings) -> None:
    await signup(client, ADDRESS, name="Fran Forgetmenot")
    await signup(client, "other@example.org", name="Otto Other")
    await deliver_locally(db)
    await _confirm_from_mailbox(client, db)
    await deliver_locally(db)  # the welcome
    sub = await subscriber(db, ADDRESS)
    assert sub is not None and sub.status == "confirmed"
    outbox_page = await admin_client.get("/admin/outbox")
    assert ADDRESS in outbox_page.text
    assert await mailbox_mentions(db, ADDRESS) == 4 and await mailbox_mentions(db, "Forgetmenot") == 4
    async with db.sessions.begin() as session:  # a campaign went to them: its delivery row holds the address
        campaign = Campaign(slug="c1", subject="News", status="sent", audience_topics=[])
        session.add(campaign)
        await session.flush()
        session.add(Delivery(campaign_id=campaign.id, subscriber_id=sub.id, email=ADDRESS, status="sent"))

    page = await admin_client.get(f"/admin/subscribers/{sub.id}/erase")
    r = await admin_client.post(f"/admin/subscribers/{sub.id}/erase",
                                data={"csrf_token": token_in(page.text), "confirm_email": ADDRESS})
    assert r.status_code == 303

    outbox_page = await admin_client.get("/admin/outbox")
    assert ADDRESS not in outbox_page.text and "other@example.org" in outbox_page.text
    assert await mailbox_mentions(db, ADDRESS) == 0 and await mailbox_mentions(db, "Forgetmenot") == 0
    assert await mailbox_mentions(db, "other@example.org") == 2
    assert await count(db, Delivery) == 0
    (entry,) = await ledger(db)
    assert (entry.kind, entry.reason) == ("subscriber", "erased")
    assert entry.subject_hash == subscriber_hash(Tokens(settings), ADDRESS.upper())
