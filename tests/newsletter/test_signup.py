"""Signup answers never reveal whether an address is known; repeat signups are throttled; bad
input is refused with the field named and nothing stored; automated-looking signups get the
normal answer and are held (recorded, nothing sent)."""

from __future__ import annotations

import datetime as dt
import re
import time

import httpx
from sqlalchemy import func, select

from service.db import utcnow
from service.mail.models import OutboxMessage
from service.newsletter import flows
from service.newsletter.models import Subscriber, Suppression
from service.settings import Settings
from service.tokens import Tokens
from service.worker import WorkerContext, default_loops
from tests.conftest import Database
from tests.factories import (
    confirmed_subscriber,
    deliver,
    form_token,
    link_in,
    outbox_count,
    set_fields,
    signup,
    subscriber,
)
from tests.smtp import SmtpServer

VOLATILE = {"x-request-id", "date"}


def _shape(r: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k, v) for k, v in r.headers.items() if k not in VOLATILE)
    return r.status_code, headers, r.content


async def _make_states(client: httpx.AsyncClient, db: Database, smtp: SmtpServer, settings: Settings) -> None:
    await signup(client, "pending@example.org")
    await confirmed_subscriber(client, db, smtp, "confirmed@example.org")
    await confirmed_subscriber(client, db, smtp, "left@example.org")
    await set_fields(db, "left@example.org", status="unsubscribed", unsubscribed_at=utcnow())
    await confirmed_subscriber(client, db, smtp, "bounced@example.org")
    async with db.sessions.begin() as session:
        assert await flows.mark_bounced(session, email="bounced@example.org", reason="550 no such user")
    await confirmed_subscriber(client, db, smtp, "erased@example.org")
    sub = await subscriber(db, "erased@example.org")
    async with db.sessions.begin() as session:
        await flows.erase_subscriber(session, tokens=Tokens(settings), subscriber_id=sub.id)  # type: ignore[union-attr]


STATES = ["new@example.org", "pending@example.org", "confirmed@example.org", "left@example.org",
          "bounced@example.org", "erased@example.org"]


async def test_form_answer_is_identical_for_every_kind_of_address(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer, settings: Settings) -> None:
    await _make_states(client, db, smtp, settings)
    answers = []
    for email in STATES:
        r = await signup(client, email, name="Someone", topics=("anxiety",))
        follow = await client.get(r.headers["location"])
        answers.append((_shape(r), _shape(follow)))
    assert all(a == answers[0] for a in answers), "signup answers differ between addresses"
    assert answers[0][0][0] == 303


async def test_json_answer_is_identical_for_every_kind_of_address(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer, settings: Settings) -> None:
    await _make_states(client, db, smtp, settings)
    answers = []
    for email in STATES:
        token = (await client.get("/api/subscriptions")).json()["form_token"]
        r = await client.post("/api/subscriptions", json={"email": email, "form_token": token, "website": ""},
                              headers={"origin": "https://blog.clinic.test"})
        answers.append(_shape(r))
    assert all(a == answers[0] for a in answers)
    assert answers[0][0] == 202 and b"check your inbox" in answers[0][2]


async def test_each_state_gets_the_right_email(client: httpx.AsyncClient, db: Database, smtp: SmtpServer,
                                               settings: Settings) -> None:
    await _make_states(client, db, smtp, settings)
    for email in STATES:  # past the resend throttle
        await set_fields(db, email, confirmation_sent_at=utcnow() - dt.timedelta(minutes=11))
    smtp.handler.reset()
    for email in STATES:
        await signup(client, email)
    await deliver(db, smtp)
    got = {m.recipients[0]: m.message["Subject"] for m in smtp.received}
    assert set(got) == set(STATES)
    assert "already subscribed" in got["confirmed@example.org"]
    for email in set(STATES) - {"confirmed@example.org"}:
        assert "confirm" in got[email].lower()
    for email in ("left@example.org", "bounced@example.org", "erased@example.org"):
        sub = await subscriber(db, email)
        assert sub is not None and sub.status == "pending"
    left = await subscriber(db, "left@example.org")
    assert left is not None and left.unsubscribed_at is not None  # history stays
    assert (await subscriber(db, "confirmed@example.org")).status == "confirmed"  # type: ignore[union-attr]


async def test_erased_person_who_signs_up_again_can_confirm_and_the_hash_goes(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer, settings: Settings) -> None:
    await _make_states(client, db, smtp, settings)
    smtp.handler.reset()
    await signup(client, "erased@example.org")
    await deliver(db, smtp)
    r = await client.post(link_in(smtp.received[0].message, "/confirm/"))
    assert r.status_code == 200
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Suppression)) == 0


async def test_repeat_signup_resends_at_most_every_ten_minutes(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer) -> None:
    for _ in range(3):
        r = await signup(client, "again@example.org")
        assert r.status_code == 303
    assert await outbox_count(db) == 1
    await set_fields(db, "again@example.org", confirmation_sent_at=utcnow() - dt.timedelta(minutes=11))
    await signup(client, "again@example.org")
    assert await outbox_count(db) == 2
    await deliver(db, smtp)
    async with db.sessions() as session:  # the two are sent side by side: take them in queue order
        queued = list((await session.scalars(select(OutboxMessage.message_id).order_by(OutboxMessage.id))).all())
    by_id = {m.message["Message-ID"]: m.message for m in smtp.received}
    first, second = (link_in(by_id[mid], "/confirm/") for mid in queued)
    assert (await client.post(second)).status_code == 200  # the newest link works


async def test_invalid_email_is_refused_naming_the_field_and_nothing_is_stored(
        client: httpx.AsyncClient, db: Database) -> None:
    r = await signup(client, "not-an-address", name="Ana")
    assert r.status_code == 422
    assert 'id="email-error"' in r.text and "not valid" in r.text
    assert 'value="Ana"' in r.text  # what they typed stays
    r = await signup(client, "ana@example.org", topics=("astrology",))
    assert r.status_code == 422 and 'id="topics-error"' in r.text
    token = (await client.get("/api/subscriptions")).json()["form_token"]
    r = await client.post("/api/subscriptions", json={"email": "x@", "form_token": token})
    assert r.status_code == 422 and set(r.json()["errors"]) == {"email"}
    r = await client.post("/api/subscriptions", content=b"[1,2]", headers={"content-type": "application/json"})
    assert r.status_code == 400
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert await outbox_count(db) == 0


async def test_automated_looking_signups_get_the_normal_answer_are_held_and_mail_nothing(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer) -> None:
    honeypot = await signup(client, "bot@example.org", website="http://spam.example")
    no_token = await client.post("/subscribe", data={"email": "bot2@example.org"})
    human = await signup(client, "human@example.org")
    assert _shape(honeypot) == _shape(no_token) == _shape(human)
    held = await subscriber(db, "bot@example.org")
    assert held is not None and held.status == "pending" and held.confirmation_sent_at is None
    assert held.signup_source == "held: honeypot filled (form:subscribe)"
    assert (await subscriber(db, "bot2@example.org")).signup_source == "held: missing token (form:subscribe)"  # type: ignore[union-attr]
    assert await outbox_count(db) == 1  # the person's confirmation only
    # the person behind a held signup who signs up again gets the confirmation at once
    await signup(client, "bot@example.org")
    assert await outbox_count(db) == 2
    await deliver(db, smtp)
    assert sorted(m.recipients[0] for m in smtp.received) == ["bot@example.org", "human@example.org"]


async def test_a_held_signup_changes_nothing_for_a_known_address(client: httpx.AsyncClient, db: Database,
                                                                 smtp: SmtpServer) -> None:
    await confirmed_subscriber(client, db, smtp, "known@example.org")
    before = await subscriber(db, "known@example.org")
    await signup(client, "known@example.org", website="http://spam.example")
    after = await subscriber(db, "known@example.org")
    assert after is not None and before is not None
    assert (after.status, after.signup_source, after.signup_at) == ("confirmed", before.signup_source, before.signup_at)


async def test_signup_page_shows_consent_text_and_topics_which_are_stored(
        client: httpx.AsyncClient, db: Database, settings: Settings) -> None:
    page = await client.get("/subscribe")
    text = flows.consent_text(settings.org_name)
    assert text in page.text
    for topic in settings.topics:
        assert f'value="{topic}"' in page.text
    assert re.search(r'name="website"', page.text)
    await signup(client, "all@example.org", topics=tuple(settings.topics))
    sub = await subscriber(db, "all@example.org")
    assert sub is not None and sub.topics == [] and sub.consent_text == text  # all chosen = all


async def test_api_cors_only_for_allowed_origins_and_without_credentials(client: httpx.AsyncClient) -> None:
    pre = await client.options("/api/subscriptions", headers={
        "origin": "https://blog.clinic.test", "access-control-request-method": "POST"})
    assert pre.status_code == 200  # the shared ApiCorsMiddleware answers preflights, as for /api/inquiries
    assert pre.headers["access-control-allow-origin"] == "https://blog.clinic.test"
    assert "access-control-allow-credentials" not in pre.headers
    other = await client.get("/api/subscriptions", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers and other.headers["vary"] == "Origin"
    info = (await client.get("/api/subscriptions", headers={"origin": "https://blog.clinic.test"})).json()
    assert info["consent_text"] and info["form_token"] and "anxiety" in info["topics"]


async def test_request_subscription_for_the_inquiry_form(db: Database, smtp: SmtpServer, settings: Settings) -> None:
    async with db.sessions.begin() as session:
        await flows.request_subscription(
            session, settings=settings, tokens=Tokens(settings), email="Lead@Example.org", name="Lea",
            topics=["PTSD", "unknown"], ip="198.51.100.4", user_agent="Safari", source="form:contact",
            consent_text="Also send me the newsletter",
        )
    sub = await subscriber(db, "lead@example.org")
    assert sub is not None and sub.status == "pending" and sub.topics == ["PTSD"]
    assert sub.signup_source == "form:contact" and sub.consent_text == "Also send me the newsletter"
    assert await deliver(db, smtp) == 1 and "confirm" in smtp.received[0].message["Subject"].lower()


async def test_resend_form_on_the_problem_page_answers_like_signup(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer) -> None:
    await signup(client, "lost@example.org", topics=("OCD",))
    await set_fields(db, "lost@example.org", confirmation_sent_at=utcnow() - dt.timedelta(hours=1))
    page = await client.get("/confirm/not-a-token")
    token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    known = await client.post("/subscribe/resend", data={"email": "lost@example.org", "form_token": token})
    unknown = await client.post("/subscribe/resend", data={"email": "nobody@example.org",
                                                           "form_token": await form_token(client, "/subscribe")})
    assert _shape(known) == _shape(unknown) and known.status_code == 303
    sub = await subscriber(db, "lost@example.org")
    assert sub is not None and sub.topics == ["OCD"]  # a new link keeps the chosen topics
    assert await outbox_count(db) == 3


async def test_embedded_form_has_no_site_chrome_and_stays_embedded(client: httpx.AsyncClient, db: Database) -> None:
    page = await client.get("/subscribe?embed=1")
    assert page.status_code == 200 and 'class="site-header"' not in page.text
    assert 'action="/subscribe?embed=1"' in page.text
    assert "frame-ancestors 'self' https://blog.clinic.test" in page.headers["content-security-policy"]
    token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = await client.post("/subscribe?embed=1", data={"form_token": token, "email": "framed@example.org"})
    assert r.status_code == 303 and r.headers["location"] == "/subscribe/thanks?embed=1"
    thanks = await client.get(r.headers["location"])
    assert "check your inbox" in thanks.text and 'class="site-header"' not in thanks.text
    assert (await subscriber(db, "framed@example.org")).signup_source == "form:subscribe:embed"  # type: ignore[union-attr]


async def test_what_people_type_is_escaped_when_shown_again(client: httpx.AsyncClient) -> None:
    r = await signup(client, "<script>alert(1)</script>", name='"><img src=x onerror=alert(1)>')
    assert r.status_code == 422
    assert "<script>alert(1)" not in r.text and "<img src=x" not in r.text
    assert "&lt;script&gt;" in r.text


async def test_api_tells_a_stale_form_or_a_busy_connection_apart(client: httpx.AsyncClient, db: Database,
                                                                 settings: Settings) -> None:
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    from tests.conftest import TEST_SECRET

    class ThreeHoursAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 3 * 3600

    stale = URLSafeTimedSerializer(TEST_SECRET, salt="tidings.form", signer=ThreeHoursAgo).dumps("newsletter")
    r = await client.post("/api/subscriptions", json={"email": "slow@example.org", "form_token": stale})
    assert r.status_code == 422 and "expired" in r.json()["errors"]["form_token"]
    assert await subscriber(db, "slow@example.org") is None


async def test_simultaneous_signups_of_one_address_make_one_row_and_one_email(db: Database,
                                                                            settings: Settings) -> None:
    import asyncio

    async def one() -> None:
        async with db.sessions.begin() as session:
            await flows.request_subscription(session, settings=settings, tokens=Tokens(settings),
                                             email="race@example.org", name="", topics=[], ip="198.51.100.9",
                                             user_agent="", source="api", consent_text="yes")

    await asyncio.gather(*(one() for _ in range(4)))
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Subscriber)) == 1
    assert await outbox_count(db) == 1


async def test_held_signups_are_purged_after_the_retention_days(client: httpx.AsyncClient, db: Database,
                                                                settings: Settings) -> None:
    await signup(client, "old-held@example.org", website="http://spam.example")
    await signup(client, "new-held@example.org", website="http://spam.example")
    await signup(client, "person@example.org")
    long_ago = utcnow() - dt.timedelta(days=31)
    await set_fields(db, "old-held@example.org", signup_at=long_ago)
    await set_fields(db, "person@example.org", signup_at=long_ago)
    (loop,) = [lp for lp in default_loops(settings) if lp.name == "held-signup-purge"]
    await loop.job(WorkerContext(settings=settings, sessions=db.sessions, mailer=None))  # type: ignore[arg-type]
    assert await subscriber(db, "old-held@example.org") is None
    assert await subscriber(db, "new-held@example.org") is not None and await subscriber(db, "person@example.org")
