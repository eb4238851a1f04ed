"""Every kind of email Tidings sends, as a receiving server gets it over real SMTP: the
confirmation, the welcome, "already subscribed", the data-access email, the inquiry's staff
notice and automatic reply, a digest, a campaign test send, `tidings mail-test`, and the staff
invitation and password-reset emails. Each one is
DKIM-signed and verifies with dkimpy (the public key handed to dkimpy through its own `dnsfunc`
argument, as DNS would), carries a unique Message-ID, a Date with a numeric zone, RFC 2047
encoded words of at most 75 characters on folded lines, and came over a session that greeted
with SMTP_HELO_NAME."""

from __future__ import annotations

import datetime as dt
import re
from email.header import decode_header, make_header
from pathlib import Path

import dkim
import httpx

from service.admin.recovery import email_invitation, email_password_reset
from service.app import create_app
from service.campaigns.flows import send_test
from service.campaigns.sender import CampaignSender
from service.campaigns.throttle import TokenBucket
from service.cli import _mail_test
from service.db import utcnow
from service.mail.bulk import bulk_transport_for
from service.mail.dkim import signer_from_settings
from service.mail.outbox import OutboxWorker
from service.mail.transport import mailer_for
from service.settings import RateLimit, Settings
from service.tokens import Tokens
from tests.conftest import Database, make_settings
from tests.factories import link_in, make_campaign, make_staff, post_json, set_fields, signup
from tests.smtp import Received, SmtpServer

ORG = "Klinik Süd Zürich"
DIGEST_SUBJECT = "Neuigkeiten aus der Klinik Süd – Übersicht für Dezember: Ketamin, Angst und Depression ✓"
SELECTOR, DOMAIN = "t2026", "clinic.test"
DATE = re.compile(rb"^Date: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000(?=\r\n|$)",
                  re.M)
ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def signing_settings(db: Database, smtp: SmtpServer, private: Path, **changes: object) -> Settings:
    values: dict[str, object] = {
        "org_name": ORG, "smtp_url": smtp.url, "smtp_helo_name": "mail.clinic.test",
        "dkim_private_key_file": str(private), "dkim_selector": SELECTOR, "dkim_domain": DOMAIN,
        "form_rate_limit": RateLimit(10_000, 600), **changes,
    }
    return make_settings(db, **values)


def dns_for(public: bytes):  # type: ignore[no-untyped-def]
    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode()
        return b"v=DKIM1; k=rsa; p=" + public

    return dns


async def deliver_outbox(db: Database, settings: Settings) -> None:
    worker = OutboxWorker(db.sessions, mailer_for(settings, db.sessions), owner="t")
    try:
        await worker.drain()
    finally:
        await worker.mailer.close()


async def send_digest(db: Database, settings: Settings, campaign_id: int) -> None:
    mailer = mailer_for(settings, db.sessions)
    transport = bulk_transport_for(mailer, concurrency=1)
    sender = CampaignSender(db.sessions, settings, transport, owner="w", bucket=TokenBucket(0),
                            signer=signer_from_settings(settings))
    try:
        assert await sender.run_campaign(campaign_id) == "sent"
    finally:
        await transport.close()
        await mailer.close()


async def every_kind(db: Database, smtp: SmtpServer, settings: Settings) -> dict[str, Received]:
    """One message of every kind, sent the way Tidings sends it; by kind."""
    app = create_app(settings, sessions=db.sessions)
    kinds: dict[str, Received] = {}
    seen = 0

    def take(kind: str, count: int = 1) -> None:
        nonlocal seen
        fresh = smtp.received[seen:]
        seen += len(fresh)
        assert len(fresh) == count, (kind, [str(r.message["Subject"]) for r in fresh])
        for i, received in enumerate(fresh):
            kinds[kind if count == 1 else f"{kind}.{i}"] = received

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 5000)),
                                 base_url="http://testserver") as client:
        assert (await signup(client, "reader@example.org", name="Renée Ærø")).status_code == 303
        await deliver_outbox(db, settings)
        take("confirmation")
        r = await client.post(link_in(kinds["confirmation"].message, "/confirm/"))
        assert r.status_code == 200
        await deliver_outbox(db, settings)
        take("welcome")
        await set_fields(db, "reader@example.org", confirmation_sent_at=utcnow() - dt.timedelta(hours=1))
        assert (await signup(client, "reader@example.org")).status_code == 303
        await deliver_outbox(db, settings)
        take("already")
        token = link_in(kinds["welcome"].message, "/unsubscribe/").rsplit("/", 1)[1]
        assert (await client.post(f"/unsubscribe/{token}/access")).status_code in (200, 303)
        await deliver_outbox(db, settings)
        take("access")
        assert (await post_json(client, name="José Müller")).status_code == 201
        await deliver_outbox(db, settings)
        take("inquiry", 2)
    campaign_id = await make_campaign(db, settings, subject=DIGEST_SUBJECT)
    await send_digest(db, settings, campaign_id)
    take("digest")
    draft = await make_campaign(db, settings, subject=DIGEST_SUBJECT, start=False)
    mailer = mailer_for(settings, db.sessions, concurrency=1)
    transport = bulk_transport_for(mailer, concurrency=1)
    try:
        await send_test(db.sessions, transport, settings=settings, campaign_id=draft, address="tester@example.org")
    finally:
        await transport.close()
        await mailer.close()
    take("test send")
    await _mail_test(settings, "ops@example.org")
    take("mail-test")
    colleague = await make_staff(db, "joerg.new@example.org", role="staff", password=None, name="Jörg Ærø")
    async with db.sessions.begin() as session:
        assert await email_invitation(session, settings, Tokens(settings), colleague, inviter="Ana")
        assert await email_password_reset(session, settings, Tokens(settings), colleague)
    await deliver_outbox(db, settings)
    take("staff mail", 2)
    kinds["staff invitation"], kinds["password reset"] = kinds.pop("staff mail.0"), kinds.pop("staff mail.1")
    staff, reply = kinds.pop("inquiry.0"), kinds.pop("inquiry.1")
    if staff.recipients != ["staff@clinic.test"]:
        staff, reply = reply, staff
    kinds["staff notice"], kinds["auto-reply"] = staff, reply
    return kinds


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def signed_headers(raw: bytes) -> set[str]:
    signature = re.search(rb"DKIM-Signature:(.*?)\r\n(?! )(?!\t)", raw, re.S)
    assert signature, "no DKIM-Signature"
    tags = re.sub(rb"\s+", b"", signature.group(1)).decode()
    found = re.search(r"(?:^|;)h=([^;]*)", tags)
    assert found
    return {h.lower() for h in found.group(1).split(":")}


async def test_every_kind_of_email_is_signed_dated_identified_and_encoded_by_the_rules(
    db: Database, smtp: SmtpServer, key_pair: tuple[Path, bytes]
) -> None:
    private, public = key_pair
    settings = signing_settings(db, smtp, private)
    kinds = await every_kind(db, smtp, settings)
    assert set(kinds) == {"confirmation", "welcome", "already", "access", "staff notice", "auto-reply", "digest",
                          "test send", "mail-test", "staff invitation", "password reset"}
    dns = dns_for(public)
    message_ids = set()
    for kind, received in kinds.items():
        raw = received.raw
        assert dkim.verify(raw, dnsfunc=dns), f"{kind}: the DKIM signature does not verify"
        assert not dkim.verify(raw.replace(b"\r\n\r\n", b"\r\n\r\nX", 1), dnsfunc=dns), kind
        head = header_block(raw)
        assert len(DATE.findall(head)) == 1, f"{kind}: Date without a numeric zone: {head!r}"
        dates = re.findall(rb"^Date:.*$", head, re.MULTILINE | re.IGNORECASE)
        assert len(dates) == 1 and b"GMT" not in dates[0], f"{kind}: {dates!r}"
        message_id = str(received.message["Message-ID"])
        assert re.fullmatch(r"<[^<>@\s]+@clinic\.test>", message_id), (kind, message_id)
        message_ids.add(message_id)
        for word in ENCODED_WORD.findall(head):
            assert len(word) <= 75, f"{kind}: an encoded word of {len(word)} characters"
        for line in head.split(b"\r\n"):
            if not line.startswith(b"DKIM-Signature") and not line.startswith((b" b=", b"\tb=")):
                assert len(line) <= 78 or not ENCODED_WORD.search(line), f"{kind}: unfolded line {line!r}"
        assert received.helo == "mail.clinic.test", kind
        assert {"from", "to", "subject", "date", "message-id"} <= signed_headers(raw), kind
    assert len(message_ids) == len(kinds)
    for kind in ("welcome", "digest", "test send"):
        assert {"list-unsubscribe", "list-unsubscribe-post", "list-id"} <= signed_headers(kinds[kind].raw), kind
    subjects = {kind: str(make_header(decode_header(str(r.message["Subject"])))) for kind, r in kinds.items()}
    assert subjects["digest"] == DIGEST_SUBJECT
    assert subjects["test send"] == f"[TEST] {DIGEST_SUBJECT}"
    assert subjects["welcome"] == f"Welcome to the {ORG} newsletter"
    assert subjects["mail-test"] == f"{ORG}: mail works"
    assert len(ENCODED_WORD.findall(header_block(kinds["digest"].raw))) >= 2  # folded into several words
    for kind in ("welcome", "digest"):  # newsletter footers: the postal address, and no promise of "one click"
        for part in kinds[kind].message.walk():
            if part.get_content_maintype() == "text":
                body = part.get_content()
                assert "Clinic Street 1" in body and "12345 Testtown" in body, kind
                assert "one click" not in body.lower(), kind


async def test_without_dkim_nothing_is_signed_and_the_helo_name_is_the_host_of_base_url(
    db: Database, smtp: SmtpServer
) -> None:
    settings = make_settings(db, smtp_url=smtp.url, base_url="https://news.clinic.test")
    assert settings.helo_name == "news.clinic.test"
    await _mail_test(settings, "ops@example.org")
    (received,) = smtp.received
    assert received.helo == "news.clinic.test"
    assert b"DKIM-Signature" not in header_block(received.raw)
    assert DATE.search(header_block(received.raw))
