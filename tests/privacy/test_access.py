"""Right of access, end to end with the real SMTP server: the preference centre asks, an email
with a 24-hour link goes to the subscriber's address, and the link downloads their data as JSON
and CSV. The preference link alone never gives the data; expired and tampered links are refused;
the answer is the same whatever happens, and the email is throttled per subscriber."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time

import httpx
import itsdangerous
from sqlalchemy import select

from service.campaigns.models import Campaign, Delivery
from service.mail.models import OutboxMessage
from service.newsletter.tokens import unsubscribe_token
from service.privacy.access import access_token
from service.settings import Settings
from service.tokens import Tokens
from tests.conftest import TEST_SECRET, Database
from tests.factories import confirmed_subscriber, deliver, link_in, text_of
from tests.smtp import SmtpServer

ADDRESS = "ada@example.org"


async def _sent_campaign(db: Database, subscriber_id: int) -> None:
    at = dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)
    async with db.sessions.begin() as session:
        campaign = Campaign(slug="2026-11-20-ketamine-news", subject="Ketamine news for November", status="sent",
                            audience_topics=[], sent_at=at)
        session.add(campaign)
        await session.flush()
        session.add(Delivery(campaign_id=campaign.id, subscriber_id=subscriber_id, email=ADDRESS, status="sent",
                             sent_at=at))


def _old_token(subscriber_id: int, age_seconds: float) -> str:
    class OldSigner(itsdangerous.TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age_seconds)

    return itsdangerous.URLSafeTimedSerializer(TEST_SECRET, salt="tidings.access", signer=OldSigner).dumps(
        subscriber_id)


async def test_access_request_emails_a_link_that_downloads_the_data(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer, settings: Settings) -> None:
    sub = await confirmed_subscriber(client, db, smtp, ADDRESS, name="Ada Lovelace", topics=("PTSD",))
    await _sent_campaign(db, sub.id)
    tokens = Tokens(settings)
    preferences = f"/unsubscribe/{unsubscribe_token(tokens, sub.id)}"

    # The preference link, which may be forwarded, shows nothing of the data and does not open it.
    page = await client.get(preferences)
    assert page.status_code == 200 and "Email me my data" in page.text
    assert ADDRESS not in page.text and "203.0.113.7" not in page.text
    for path in (f"/access/{unsubscribe_token(tokens, sub.id)}",
                 f"/access/{unsubscribe_token(tokens, sub.id)}/data.json"):
        r = await client.get(path)
        assert r.status_code == 400 and ADDRESS not in r.text and "This link is not valid" in r.text

    smtp.handler.reset()
    r = await client.post(f"{preferences}/access")
    assert r.status_code == 200 and "Check your inbox" in r.text and "24 hours" in r.text
    assert "the evidence of your consent" in r.text and r.headers["referrer-policy"] == "no-referrer"
    again = await client.post(f"{preferences}/access")  # throttled: same answer, no second email
    unknown = await client.post(f"/unsubscribe/{unsubscribe_token(tokens, 987654)}/access")
    assert again.text == r.text and unknown.status_code == 200 and unknown.text == r.text
    await deliver(db, smtp)
    (mail,) = smtp.received
    assert mail.recipients == [ADDRESS] and mail.message["Subject"] == "Your data at Tidings"
    assert "works for 24 hours" in text_of(mail.message)
    link = link_in(mail.message, "/access/")

    page = await client.get(link)
    assert page.status_code == 200 and "a•••a@example.org" in page.text
    assert page.headers["cache-control"] == "no-store" and "consent" in page.text
    assert f'href="{link}/data.json"' in page.text and f'href="{link}/data.csv"' in page.text

    r = await client.get(f"{link}/data.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert 'filename="my-data.json"' in r.headers["content-disposition"]
    data = r.json()
    assert data["subscription"]["email"] == ADDRESS and data["subscription"]["name"] == "Ada Lovelace"
    assert data["subscription"]["status"] == "confirmed" and data["subscription"]["topics"] == ["PTSD"]
    consent = data["consent"]
    assert consent["signup_ip"] == "203.0.113.7" and consent["confirm_ip"] == "203.0.113.7"
    assert consent["signup_source"] == "form:subscribe" and "newsletter" in consent["consent_text"]
    assert consent["signup_at"] and consent["confirmed_at"]
    assert data["campaigns_sent"] == [{"subject": "Ketamine news for November", "sent_at": "2026-11-20T09:00:00+00:00",
                                       "web_version": "http://testserver/archive/2026-11-20-ketamine-news"}]
    assert [e["kind"] for e in data["emails"]] == ["newsletter_confirm", "newsletter_welcome", "privacy_access"]

    r = await client.get(f"{link}/data.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    cells = {(row["section"], row["item"], row["field"]): row["value"] for row in rows}
    assert cells[("subscription", "", "email")] == ADDRESS and cells[("subscription", "", "topics")] == "PTSD"
    assert cells[("consent", "", "signup_ip")] == "203.0.113.7"
    assert cells[("campaigns_sent", "1", "subject")] == "Ketamine news for November"


async def test_expired_and_tampered_access_links_are_refused(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer, settings: Settings) -> None:
    sub = await confirmed_subscriber(client, db, smtp, ADDRESS, name="Ada Lovelace")
    fresh = access_token(Tokens(settings), sub.id)
    assert (await client.get(f"/access/{fresh}/data.json")).status_code == 200
    assert (await client.get(f"/access/{_old_token(sub.id, 23 * 3600)}")).status_code == 200
    expired = _old_token(sub.id, 24 * 3600 + 60)
    for suffix in ("", "/data.json", "/data.csv"):
        r = await client.get(f"/access/{expired}{suffix}")
        assert r.status_code == 410 and "This link has expired" in r.text and ADDRESS not in r.text
    tampered = fresh[:-3] + ("AAA" if not fresh.endswith("AAA") else "BBB")
    other = access_token(Tokens(settings.with_(secret_key="another-secret-key-0123456789-abcdefghijklmnop")), sub.id)
    for token in (tampered, other, "not-a-token"):
        for suffix in ("", "/data.json", "/data.csv"):
            r = await client.get(f"/access/{token}{suffix}")
            assert r.status_code == 400 and "This link is not valid" in r.text and ADDRESS not in r.text
    r = await client.post(f"/unsubscribe/{unsubscribe_token(Tokens(settings), sub.id)[:-2]}xx/access")
    assert r.status_code == 400
    async with db.sessions() as session:
        kinds = (await session.scalars(select(OutboxMessage.kind))).all()
    assert "privacy_access" not in kinds  # nothing queued for a bad link
