"""`tidings backup FILE` and `tidings restore FILE --yes` as a round trip on both databases: what
was in the backup comes back, except whoever was erased after it was made (the ledger erases them
again, with their mail copies); bad input gets one line and changes nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from service.inquiries.models import Inquiry
from service.newsletter.models import Subscriber, Suppression
from service.privacy.erase import erase_inquiry, erase_subscriber
from service.settings import Settings
from service.tokens import Tokens
from tests.conftest import ROOT, TEST_SECRET, Database
from tests.factories import confirmed_subscriber, count, subscriber
from tests.privacy.helpers import copies_of, ledger, mailbox_mentions, submit
from tests.smtp import SmtpServer

pytestmark = pytest.mark.slow


def tidings(db: Database, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SMTP_URL")}
    env.update(DATABASE_URL=db.url, SECRET_KEY=TEST_SECRET)
    return subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


async def test_restore_brings_back_the_backup_but_not_who_was_erased_since(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer, settings: Settings, tmp_path: Path) -> None:
    erased = await confirmed_subscriber(client, db, smtp, "erase.me@example.org", name="Eve Erased")
    await confirmed_subscriber(client, db, smtp, "keep.me@example.org", name="Kim Kept")
    gone_inquiry, kept_inquiry = await submit(client, db, 1), await submit(client, db, 2)
    file = tmp_path / "tidings.backup"

    made = tidings(db, "backup", str(file))
    assert made.returncode == 0, made.stderr
    assert re.fullmatch(rf"backed up the .+ to {re.escape(str(file))} \((?:\d+ KB|\d+\.\d MB)\)\n", made.stdout)
    assert file.is_file()

    tokens = Tokens(settings)
    async with db.sessions.begin() as session:  # after the backup: two erasures, one new signup
        assert await erase_subscriber(session, tokens=tokens, subscriber_id=erased.id)
        assert await erase_inquiry(session, tokens=tokens, inquiry_id=gone_inquiry)
    await confirmed_subscriber(client, db, smtp, "after@example.org")

    restored = tidings(db, "restore", str(file), "--yes")
    assert restored.returncode == 0, restored.stderr
    lines = restored.stdout.splitlines()
    assert lines[0] == "kept the erasure ledger of the current database: 2 erasures"
    assert lines[1].startswith(f"restored {file} into the ")
    assert lines[2].endswith("2 erasures made since the backup added to its ledger")
    assert lines[3] == "erased again: 1 subscribers, 1 inquiries, stored mail to 0 other erased addresses"

    assert await subscriber(db, "keep.me@example.org") is not None
    assert await subscriber(db, "after@example.org") is None  # made after the backup
    assert await subscriber(db, "erase.me@example.org") is None  # erased after it: not back
    assert await mailbox_mentions(db, "erase.me@example.org") == 0
    assert await mailbox_mentions(db, "Eve Erased") == 0
    assert await mailbox_mentions(db, "keep.me@example.org") == 2
    assert await count(db, Suppression) == 1
    async with db.sessions() as session:
        assert (await session.scalars(select(Inquiry.id))).all() == [kept_inquiry]
        assert await session.scalar(select(func.count()).select_from(Subscriber)) == 1
    assert await copies_of(db, gone_inquiry) == (0, 0) and await copies_of(db, kept_inquiry) == (2, 0)
    assert sorted(e.kind for e in await ledger(db)) == ["inquiry", "subscriber"]

    again = tidings(db, "restore", str(file), "--yes")  # the ledger now lives on in the restored database
    assert again.returncode == 0, again.stderr
    assert "erased again: 1 subscribers, 1 inquiries" in again.stdout
    assert await subscriber(db, "erase.me@example.org") is None and len(await ledger(db)) == 2


async def test_a_person_who_signed_up_again_after_an_erasure_is_kept(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer, settings: Settings, tmp_path: Path) -> None:
    first = await confirmed_subscriber(client, db, smtp, "back@example.org")
    async with db.sessions.begin() as session:
        await erase_subscriber(session, tokens=Tokens(settings), subscriber_id=first.id)
    await confirmed_subscriber(client, db, smtp, "back@example.org")  # fresh consent, a new row
    file = tmp_path / "after-erasure.backup"
    assert tidings(db, "backup", str(file)).returncode == 0
    restored = tidings(db, "restore", str(file), "--yes")
    assert restored.returncode == 0, restored.stderr
    assert "erased again: 0 subscribers" in restored.stdout
    sub = await subscriber(db, "back@example.org")
    assert sub is not None and sub.status == "confirmed"


async def test_bad_backup_and_restore_input_is_one_line_and_changes_nothing(
        client: httpx.AsyncClient, db: Database, tmp_path: Path) -> None:
    await submit(client, db, 1)
    existing = tmp_path / "exists.backup"
    existing.write_bytes(b"keep me")
    bogus = tmp_path / "bogus.backup"
    bogus.write_bytes(b"this is not a database backup\n" * 10)
    cases = [
        (("backup", str(existing)), f"error: {existing} already exists: choose a new file name"),
        (("backup", str(tmp_path / "no" / "such" / "dir.backup")), "error: cannot write"),
        (("restore", str(tmp_path / "missing.backup"), "--yes"), "error: cannot read"),
        (("restore", str(bogus)), "error: restore replaces everything in"),
        (("restore", str(bogus), "--yes"), "error: "),
    ]
    for args, message in cases:
        result = tidings(db, *args)
        assert result.returncode == 1, (args, result.stdout)
        assert result.stderr.startswith(message), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert existing.read_bytes() == b"keep me"
    assert await count(db, Inquiry) == 1
    bad = tidings(db, "restore", str(bogus), "--yes")
    assert ("is not a Tidings backup" in bad.stderr) if not db.is_postgres else ("pg_restore failed" in bad.stderr)


async def test_a_backup_from_a_newer_tidings_is_refused_before_anything_changes(
        client: httpx.AsyncClient, db: Database, tmp_path: Path) -> None:
    await submit(client, db, 1)
    async with db.engine.begin() as conn:
        head = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999future'"))
    newer = tmp_path / "newer.backup"
    try:
        assert tidings(db, "backup", str(newer)).returncode == 0
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    await submit(client, db, 2)
    result = tidings(db, "restore", str(newer), "--yes")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"error: {newer} has schema revision 9999future, unknown to this version of Tidings "
                             "(made by a newer one?): nothing was changed\n")
    assert await count(db, Inquiry) == 2
