"""Migration 0007g links the emails already queued for an inquiry to it, so that inquiries stored
before the upgrade lose their copies too when they are erased or expire."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import text

from service.db import alembic_config, create_engine


async def test_upgrade_links_existing_inquiry_emails(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")

    def to(revision: str) -> Any:
        def run(connection: Any) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
        return run

    at = dt.datetime(2026, 11, 30, 10, 0, 0)
    async with engine.begin() as conn:
        await conn.run_sync(to("0005p"))
        for n in (1, 2):
            await conn.execute(text(
                "INSERT INTO inquiries (id, created_at, name, email, phone, topic, contact_method, message, consent, "
                "newsletter_optin, status, status_changed_at, source_page, referrer, utm_source, utm_medium, "
                "utm_campaign, utm_term, utm_content, ip, user_agent, dedupe_key) VALUES (:id, :at, 'P', :email, '', "
                "'other', 'email', 'm', 1, 0, 'new', :at, '', '', '', '', '', '', '', '', '', :key)"),
                {"id": n, "at": at + dt.timedelta(minutes=n), "email": f"Person{n}@example.org", "key": f"k{n}"})
            for kind, to_, subject in (("inquiry_staff", "staff@clinic.test", f"New inquiry #{n} from P"),
                                       ("inquiry_autoreply", f"person{n}@example.org", "We have received it")):
                await conn.execute(text(
                    "INSERT INTO outbox_messages (created_at, kind, recipient, subject, message_id, status, attempts, "
                    "next_attempt_at) VALUES (:at, :kind, :to, :subject, :mid, 'sent', 1, :at)"),
                    {"at": at + dt.timedelta(minutes=n), "kind": kind, "to": to_, "subject": subject,
                     "mid": f"<{kind}{n}@clinic.test>"})
        await conn.execute(text(
            "INSERT INTO outbox_messages (created_at, kind, recipient, subject, message_id, status, attempts, "
            "next_attempt_at) VALUES (:at, 'newsletter_confirm', 'person1@example.org', 'Confirm', '<c@x>', 'sent', "
            "1, :at)"), {"at": at + dt.timedelta(minutes=1)})
        await conn.run_sync(to("head"))
        rows = (await conn.execute(text("SELECT kind, inquiry_id FROM outbox_messages ORDER BY id"))).all()
    await engine.dispose()
    assert [tuple(r) for r in rows] == [("inquiry_staff", 1), ("inquiry_autoreply", 1), ("inquiry_staff", 2),
                                        ("inquiry_autoreply", 2), ("newsletter_confirm", None)]
