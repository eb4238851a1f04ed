"""`tidings campaign create | edit | duplicate | delete` through `service.cli.main` (the real
parser, handlers and database): the same action functions and audit rows as the admin's composer,
one clear line and no change for bad input."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from service.admin.models import AuditEvent
from service.articles.models import Article
from service.campaigns.models import Campaign, CampaignArticle
from service.cli import main
from service.newsletter.models import Subscriber
from tests.conftest import TEST_SECRET, Database
from tests.factories import SAMPLE
from tests.test_cli_audit import _query

ACTOR = "cli:alice"


@pytest.fixture
def cli_env(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("BASE_URL", "http://testserver")
    monkeypatch.setenv("LOGNAME", "alice")
    monkeypatch.chdir(tmp_path)
    return db


def _created(capsys: pytest.CaptureFixture[str]) -> int:
    found = re.search(r"campaign (\d+): draft", capsys.readouterr().out)
    assert found
    return int(found.group(1))


def _campaigns(url: str) -> list[Any]:
    return _query(url, select(Campaign.id, Campaign.subject, Campaign.body, Campaign.audience_topics,
                              Campaign.status).order_by(Campaign.id))


def _articles(url: str, campaign_id: int) -> list[int]:
    return [a for (a,) in _query(url, select(CampaignArticle.article_id).where(
        CampaignArticle.campaign_id == campaign_id).order_by(CampaignArticle.position))]


def _article_ids(url: str) -> list[int]:
    return [a for (a,) in _query(url, select(Article.id).order_by(Article.id))]


def test_create_edit_duplicate_and_delete_from_the_command_line(
    cli_env: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = cli_env.url
    assert main(["articles", "import", str(SAMPLE / "feed.xml")]) == 0
    _query(url, Subscriber.__table__.insert().values(email="r@example.org", email_key="r@example.org", name="",
                                                     status="confirmed"), write=True)
    body = tmp_path / "hours.md"
    body.write_text("## New opening hours\n\nSaturdays **9–13**.\n", encoding="utf-8")
    capsys.readouterr()

    assert main(["campaign", "create", "--subject", "New opening hours", "--body-file", str(body),
                 "--topics", "anxiety,PTSD"]) == 0
    announcement = _created(capsys)
    assert _campaigns(url) == [(announcement, "New opening hours", "## New opening hours\n\nSaturdays **9–13**.",
                                ["PTSD", "anxiety"], "draft")]
    assert _articles(url, announcement) == []
    assert main(["campaign", "preview", str(announcement), "--text"]) == 0
    assert "Saturdays **9–13**." in capsys.readouterr().out

    ids = _article_ids(url)
    picked = [ids[2], ids[0]]
    assert main(["campaign", "edit", str(announcement), "--articles", f"{ids[2]},{ids[0]}",
                 "--subject", "Hours and reads"]) == 0
    capsys.readouterr()
    assert _campaigns(url)[0][1:4] == ("Hours and reads", "## New opening hours\n\nSaturdays **9–13**.",
                                       ["PTSD", "anxiety"])
    assert _articles(url, announcement) == picked

    assert main(["campaign", "duplicate", str(announcement)]) == 0
    copy = _created(capsys)
    assert _campaigns(url)[1][1:] == _campaigns(url)[0][1:] and _articles(url, copy) == picked
    assert main(["campaign", "delete", str(copy)]) == 0
    capsys.readouterr()
    assert [c[0] for c in _campaigns(url)] == [announcement]

    audit = _query(url, select(AuditEvent.action, AuditEvent.actor_email, AuditEvent.target_id)
                   .where(AuditEvent.action.like("campaign%")).order_by(AuditEvent.id))
    assert [tuple(r) for r in audit] == [
        ("campaign_create", ACTOR, str(announcement)), ("campaign_edit", ACTOR, str(announcement)),
        ("campaign_duplicate", ACTOR, str(copy)), ("campaign_delete", ACTOR, str(copy))]


def test_bad_compose_commands_say_one_line_and_change_nothing(
    cli_env: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = cli_env.url
    assert main(["articles", "import", str(SAMPLE / "feed.xml")]) == 0
    first = str(_article_ids(url)[0])
    assert main(["campaign", "create", "--subject", "Sent one", "--articles", first]) == 0
    sent = _created(capsys)
    _query(url, Campaign.__table__.update().values(status="sent"), write=True)
    bell = tmp_path / "bell.md"
    bell.write_text("ding \x07", encoding="utf-8")
    for args, message in (
        (["create", "--subject", "Empty"], "a campaign needs a body or at least one article"),
        (["create", "--subject", "Bad\nBcc: x@example.org", "--articles", first], "must be a single line"),
        (["create", "--subject", "Missing", "--articles", f"{first},999999"], "--articles: no article 999999"),
        (["create", "--subject", "Words", "--articles", "one"], "--articles: expected article ids"),
        (["create", "--subject", "Topic", "--articles", first, "--topics", "astrology"], "unknown topic(s) astrology"),
        (["create", "--subject", "Bell", "--body-file", str(bell)], "contains control characters"),
        (["create", "--subject", "Nofile", "--body-file", str(tmp_path / "nope.md")], "--body-file: cannot read"),
        (["edit", str(sent), "--subject", "Changed"], "only a draft can be edited"),
        (["delete", str(sent)], "only a draft can be deleted"),
        (["duplicate", "9999"], "no campaign 9999"),
    ):
        assert main(["campaign", *args]) == 1, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (args, err)
    assert [c[1:] for c in _campaigns(url)] == [("Sent one", "", [], "sent")]
    assert [a for (a,) in _query(url, select(AuditEvent.action).where(AuditEvent.action.like("campaign%")))] == [
        "campaign_create"]
