"""Every state-changing `tidings campaign …` and `tidings subscribers …` command writes the same
audit row as the admin page that does the same thing, with the actor `cli:<OS user name>`.

The commands run in this process through `service.cli.main` (the real parser, handlers and
database), in the main thread because `campaign send` installs signal handlers; the checks read
the database with an engine of their own."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from service.admin.models import AuditEvent, StaffUser
from service.campaigns.models import Campaign, DigestRule
from service.cli import main
from service.db import create_engine, session_factory
from service.newsletter.models import Subscriber
from tests.conftest import TEST_SECRET, Database
from tests.factories import SAMPLE
from tests.smtp import SmtpServer

ACTOR = "cli:alice"


@pytest.fixture
def cli_env(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("BASE_URL", "http://testserver")
    monkeypatch.setenv("ALLOW_HTTP_BASE_URL", "true")
    monkeypatch.setenv("ORG_POSTAL_ADDRESS", "Clinic Street 1")
    monkeypatch.setenv("LOGNAME", "alice")  # what getpass.getuser() reads first
    monkeypatch.chdir(tmp_path)
    return db


def _query(url: str, statement: Any, *, write: bool = False) -> list[Any]:
    async def go() -> list[Any]:
        engine = create_engine(url)
        try:
            async with session_factory(engine)() as session:
                if write:
                    await session.execute(statement)
                    await session.commit()
                    return []
                return list((await session.execute(statement)).all())
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _audit(url: str) -> list[tuple[str, str, str, str]]:
    rows = _query(url, select(AuditEvent.action, AuditEvent.actor_email, AuditEvent.target_id, AuditEvent.ip,
                              AuditEvent.actor_id).order_by(AuditEvent.id))
    assert all(r.actor_id is None for r in rows)
    return [(r.action, r.actor_email, r.target_id, r.ip) for r in rows]


def _digest(capsys: pytest.CaptureFixture[str]) -> int:
    assert main(["digest", "create", "--subject", "News"]) == 0
    found = re.search(r"campaign (\d+): draft", capsys.readouterr().out)
    assert found
    return int(found.group(1))


def test_campaign_commands_audit_as_the_os_user(cli_env: Database, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    url = cli_env.url
    monkeypatch.setenv("SMTP_URL", smtp.url)
    assert main(["articles", "import", str(SAMPLE / "feed.xml")]) == 0
    first, second, third = _digest(capsys), _digest(capsys), _digest(capsys)
    _query(url, update(Campaign).where(Campaign.id == second).values(requires_approval=True), write=True)
    _query(url, Subscriber.__table__.insert().values(email="reader@example.org", email_key="reader@example.org",
                                                     name="", status="confirmed"), write=True)
    imported = ("articles_import", ACTOR, "", "cli")
    assert _audit(url) == [imported]

    assert main(["campaign", "schedule", str(first), "2099-01-05T09:00+00:00"]) == 0
    assert main(["campaign", "cancel", str(first)]) == 0
    assert main(["campaign", "schedule", str(second), "2099-01-05T09:00+00:00"]) == 0
    assert main(["campaign", "approve", str(second)]) == 0
    assert main(["campaign", "send", str(second)]) == 0
    assert [r.recipients for r in smtp.received] == [["reader@example.org"]]
    assert main(["campaign", "send", str(third), "--test", "editor@example.org"]) == 0
    _query(url, update(Campaign).where(Campaign.id == third).values(status="sending"), write=True)
    assert main(["campaign", "pause", str(third)]) == 0
    assert main(["campaign", "resume", str(third)]) == 0
    capsys.readouterr()
    assert _audit(url) == [
        imported, ("campaign_schedule", ACTOR, str(first), "cli"), ("campaign_cancel", ACTOR, str(first), "cli"),
        ("campaign_schedule", ACTOR, str(second), "cli"), ("campaign_approve", ACTOR, str(second), "cli"),
        ("campaign_send", ACTOR, str(second), "cli"), ("campaign_test_send", ACTOR, str(third), "cli"),
        ("campaign_pause", ACTOR, str(third), "cli"), ("campaign_resume", ACTOR, str(third), "cli")]


def test_refused_campaign_commands_change_nothing_and_audit_nothing(
    cli_env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    url = cli_env.url
    assert main(["articles", "import", str(SAMPLE / "feed.xml")]) == 0
    draft = _digest(capsys)
    for args, message in ((["approve", str(draft)], "does not await an approval"),
                          (["pause", str(draft)], "it cannot become paused"),
                          (["schedule", str(draft), "2001-01-05T09:00+00:00"], "WHEN: this is in the past"),
                          (["schedule", str(draft), "2099-01-05T09:00"], "WHEN: give a UTC offset"),
                          (["cancel", "9999"], "no campaign 9999")):
        assert main(["campaign", *args]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert _query(url, select(Campaign.status, Campaign.approved_at, Campaign.scheduled_at)) == [
        ("draft", None, None)]
    assert _audit(url) == [("articles_import", ACTOR, "", "cli")]


def test_subscriber_import_and_export_audit_as_the_os_user(cli_env: Database, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    url = cli_env.url
    path = tmp_path / "list.csv"
    path.write_bytes(b"email,name\nana@example.org,Ana\nbad,X\n")
    assert main(["subscribers", "import", str(path), "--dry-run"]) == 0
    assert _audit(url) == []  # a dry run changes nothing and is not audited (as in the admin)
    assert main(["subscribers", "import", str(path)]) == 0
    assert main(["subscribers", "export", "-o", str(tmp_path / "out.csv")]) == 0
    assert main(["subscribers", "export", "--status", "confirmed"]) == 0
    assert main(["subscribers", "export", "-o", str(tmp_path / "missing" / "out.csv")]) == 1
    capsys.readouterr()
    assert _audit(url) == [("subscriber_import", ACTOR, "", "cli"), ("subscriber_export", ACTOR, "", "cli"),
                           ("subscriber_export", ACTOR, "", "cli")]
    details = [d for (d,) in _query(url, select(AuditEvent.detail).order_by(AuditEvent.id))]
    assert details[0]["file"] == "list.csv" and details[0]["added"] == 1 and details[0]["errors"] == 1
    assert len(details[0]["sha256"]) == 64
    assert details[1:] == [{"filter": {}, "to": "file"}, {"filter": {"status": "confirmed"}, "to": "stdout"}]


def test_create_admin_audits_the_os_user(cli_env: Database, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["create-admin", "boss@clinic.test", "--password-stdin"]) == 0
    capsys.readouterr()
    assert _audit(cli_env.url) == [("user_invite", ACTOR, _audit_target(cli_env.url), "cli")]


def _audit_target(url: str) -> str:
    [(user_id,)] = _query(url, select(StaffUser.id))
    return str(user_id)


def test_articles_import_and_digest_rule_audit_as_the_os_user(cli_env: Database, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    url = cli_env.url
    assert main(["articles", "import", str(SAMPLE / "feed.xml")]) == 0
    assert main(["articles", "import", str(tmp_path / "missing.xml")]) == 1
    assert main(["digest", "rule", "weekly on Monday 09:00 Europe/London", "--approval"]) == 0
    assert main(["digest", "rule", "every full moon"]) == 1  # refused: no rule, no row
    capsys.readouterr()
    [(rule_id,)] = _query(url, select(DigestRule.id))
    assert _audit(url) == [("articles_import", ACTOR, "", "cli"), ("articles_import", ACTOR, "", "cli"),
                           ("digest_rule_save", ACTOR, str(rule_id), "cli")]
    details = [d for (d,) in _query(url, select(AuditEvent.detail).order_by(AuditEvent.id))]
    assert details[0] == {"new": 5, "updated": 0} and "missing.xml" in details[1]["error"]
