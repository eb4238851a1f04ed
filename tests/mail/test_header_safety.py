"""No header can be smuggled into a message through a person's text: not with CR/LF, not with
U+2028/U+0085/NUL, and not with RFC 2047 encoded words that a decoder turns back into line breaks
(Python 3.11.7's email generator does, CVE-2024-6923). Driven through the real flows and read back
from what the real SMTP server received."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from service.inquiries.flows import queue_inquiry_emails
from service.inquiries.models import Inquiry
from service.mail.headers import HeaderInjectionError, check_serialised, header_text
from service.mail.message import build_message, format_address, serialise
from service.mail.outbox import OutboxWorker
from service.mail.transport import SmtpTransport
from service.newsletter.flows import queue_confirmation, queue_welcome
from service.newsletter.models import Subscriber
from service.settings import Settings
from service.tokens import Tokens
from tests.conftest import Database
from tests.factories import add_subscriber, deliver, deliveries, make_campaign, outbox_messages, post_json, sender_for
from tests.smtp import Received, SmtpServer


def _b64_word(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


_FORGED = "Eve\r\nReply-To: eve@evil.example\r\n\r\nPlease wire the deposit to IBAN XX00"
# (what a person typed, what the header must show)
ENCODED = [
    ("Eve=?utf-8?q?=0D=0ABcc:_someone@evil.example?=", "Eve= ?utf-8?q? =0D=0ABcc:_someone@evil.example? ="),
    (_B64 := _b64_word(_FORGED), _B64.replace("=?", "= ?").replace("?=", "? =")),
    ("=?utf-8?q?Zo=C3=AB?= Müller", "= ?utf-8?q?Zo=C3=AB? = Müller"),
]
RAW = [
    ("Eve\r\nBcc: someone@evil.example", "Eve Bcc: someone@evil.example"),
    ("Eve\nReply-To: eve@evil.example", "Eve Reply-To: eve@evil.example"),
    ("Eve\u2028Bcc: someone@evil.example", "Eve Bcc: someone@evil.example"),
    ("Eve\u2029Bcc: someone@evil.example", "Eve Bcc: someone@evil.example"),
    ("Eve\x85Bcc: someone@evil.example", "Eve Bcc: someone@evil.example"),
    ("Eve\x00Bcc: someone@evil.example", "Eve Bcc: someone@evil.example"),
    ("Eve\x0bBcc:\x0csomeone@evil.example", "Eve Bcc: someone@evil.example"),
]
ALL = ENCODED + RAW
# PostgreSQL cannot store NUL in text at all: those cases are below without a database
STORABLE = [(t, shown) for t, shown in ALL if "\x00" not in t]
RAW_STORABLE = [(t, shown) for t, shown in RAW if "\x00" not in t]
NUL = ("Eve\x00Bcc: someone@evil.example", "Eve Bcc: someone@evil.example")


def header_block(received: Received) -> list[str]:
    """The header names of the bytes the server received, read independently of our code:
    every line must end in CRLF, a line starting with white space continues the one before."""
    head = received.raw.split(b"\r\n\r\n", 1)[0]
    assert not re.search(rb"\r(?!\n)|(?<!\r)\n", head), "a bare CR or LF in the header block"
    return [line.split(b":", 1)[0].decode() for line in head.split(b"\r\n") if not line[:1].isspace()]


STAFF_HEADERS = ["Message-ID", "Date", "From", "To", "Subject", "Reply-To", "Auto-Submitted", "X-Tidings-Kind",
                 "MIME-Version", "Content-Type"]


# -- the one function ---------------------------------------------------------------------------


@pytest.mark.parametrize(("typed", "shown"), ALL)
def test_header_text_keeps_the_words_and_drops_every_line_break(typed: str, shown: str) -> None:
    assert header_text(typed) == shown


@given(st.text())
def test_header_text_never_leaves_a_break_a_control_or_an_encoded_word(value: str) -> None:
    out = header_text(value)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", out)
    assert "=?" not in out and "?=" not in out
    assert header_text(out) == out


def test_bytes_with_a_header_that_was_not_set_are_refused_naming_it() -> None:
    msg = build_message(sender="a@clinic.test", to="b@example.org", subject="Hi", text="t", html="h")
    raw = serialise(msg)
    injected = raw.replace(b"Subject: Hi\r\n", b"Subject: Hi\r\nBcc: someone@evil.example\r\n")
    with pytest.raises(HeaderInjectionError, match=r"^Bcc: "):
        check_serialised(injected, msg.keys())
    with pytest.raises(HeaderInjectionError, match="line break that is not CRLF"):
        check_serialised(raw.replace(b"Subject: Hi\r\n", b"Subject: Hi\nBcc: x@evil.example\r\n"), msg.keys())


def test_long_non_ascii_subjects_are_folded_into_75_character_encoded_words() -> None:
    subject = "Grüße aus der Praxis: " + "Ketamin-gestützte Therapie für Sie und Ihre Angehörigen " * 3
    raw = serialise(build_message(sender="a@clinic.test", to="Zoë Ünal <b@example.org>", subject=subject,
                                  text="t", html="h"))
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    words = re.findall(rb"=\?utf-8\?b\?[^?]*\?=", head)
    assert words and max(len(w) for w in words) <= 75
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    assert all(len(line) <= 76 for line in head.split(b"\r\n") if b"=?utf-8?" in line)


# -- the staff notice of an inquiry -------------------------------------------------------------


@pytest.mark.parametrize(("typed", "shown"), ENCODED)
async def test_inquiry_name_with_encoded_words_cannot_add_headers_to_the_staff_notice(
    client, db: Database, smtp: SmtpServer, typed: str, shown: str,  # type: ignore[no-untyped-def]
) -> None:
    r = await post_json(client, name=typed, email="pat@example.org")
    assert r.status_code == 201, r.text
    async with db.sessions() as session:  # the answer is an opaque receipt, never the row id
        inquiry_id = await session.scalar(select(Inquiry.id).where(Inquiry.email == "pat@example.org"))
    assert await deliver(db, smtp) == 2
    staff = next(m for m in smtp.received if m.recipients == ["staff@clinic.test"])
    assert header_block(staff) == STAFF_HEADERS
    msg = staff.message
    assert msg["Bcc"] is None
    assert [a.addr_spec for a in msg["Reply-To"].addresses] == ["pat@example.org"]
    assert msg["Reply-To"].addresses[0].display_name == shown
    assert [a.addr_spec for a in msg["To"].addresses] == ["staff@clinic.test"]
    assert msg["Subject"] == f"New inquiry #{inquiry_id} from {shown}"
    assert "IBAN" not in staff.raw.split(b"\r\n\r\n", 1)[1].decode()  # no body of the visitor's
    assert {m.recipients[0] for m in smtp.received} == {"staff@clinic.test", "pat@example.org"}


@pytest.mark.parametrize("typed", [t for t, _ in RAW])
async def test_inquiry_name_with_a_line_break_is_refused_by_the_form(client, db: Database, typed: str) -> None:  # type: ignore[no-untyped-def]
    r = await post_json(client, name=typed)
    assert r.status_code == 422 and "name" in r.json()["errors"]
    assert await outbox_messages(db) == []


@pytest.mark.parametrize(("typed", "shown"), RAW_STORABLE)
async def test_stored_name_with_a_line_break_still_makes_one_header_line(
    db: Database, settings: Settings, smtp: SmtpServer, typed: str, shown: str,
) -> None:
    """A row that bypassed the form (an import, older data): the staff notice is still safe."""
    from service.db import utcnow

    async with db.sessions.begin() as session:
        row = Inquiry(name=typed, email="pat@example.org", phone="", topic="other", contact_method="email",
                      message="m", consent=True, newsletter_optin=False, dedupe_key=typed.encode().hex(),
                      created_at=utcnow(), status="new", status_changed_at=utcnow())
        session.add(row)
        await session.flush()
        await queue_inquiry_emails(session, settings=settings, inquiry=row)
    assert await deliver(db, smtp) == 2
    staff = next(m for m in smtp.received if m.recipients == ["staff@clinic.test"])
    assert header_block(staff) == STAFF_HEADERS
    assert staff.message["Subject"] == f"New inquiry #{row.id} from {shown}"
    assert staff.message["Reply-To"].addresses[0].display_name == shown


# -- subscribers' names in To, and campaign subjects ----------------------------------------------


async def test_subscriber_name_with_encoded_words_in_the_confirmation_to_header(
    client, db: Database, smtp: SmtpServer,  # type: ignore[no-untyped-def]
) -> None:
    from tests.factories import deliver, signup

    typed, shown = ENCODED[0]
    r = await signup(client, "sam@example.org", name=typed)
    assert r.status_code in (200, 303), r.text
    assert await deliver(db, smtp) == 1
    (got,) = smtp.received
    assert header_block(got) == ["Message-ID", "Date", "From", "To", "Subject", "Auto-Submitted", "MIME-Version",
                                 "Content-Type"]
    (to,) = got.message["To"].addresses
    assert (to.display_name, to.addr_spec) == (shown, "sam@example.org")


@pytest.mark.parametrize(("typed", "shown"), STORABLE)
async def test_any_stored_subscriber_name_gives_one_to_line_in_the_confirmation_and_welcome(
    db: Database, settings: Settings, smtp: SmtpServer, typed: str, shown: str,
) -> None:
    """A name that bypassed the form (an import, older data) is made safe all the same."""
    async with db.sessions.begin() as session:
        sub = Subscriber(email="sam@example.org", email_key="sam@example.org", name=typed, status="pending")
        sub.topic_rows = []
        session.add(sub)
        await session.flush()
        await queue_confirmation(session, settings=settings, tokens=Tokens(settings), subscriber=sub)
        await queue_welcome(session, settings=settings, tokens=Tokens(settings), subscriber=sub)
    worker = OutboxWorker(db.sessions, SmtpTransport(smtp.url, timeout=5), owner="t")
    assert await worker.drain() == 2
    await worker.mailer.close()
    assert len(smtp.received) == 2
    for got in smtp.received:
        assert "Bcc" not in header_block(got) and header_block(got).count("To") == 1
        assert "Reply-To" not in header_block(got)
        assert got.message["To"].addresses[0].display_name == shown
        assert got.recipients == ["sam@example.org"]


CAMPAIGN_HEADERS = ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Unsubscribe",
                    "List-Unsubscribe-Post", "List-Id", "Feedback-ID", "Precedence", "Auto-Submitted", "Content-Type"]


@pytest.mark.parametrize(("typed", "shown"), STORABLE)
async def test_campaign_subject_and_subscriber_names_make_exactly_the_digest_headers(
    db: Database, settings: Settings, smtp: SmtpServer, typed: str, shown: str,
) -> None:
    await add_subscriber(db, "one@example.org", name=typed)
    await add_subscriber(db, "two@example.org", name=f"Zoë {typed}")
    campaign_id = await make_campaign(db, settings, subject=f"News {typed}")
    sender = sender_for(db, settings, smtp.url)
    assert await sender.run_campaign(campaign_id) == "sent"
    await sender.transport.close()
    assert {d.status for d in await deliveries(db, campaign_id)} == {"sent"}
    got = {m.recipients[0]: m for m in smtp.received}
    assert set(got) == {"one@example.org", "two@example.org"}
    for address, name in (("one@example.org", shown), ("two@example.org", f"Zoë {shown}")):
        assert header_block(got[address]) == CAMPAIGN_HEADERS
        (to,) = got[address].message["To"].addresses
        assert (to.display_name, to.addr_spec) == (name, address)
        assert got[address].message["Subject"] == f"News {shown}"


def test_nul_in_a_name_or_a_subject_gives_exactly_the_headers_set(settings: Settings) -> None:
    """NUL, which PostgreSQL cannot store, through the same code without a database: the staff
    notice as the outbox worker builds it, a To display name, and a campaign message."""
    from email import message_from_bytes, policy

    from service.campaigns.message import MessageFactory
    from service.db import utcnow
    from service.inquiries.flows import inquiry_emails
    from service.mail.models import OutboxMessage
    from service.mail.outbox import outbox_email

    typed, shown = NUL
    inquiry = Inquiry(id=7, name=typed, email="pat@example.org", phone="", topic="other", contact_method="email",
                      message="m", consent=True, newsletter_optin=False, created_at=utcnow(), source_page="")
    staff_row = {k: v for k, v in inquiry_emails(settings, inquiry)[0].items()
                 if k not in ("with_id", "subject_before", "subject_after")}
    staff = message_from_bytes(serialise(outbox_email(OutboxMessage(**staff_row))), policy=policy.default)
    assert staff["Subject"] == f"New inquiry #7 from {shown}" and staff["Bcc"] is None
    assert staff["Reply-To"].addresses[0].display_name == shown

    welcome = build_message(sender="a@clinic.test", to=format_address("sam@example.org", typed), subject="Hi",
                            text="t", html="h")
    assert message_from_bytes(serialise(welcome), policy=policy.default)["To"].addresses[0].display_name == shown

    factory = MessageFactory.for_campaign(settings, campaign_id=1, subject=f"News {typed}", install_id="i1")
    _mid, raw = factory.build(delivery_id=1, to_email="sam@example.org", to_name=typed, html="h", text="t",
                              unsubscribe_url="https://x.test/u/1")
    digest = message_from_bytes(raw, policy=policy.default)
    assert digest["Subject"] == f"News {shown}" and digest["To"].addresses[0].display_name == shown
    assert digest["Bcc"] is None


async def test_an_outbox_message_whose_bytes_fail_the_check_is_failed_and_not_sent(
    db: Database, smtp: SmtpServer,
) -> None:
    """A message stored as bytes (queued before 0005p) with a bare LF in its header block: the
    standard library would read a second header there; the worker refuses to send it."""
    from sqlalchemy import select

    from service.db import utcnow
    from service.mail.models import OutboxMessage

    raw = (b"Message-ID: <1@clinic.test>\r\nFrom: a@clinic.test\r\nTo: pat@example.org\r\n"
           b"Subject: Hello\nBcc: someone@evil.example\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n")
    async with db.sessions.begin() as session:
        session.add(OutboxMessage(kind="legacy", recipient="pat@example.org", subject="Hello",
                                  message_id="<1@clinic.test>", raw=raw, status="queued", attempts=0,
                                  next_attempt_at=utcnow(), created_at=utcnow()))
    worker = OutboxWorker(db.sessions, SmtpTransport(smtp.url, timeout=5), owner="t")
    assert await worker.drain() == 1
    await worker.mailer.close()
    async with db.sessions() as session:
        (row,) = (await session.scalars(select(OutboxMessage))).all()
    assert row.status == "failed"
    assert row.last_error == "not sent: Subject: a line break that is not CRLF inside the header"
    assert smtp.received == []
