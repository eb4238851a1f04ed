"""`tidings demo`, run as a real process on both databases: what it loads, that a second run
changes nothing, that it refuses a database holding other data, and that its admin can sign in."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from service.admin.models import StaffUser
from service.articles.models import Article
from service.campaigns.models import Campaign, CampaignArticle
from service.inquiries.models import Inquiry, InquiryEvent
from service.mail.models import MailboxMessage, OutboxMessage
from service.newsletter.models import Subscriber, SubscriberTopic
from tests.conftest import TEST_SECRET, Database
from tests.factories import make_staff, new_client, sign_in

COUNTED = (Article, Subscriber, SubscriberTopic, Inquiry, InquiryEvent, Campaign, CampaignArticle, StaffUser,
           OutboxMessage, MailboxMessage)


def demo(db_url: str, cwd: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY", "BASE_URL", "SMTP_URL")}
    env.update(DATABASE_URL=db_url, SECRET_KEY=TEST_SECRET, BASE_URL="http://testserver")
    return subprocess.run([sys.executable, "-m", "service.cli", "demo", *args], env=env, cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=120)


async def counts(db: Database) -> dict[str, int]:
    async with db.sessions() as session:
        return {m.__tablename__: int(await session.scalar(select(func.count()).select_from(m)) or 0)
                for m in COUNTED}


def printed_password(stdout: str) -> str:
    found = re.search(r"shown only this once\):\n  (\S+)\n", stdout)
    assert found, stdout
    return found.group(1)


@pytest.mark.slow  # runs `tidings` as a process
async def test_demo_loads_blog_subscribers_inquiries_a_draft_digest_and_an_admin(
        db: Database, app: Any, tmp_path: Path) -> None:
    r = demo(db.url, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Demo loaded: 5 articles, 300 subscribers (276 confirmed, 14 pending, "
                               "10 unsubscribed), 6 inquiries, 1 draft digest (campaign 1), 1 admin account.")
    for url in ("/contact", "/subscribe", "/admin/login", "/admin/outbox"):
        assert f"http://testserver{url}\n" in r.stdout or f"http://testserver{url} " in r.stdout
    n = await counts(db)
    assert (n["articles"], n["subscribers"], n["inquiries"], n["campaigns"], n["staff_users"]) == (5, 300, 6, 1, 1)
    assert n["campaign_articles"] == 5
    assert n["subscriber_topics"] > 150  # most chose topics; some chose none (= every topic)
    assert n["inquiry_events"] >= 5  # status history and notes to look at
    assert n["outbox_messages"] == n["mailbox_messages"] == 0  # nobody was mailed
    async with db.sessions() as session:
        subs = (await session.scalars(select(Subscriber))).all()
        campaign = (await session.scalars(select(Campaign))).one()
        statuses = sorted({i.status for i in (await session.scalars(select(Inquiry))).all()})
    assert {s.signup_source for s in subs} == {"demo"}
    assert all("Demo data" in (s.consent_text or "") and s.signup_at is not None for s in subs)
    assert all(s.confirmed_at is not None for s in subs if s.status == "confirmed")
    assert all(s.email.endswith(("@example.org", "@example.com", "@example.net")) for s in subs)
    assert campaign.status == "draft"
    assert statuses == ["closed", "contacted", "new", "qualified"]
    async with new_client(app) as client:
        signed_in = await sign_in(client, "admin@example.org", printed_password(r.stdout))
        assert signed_in.status_code == 303
        listing = await client.get("/admin/inquiries")
    assert "Maya Fischer" in listing.text and "Lucas Moreau" in listing.text


@pytest.mark.slow  # runs `tidings` as a process
async def test_a_second_run_changes_nothing_and_says_so(db: Database, tmp_path: Path) -> None:
    first = demo(db.url, tmp_path)
    assert first.returncode == 0, first.stderr
    before = await counts(db)
    second = demo(db.url, tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("The demo is already loaded: nothing changed.")
    assert "Sign in as admin@example.org with the password printed when the demo was loaded." in second.stdout
    assert printed_password(first.stdout) not in second.stdout
    assert await counts(db) == before


@pytest.mark.slow  # runs `tidings` as a process
async def test_a_database_with_other_data_is_refused_in_one_line(db: Database, tmp_path: Path) -> None:
    await make_staff(db, "owner@clinic.org")
    before = await counts(db)
    r = demo(db.url, tmp_path)
    assert r.returncode == 1
    assert r.stderr == ("error: the database already holds data (staff accounts: 1): `tidings demo` loads only "
                        "into an empty database; set DATABASE_URL to a new one\n")
    assert r.stdout == ""
    assert await counts(db) == before


@pytest.mark.slow  # runs `tidings` as a process
async def test_admin_email_and_password_can_be_chosen(db: Database, app: Any, tmp_path: Path) -> None:
    r = demo(db.url, tmp_path, "--admin-email", "Me@Clinic.org", "--password-stdin",
             stdin="my own demo password\n")
    assert r.returncode == 0, r.stderr
    assert "Sign in as me@clinic.org with the password you gave." in r.stdout
    assert "my own demo password" not in r.stdout
    async with new_client(app) as client:
        assert (await sign_in(client, "me@clinic.org", "my own demo password")).status_code == 303


@pytest.mark.slow  # runs `tidings` as a process
async def test_a_bad_admin_email_or_password_is_refused_and_loads_nothing(db: Database, tmp_path: Path) -> None:
    short = demo(db.url, tmp_path, "--password-stdin", stdin="short\n")
    assert short.returncode == 1
    assert short.stderr.startswith("error: ") and "12 characters" in short.stderr
    bad = demo(db.url, tmp_path, "--admin-email", "not an address")
    assert bad.returncode == 1
    assert bad.stderr == "error: Email: expected an address such as name@clinic.org.\n"
    assert set((await counts(db)).values()) == {0}


@pytest.mark.slow  # runs `tidings` as a process
def test_demo_migrates_a_new_sqlite_database_and_loads_in_seconds(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    r = demo(url, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Demo loaded: 5 articles, 300 subscribers")
    again = demo(url, tmp_path)
    assert again.stdout.startswith("The demo is already loaded: nothing changed.")
