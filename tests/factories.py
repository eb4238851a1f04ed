"""Shared test factories: one definition of each helper the test packages use.

Rows are inserted through the real models and domain functions, staff sign in either through the
real login form (`sign_in`) or with a session minted exactly as the login route mints it
(`signed_in_client`), and mail is delivered through the real SMTP server or the local mailbox.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import itsdangerous
from sqlalchemy import func, insert, select, update

from service.admin.auth import COOKIE_NAME, COOKIE_PATH, create_staff_user, session_cookie_value
from service.admin.models import AuditEvent, StaffUser
from service.app import create_app
from service.articles.flows import import_articles
from service.articles.models import Article
from service.campaigns import queries as q
from service.campaigns.models import Delivery
from service.campaigns.sender import CampaignSender
from service.campaigns.throttle import TokenBucket
from service.db import utcnow
from service.inquiries.models import Inquiry, InquiryEvent
from service.mail.bulk import SmtpBulkTransport
from service.mail.models import OutboxMessage
from service.mail.outbox import OutboxWorker
from service.mail.transport import SmtpTransport
from service.newsletter.models import Subscriber, SubscriberTopic
from service.settings import RateLimit, Settings
from service.tokens import Tokens
from tests.conftest import TEST_SECRET, Database, make_settings
from tests.smtp import SmtpServer

ADMIN_EMAIL = "admin@clinic.test"
STAFF_EMAIL = "staff@clinic.test"
PASSWORD = "correct horse battery staple"
CLIENT_IP = "203.0.113.7"
ROOMY = RateLimit(10_000, 600)  # a per-IP form limit no test reaches unless it means to
SAMPLE = Path("/work/shared/sample-blog")
if not SAMPLE.exists():
    SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "sample-blog"

_TOKEN = re.compile(r'name="(?:csrf_token|form_token)" value="([^"]+)"')


# -- clients, tokens and signing in ------------------------------------------------------------


def new_client(app: Any, ip: str = CLIENT_IP) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 50000)), base_url="http://testserver")


def token_in(html: str) -> str:
    """The CSRF or form token of the (first) form on a page."""
    found = _TOKEN.search(html)
    assert found, "no form token on the page"
    return found.group(1)


async def form_token(client: httpx.AsyncClient, page: str | None = None) -> str:
    """A fresh form token: from /api/form-token (what the embedded forms fetch), or read off `page`."""
    r = await client.get(page or "/api/form-token")
    assert r.status_code == 200, r.text
    return token_in(r.text) if page else str(r.json()["form_token"])


def old_form_token(age_seconds: float, form: str = "inquiry") -> str:
    """A correctly signed token (with a fresh nonce) issued `age_seconds` ago."""

    class OldSigner(itsdangerous.TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age_seconds)

    payload = {"form": form, "nonce": secrets.token_urlsafe(12)}
    return itsdangerous.URLSafeTimedSerializer(TEST_SECRET, salt="tidings.form", signer=OldSigner).dumps(payload)


async def make_staff(db: Database, email: str = ADMIN_EMAIL, role: str = "admin",
                     password: str | None = PASSWORD, name: str = "") -> StaffUser:
    async with db.sessions.begin() as session:
        return await create_staff_user(session, email=email, role=role, name=name, password=password)


async def sign_in(client: httpx.AsyncClient, email: str = ADMIN_EMAIL, password: str = PASSWORD,
                  next_url: str | None = None) -> httpx.Response:
    """Sign in through the real login form (the page, its token, the POST)."""
    page = await client.get("/admin/login")
    data = {"email": email, "password": password, "form_token": token_in(page.text)}
    if next_url is not None:
        data["next"] = next_url
    return await client.post("/admin/login", data=data)


def signed_in_client(app: Any, user: StaffUser, ip: str = CLIENT_IP) -> httpx.AsyncClient:
    """A client holding the session cookie the login route would have set for `user` (same
    signing function, same keys, same cookie name and path): the app checks it like any other,
    so a deactivated user or a bumped session version still ends it. Saves the login round trip
    and its password hash; tests of signing in itself use `sign_in`."""
    client = new_client(app, ip)
    value = session_cookie_value(Tokens(app.state.settings), user)
    # The jar files a cookie the server sets for the dotless host "testserver" under
    # "testserver.local" (http.cookiejar's effective host name): put ours where the app's would go,
    # so that a Set-Cookie from the app (renewal, sign-out) replaces it.
    client.cookies.set(COOKIE_NAME, value, domain="testserver.local", path=COOKIE_PATH)
    return client


async def csrf(client: httpx.AsyncClient) -> str:
    """The signed-in staff member's CSRF token, read off the account page."""
    page = await client.get("/admin/account")
    assert page.status_code == 200, page.status_code
    return token_in(page.text)


@contextlib.asynccontextmanager
async def client_with(db: Database, *, ip: str = CLIENT_IP, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose settings differ from the defaults by `changes`."""
    app = create_app(make_settings(db, **{"form_rate_limit": ROOMY, **changes}), sessions=db.sessions)
    async with new_client(app, ip) as c:
        yield c


# -- rows --------------------------------------------------------------------------------------

def inquiry_row(i: int = 0, **fields: Any) -> dict[str, Any]:
    now = fields.pop("created_at", dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC) + dt.timedelta(minutes=i))
    row = dict(created_at=now, name=f"Client {i}", email=f"client{i}@example.org", phone="", topic="depression",
               contact_method="email", message=f"Message number {i}", consent=True, newsletter_optin=False,
               status="new", status_changed_at=now, source_page="", referrer="", utm_source="", utm_medium="",
               utm_campaign="", utm_term="", utm_content="", ip="198.51.100.1", user_agent="", dedupe_key=f"k{i}")
    row.update(fields)
    return row


async def add_inquiries(db: Database, rows: list[dict[str, Any]]) -> list[int]:
    """Insert every row with one INSERT statement (executemany is not used)."""
    async with db.sessions.begin() as session:
        result = await session.execute(insert(Inquiry).values(rows).returning(Inquiry.id))
        return [r[0] for r in result.all()]


async def add_subscriber(db: Database, email: str, *, topics: Sequence[str] = (), name: str = "",
                         status: str = "confirmed", **fields: Any) -> int:
    """A subscriber row (confirmed unless told otherwise) with its topics; returns its id."""
    now = utcnow()
    values: dict[str, Any] = dict(email=email, email_key=email.lower(), name=name, status=status,
                                  created_at=now, status_changed_at=now, signup_at=now, confirmed_at=now)
    values.update(fields)
    async with db.sessions.begin() as session:
        sub = Subscriber(**values)
        sub.topic_rows = [SubscriberTopic(topic=t) for t in topics]
        session.add(sub)
        await session.flush()
        return sub.id


async def subscriber(db: Database, key: int | str) -> Subscriber | None:
    """The subscriber with this id, or with this email address (any case); None when there is none."""
    async with db.sessions() as session:
        if isinstance(key, int):
            return await session.get(Subscriber, key)
        return (await session.scalars(select(Subscriber).where(Subscriber.email_key == key.lower()))).one_or_none()


async def set_fields(db: Database, email: str, **values: object) -> None:
    """Change a subscriber row directly (e.g. move a timestamp into the past)."""
    async with db.sessions.begin() as session:
        await session.execute(update(Subscriber).where(Subscriber.email_key == email.lower()).values(**values))


async def audit_actions(db: Database) -> list[tuple[str, str, str]]:
    """(action, actor_email, target_id) of every audit event, oldest first."""
    async with db.sessions() as session:
        rows = await session.execute(select(AuditEvent.action, AuditEvent.actor_email, AuditEvent.target_id)
                                     .order_by(AuditEvent.id))
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def count(db: Database, model: Any) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# -- the contact form and the JSON API --------------------------------------------------------


def valid_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": "Ana Souza",
        "email": "ana@example.org",
        "phone": "+1 (555) 010-2030",
        "topic": "depression",
        "contact_method": "either",
        "message": "I would like to know whether ketamine-assisted therapy could help me.",
        "consent": "yes",
        "source_page": "https://blog.clinic.test/articles/ketamine-and-depression",
        "referrer": "https://www.google.com/",
        "utm_source": "newsletter",
        "utm_medium": "email",
        "utm_campaign": "spring",
        "utm_term": "ketamine",
        "utm_content": "footer-link",
        "website": "",
    }
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not None}


RECEIPT = re.compile(r"^[A-Za-z0-9_-]{22}$")


async def posted_id(client: httpx.AsyncClient, db: Database, **changes: Any) -> int:
    """Send an inquiry through the JSON API; the id of the row it stored (the answer is a receipt)."""
    r = await post_json(client, **changes)
    assert r.status_code == 201 and RECEIPT.match(r.json()["id"])
    async with db.sessions() as session:
        found = await session.scalar(select(Inquiry.id).where(Inquiry.receipt == r.json()["id"]))
    assert found is not None, "the receipt names a stored inquiry"
    return int(found)


async def post_form(client: httpx.AsyncClient, **changes: Any) -> httpx.Response:
    fields = valid_fields(**changes)
    if "form_token" not in fields:
        fields["form_token"] = await form_token(client)
    return await client.post("/contact", data=fields)


async def post_json(client: httpx.AsyncClient, **changes: Any) -> httpx.Response:
    fields = valid_fields(**changes)
    if "form_token" not in fields:
        fields["form_token"] = await form_token(client)
    return await client.post("/api/inquiries", json=fields)


async def stored_inquiries(db: Database) -> list[Inquiry]:
    async with db.sessions() as session:
        return list((await session.scalars(select(Inquiry).order_by(Inquiry.id))).all())


async def inquiry_events(db: Database) -> list[InquiryEvent]:
    async with db.sessions() as session:
        return list((await session.scalars(select(InquiryEvent).order_by(InquiryEvent.id))).all())


async def outbox_messages(db: Database) -> list[OutboxMessage]:
    async with db.sessions() as session:
        return list((await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def count_rows(db: Database) -> tuple[int, int]:
    """(inquiries, outbox messages)"""
    async with db.sessions() as session:
        inquiries = await session.scalar(select(func.count()).select_from(Inquiry))
        outbox = await session.scalar(select(func.count()).select_from(OutboxMessage))
    return int(inquiries or 0), int(outbox or 0)


async def outbox_count(db: Database) -> int:
    return await count(db, OutboxMessage)


# -- the newsletter form -----------------------------------------------------------------------


async def signup(client: httpx.AsyncClient, email: str, *, name: str = "", topics: tuple[str, ...] = (),
                 headers: dict[str, str] | None = None, **extra: str) -> httpx.Response:
    data: dict[str, object] = {"form_token": await form_token(client, "/subscribe"), "website": "", "email": email,
                               "name": name, "topics": list(topics), **extra}
    return await client.post("/subscribe", data=data, headers=headers)


async def confirmed_subscriber(client: httpx.AsyncClient, db: Database, smtp: SmtpServer, email: str,
                               **kw: object) -> Subscriber:
    """Sign `email` up and confirm it through the real link; returns the row."""
    await signup(client, email, **kw)  # type: ignore[arg-type]
    await deliver(db, smtp)
    mine = [m for m in smtp.received if m.recipients == [email]]
    path = link_in(mine[-1].message, "/confirm/")
    r = await client.post(path)
    assert r.status_code == 200, r.text
    await deliver(db, smtp)
    sub = await subscriber(db, email)
    assert sub is not None and sub.status == "confirmed"
    return sub


# -- mail --------------------------------------------------------------------------------------


async def deliver(db: Database, smtp: SmtpServer) -> int:
    """Deliver the outbox through the real SMTP server; the number of messages sent."""
    mailer = SmtpTransport(smtp.url, concurrency=2, timeout=5)
    try:
        return await OutboxWorker(db.sessions, mailer, owner="test").drain()
    finally:
        await mailer.close()


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def link_in(message: EmailMessage, path: str) -> str:
    """The first http://testserver{path}... URL in the text part."""
    match = re.search(r"http://testserver(" + re.escape(path) + r"[A-Za-z0-9_.\-]+)", text_of(message))
    assert match, f"no {path} link in: {text_of(message)}"
    return match.group(1)



# -- digests (campaigns) -----------------------------------------------------------------------


async def sample_articles(db: Database, settings: Settings) -> list[Article]:
    await import_articles(db.sessions, settings, [str(SAMPLE / "feed.xml")])
    async with db.sessions() as session:
        return list((await session.scalars(select(Article).order_by(Article.published_at.desc()))).all())


async def make_campaign(
    db: Database, settings: Settings, *, subject: str = "This month at the clinic",
    audience_topics: Sequence[str] = (), start: bool = True,
) -> int:
    articles = await sample_articles(db, settings)
    async with db.sessions.begin() as session:
        campaign = await q.create_campaign(
            session, subject=subject, article_ids=[a.id for a in articles], now=utcnow(),
            preheader="Five articles on ketamine-assisted therapy", intro="Here is what we wrote.\n\nEnjoy!",
            audience_topics=audience_topics,
        )
        if start:
            await q.start_campaign(session, campaign_id=campaign.id, now=utcnow())
        return campaign.id


def sender_for(db: Database, settings: Settings, smtp_url: str, *, owner: str = "w1", **kw: object) -> CampaignSender:
    transport = SmtpBulkTransport.from_url(smtp_url, concurrency=2, timeout=5)
    kw.setdefault("bucket", TokenBucket(0))
    return CampaignSender(db.sessions, settings, transport, owner=owner, **kw)  # type: ignore[arg-type]


async def deliveries(db: Database, campaign_id: int) -> list[Delivery]:
    async with db.sessions() as session:
        rows = await session.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id)
                                     .order_by(Delivery.id))
        return list(rows.all())


# -- insight (click counting) ------------------------------------------------------------------


async def flush_clicks(app: Any) -> int:
    """Write the app's counted clicks now, probation included (what a graceful stop does)."""
    return int(await app.state.clicks.flush(final=True))


async def click_counts(db: Database) -> dict[tuple[int, int, str], int]:
    """Stored clicks by (campaign, link, kind), summed over the hours."""
    from service.insight.models import ClickCount

    async with db.sessions() as session:
        rows = await session.execute(select(ClickCount.campaign_id, ClickCount.link, ClickCount.kind,
                                            func.sum(ClickCount.clicks))
                                     .group_by(ClickCount.campaign_id, ClickCount.link, ClickCount.kind))
        return {(c, link, k): int(n) for c, link, k, n in rows.all() if n}


def digest_links(message: EmailMessage) -> list[str]:
    """The href targets of a received digest's HTML part, in order."""
    import html as html_lib

    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return [html_lib.unescape(h) for h in re.findall(r'href="([^"]+)"', str(part.get_content()))]  # type: ignore[attr-defined]


async def send_digest(db: Database, settings: Settings, smtp: SmtpServer, emails: Sequence[str]) -> int:
    """A digest of the sample feed sent to confirmed subscribers `emails` through the real SMTP
    server; the campaign's id."""
    for email in emails:
        await add_subscriber(db, email, name=email.split("@")[0].title())
    campaign_id = await make_campaign(db, settings)
    sender = sender_for(db, settings, smtp.url)
    while await sender.run_once():
        pass
    await sender.transport.close()
    return campaign_id
