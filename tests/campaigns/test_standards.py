"""Standards for newsletters: Message-IDs unique across installs and fixed per delivery, a test
send whose every link works, a footer whose words are true and that carries the postal address,
a preheader hidden without low-contrast text, and campaigns refused (with the setting to fix
named, in the admin and at the command line) without an https BASE_URL over SMTP or without a
postal address."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from service.admin.models import AuditEvent, BrandSettings, StaffUser
from service.app import create_app
from service.campaigns.flows import send_test
from service.campaigns.models import Campaign, Delivery
from service.campaigns.sender import CampaignSender
from service.campaigns.throttle import TokenBucket
from service.cli import main
from service.db import create_engine, migrate, session_factory
from service.mail.bulk import LocalBulkTransport, SmtpBulkTransport
from service.mail.message import parse_raw
from service.mail.models import MailboxMessage
from service.newsletter.models import Subscriber
from service.settings import Settings
from tests.conftest import TEST_SECRET, Database, make_settings
from tests.factories import SAMPLE, add_subscriber, make_campaign, make_staff, sign_in, token_in
from tests.smtp import SmtpServer

LINK = re.compile(r"http://testserver(/[^\s\"'<>]*)")


async def _send_local(db: Database, settings: Settings, campaign_id: int) -> None:
    sender = CampaignSender(db.sessions, settings, LocalBulkTransport(db.sessions), owner="w", bucket=TokenBucket(0))
    assert await sender.run_campaign(campaign_id) == "sent"


async def _mailbox(db: Database) -> list[MailboxMessage]:
    async with db.sessions() as session:
        return list((await session.scalars(select(MailboxMessage).order_by(MailboxMessage.id))).all())


async def _fresh_install(path: Path) -> Database:
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url)
    await migrate(engine)
    return Database("sqlite", url, engine, session_factory(engine))


async def test_message_ids_differ_between_two_fresh_installs_and_a_resend_is_the_same_message(
    tmp_path: Path,
) -> None:
    ids: list[list[str]] = []
    for name in ("first", "second"):
        install = await _fresh_install(tmp_path / f"{name}.db")
        try:
            settings = make_settings(install)
            for i in range(3):
                await add_subscriber(install, f"reader{i}@example.org")
            campaign_id = await make_campaign(install, settings)
            await _send_local(install, settings, campaign_id)
            sent = [m.message_id for m in await _mailbox(install)]
            assert len(sent) == 3 and len(set(sent)) == 3
            # A crash after the server's answer, before the result was recorded: sent again.
            async with install.sessions.begin() as session:
                first = (await session.scalars(select(Delivery).order_by(Delivery.id))).first()
                assert first is not None
                await session.execute(update(Delivery).where(Delivery.id == first.id)
                                      .values(status="queued", message_id=None, sent_at=None))
                await session.execute(update(Campaign).where(Campaign.id == campaign_id).values(status="sending"))
            await _send_local(install, settings, campaign_id)
            again = [m.message_id for m in await _mailbox(install)]
            assert again[3:] == [sent[0]], "the resend is the same message"
            ids.append(sent)
        finally:
            await install.engine.dispose()
    assert not set(ids[0]) & set(ids[1])


async def test_a_test_send_links_only_to_pages_that_work_and_change_nothing(
    db: Database, settings: Settings, smtp: SmtpServer, client: httpx.AsyncClient
) -> None:
    reader = await add_subscriber(db, "reader@example.org")
    campaign_id = await make_campaign(db, settings, start=False)
    transport = SmtpBulkTransport.from_url(smtp.url, concurrency=1, timeout=5)
    try:
        await send_test(db.sessions, transport, settings=settings, campaign_id=campaign_id, address="qa@example.org")
    finally:
        await transport.close()
    (received,) = smtp.received
    bodies = [part.get_content() for part in received.message.walk() if part.get_content_maintype() == "text"]
    links = {html.unescape(path) for body in bodies for path in LINK.findall(body)}
    assert any(p.startswith("/preview/unsubscribe/") for p in links)
    assert any(p.startswith("/archive/") and "?preview=" in p for p in links)
    assert not any("PREVIEW" in p for p in links)
    for path in sorted(links):
        r = await client.get(path)
        assert r.status_code == 200, (path, r.status_code)
    one_click = str(received.message["List-Unsubscribe"]).strip("<>").removeprefix("http://testserver")
    r = await client.post(one_click, content=b"List-Unsubscribe=One-Click",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and "Nothing was changed" in r.text
    async with db.sessions() as session:
        assert (await session.get(Subscriber, reader)).status == "confirmed"  # type: ignore[union-attr]
    archive = next(p for p in links if p.startswith("/archive/"))
    assert (await client.get(archive.split("?")[0])).status_code == 404  # not public before it is sent
    assert (await client.get(archive + "x")).status_code == 404  # a forged token shows nothing
    preview = next(p for p in links if p.startswith("/preview/unsubscribe/"))
    assert (await client.get(preview + "x")).status_code == 400


async def test_digest_footer_is_true_carries_the_postal_address_and_hides_the_preheader_without_colour(
    db: Database, settings: Settings
) -> None:
    await add_subscriber(db, "reader@example.org")
    campaign_id = await make_campaign(db, settings)
    await _send_local(db, settings, campaign_id)
    (stored,) = await _mailbox(db)
    message = parse_raw(stored.raw)
    text_part, html_part = (message.get_body(preferencelist=(kind,)).get_content()  # type: ignore[union-attr]
                            for kind in ("plain", "html"))
    for body in (text_part, html_part):
        assert "one click" not in body.lower()
        assert "Clinic Street 1" in body and "12345 Testtown" in body
    assert "Unsubscribe or choose your topics" in html_part
    style = re.search(r'<div class="preheader" style="([^"]*)"', html_part)
    assert style, html_part[:2000]
    assert "display: none" in style.group(1) and "mso-hide: all" in style.group(1)
    assert "color" not in style.group(1) and "font-size" not in style.group(1)


# -- refusals: https BASE_URL over SMTP, and a postal address ------------------------------------


@contextlib.asynccontextmanager
async def _admin(app: object, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """A signed-in admin's client (the account is made the first time)."""
    async with db.sessions() as session:
        exists = (await session.scalars(select(StaffUser))).first() is not None
    if not exists:
        await make_staff(db)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await sign_in(client)).status_code == 303
        yield client


async def _send_now(client: httpx.AsyncClient, campaign_id: int) -> httpx.Response:
    page = await client.get(f"/admin/campaigns/{campaign_id}")
    return await client.post(f"/admin/campaigns/{campaign_id}/send", data={"csrf_token": token_in(page.text)})


async def _status(db: Database, campaign_id: int) -> str:
    async with db.sessions() as session:
        return (await session.get(Campaign, campaign_id)).status  # type: ignore[union-attr]


async def test_admin_refuses_a_campaign_over_smtp_with_an_http_base_url_naming_the_setting(
    db: Database, smtp: SmtpServer
) -> None:
    settings = make_settings(db, smtp_url=smtp.url, allow_http_base_url=False)
    campaign_id = await make_campaign(db, settings, start=False)
    async with _admin(create_app(settings, sessions=db.sessions), db) as client:
        r = await _send_now(client, campaign_id)
        assert r.status_code == 409
        assert "BASE_URL" in r.text and "ALLOW_HTTP_BASE_URL=true" in r.text
        assert await _status(db, campaign_id) == "draft"
    allowed = settings.with_(allow_http_base_url=True)
    async with _admin(create_app(allowed, sessions=db.sessions), db) as client:
        assert (await _send_now(client, campaign_id)).status_code == 303
    assert await _status(db, campaign_id) == "sending"


async def test_local_outbox_needs_no_https(db: Database) -> None:
    settings = make_settings(db, allow_http_base_url=False)
    campaign_id = await make_campaign(db, settings, start=False)
    async with _admin(create_app(settings, sessions=db.sessions), db) as client:
        assert (await _send_now(client, campaign_id)).status_code == 303


async def test_no_postal_address_refuses_sending_until_staff_save_one_in_settings(db: Database) -> None:
    settings = make_settings(db, org_postal_address="")
    await add_subscriber(db, "reader@example.org")
    campaign_id = await make_campaign(db, settings, start=False)
    async with _admin(create_app(settings, sessions=db.sessions), db) as client:
        r = await _send_now(client, campaign_id)
        assert r.status_code == 409 and "no postal address is known" in r.text and "/admin/settings" in r.text
        page = await client.get("/admin/settings")
        assert page.status_code == 200 and "None is known yet" in page.text
        csrf = token_in(page.text)
        r = await client.post("/admin/settings", data={"csrf_token": csrf, "postal_address": " \n  "})
        assert r.status_code == 422 and "Postal address: enter the organisation" in html.unescape(r.text)
        r = await client.post("/admin/settings", data={"postal_address": "Somewhere 1"})
        assert r.status_code == 403
        async with db.sessions() as session:
            row = await session.get(BrandSettings, 1)
            assert row is None or row.postal_address is None  # refused input changed nothing
        typed = "  Rua das Flores 12 \r\n\r\n 1200-195 Lisboa "
        r = await client.post("/admin/settings", data={"csrf_token": csrf, "postal_address": typed})
        assert r.status_code == 303
        page = await client.get("/admin/settings?saved=1")
        assert "Rua das Flores 12\n1200-195 Lisboa" in html.unescape(page.text)
        assert (await _send_now(client, campaign_id)).status_code == 303
    async with db.sessions() as session:
        audit = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "brand_change"))).all()
    assert [a.actor_email for a in audit] == ["admin@clinic.test"]
    await _send_local(db, settings, campaign_id)
    (stored,) = await _mailbox(db)
    assert b"Rua das Flores 12" in stored.raw.replace(b"=\r\n", b"")


def test_cli_refuses_without_https_or_postal_address_naming_the_setting(
    db: Database, smtp: SmtpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in (("DATABASE_URL", db.url), ("SECRET_KEY", TEST_SECRET), ("BASE_URL", "http://testserver"),
                        ("SMTP_URL", smtp.url)):
        monkeypatch.setenv(name, value)
    for name in ("ALLOW_HTTP_BASE_URL", "ORG_POSTAL_ADDRESS", "DKIM_PRIVATE_KEY_FILE", "DKIM_SELECTOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["articles", "import", str(SAMPLE / "feed.xml")]) == 0
    assert main(["digest", "create", "--subject", "News"]) == 0
    campaign_id = re.search(r"campaign (\d+): draft", capsys.readouterr().out).group(1)  # type: ignore[union-attr]
    assert main(["campaign", "send", campaign_id]) == 1
    assert "ALLOW_HTTP_BASE_URL=true" in capsys.readouterr().err
    monkeypatch.setenv("ALLOW_HTTP_BASE_URL", "true")
    assert main(["campaign", "send", campaign_id]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no postal address is known") and "ORG_POSTAL_ADDRESS" in err
    assert len(smtp.received) == 0
