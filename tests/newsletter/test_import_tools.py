"""`tidings subscribers import` of other tools' exports as they publish them: Mailchimp (its zip of
subscribed, unsubscribed and cleaned files), listmonk, Ghost, Substack (its zip beside the posts):
statuses, names, topics and consent evidence as docs/newsletter.md maps them; a re-import changes
nothing; a forced layout that does not fit, a broken zip and a zip bomb are refused, changing nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import io
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from service.cli import main
from service.newsletter.archive import MAX_UNPACKED_BYTES
from service.newsletter.exporter import export_subscribers
from service.newsletter.models import Subscriber
from service.privacy.erase import erase_subscriber
from service.settings import Settings
from service.tokens import Tokens
from tests.conftest import TEST_SECRET, Database
from tests.factories import add_subscriber, count, subscriber
from tests.newsletter import exports

UTC = dt.UTC
Cli = Callable[..., Awaitable[tuple[int, str]]]


@pytest.fixture
def cli(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run `tidings subscribers import FILE ARGS…` on `data` (in a thread: it runs its own loop);
    returns (exit code, stdout + stderr)."""
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    monkeypatch.chdir(tmp_path)

    async def run(name: str, data: bytes, *args: str) -> tuple[int, str]:
        path = tmp_path / name
        path.write_bytes(data)
        code = await asyncio.to_thread(main, ["subscribers", "import", str(path), *args])
        out = capsys.readouterr()
        return code, out.out + out.err

    return run


async def _snapshot(db: Database) -> str:
    out = io.StringIO()
    async with db.sessions() as session:
        await export_subscribers(session, out)
    return out.getvalue()


def _at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


async def test_mailchimp_zip_maps_statuses_names_topics_and_consent(cli: Cli, db: Database,
                                                                    settings: Settings) -> None:
    await add_subscriber(db, "bo@example.org", status="unsubscribed")
    erased = await add_subscriber(db, "ed@example.org")
    async with db.sessions.begin() as session:
        assert await erase_subscriber(session, tokens=Tokens(settings), subscriber_id=erased)

    code, out = await cli("mailchimp_export.zip", exports.mailchimp_zip())
    assert code == 0, out
    assert "5 rows read: 3 were added, 0 were updated, 2 skipped, 0 with errors" in out
    assert "read subscribed_members_export_1a2b3c.csv as a Mailchimp export" in out
    assert "confirmed: 2 were added, 0 were updated, 1 skipped (1 never revived)" in out
    assert "bounced: 0 were added, 0 were updated, 1 skipped (1 erased)" in out
    assert "(lines cleaned_members_export_1a2b3c.csv:2)" in out
    assert "topics not configured here, not imported: VIP (1)" in out
    assert out.count("columns not used:") == 1 and "MEMBER_RATING" in out and "UNSUB_REASON" in out

    ana = await subscriber(db, "ana@example.org")
    assert ana is not None and (ana.status, ana.name, set(ana.topics)) == ("confirmed", "Ana Lima", {"anxiety", "PTSD"})
    assert (ana.signup_at, ana.signup_ip) == (_at(2023, 1, 15, 10, 20, 30), "198.51.100.7")
    assert (ana.confirmed_at, ana.confirm_ip) == (_at(2023, 1, 15, 10, 21), "198.51.100.8")
    assert ana.signup_source == "import: Mailchimp export"
    cy = await subscriber(db, "cy@example.org")
    assert cy is not None and (cy.name, cy.topics) == ('Cy, Jr. O"Neil', ["depression"])
    di = await subscriber(db, "di@example.org")
    assert di is not None and (di.status, di.unsubscribed_at) == ("unsubscribed", _at(2023, 5, 2, 8))
    assert (await subscriber(db, "bo@example.org")).status == "unsubscribed"  # type: ignore[union-attr]
    assert await subscriber(db, "ed@example.org") is None

    before = await _snapshot(db)
    code, out = await cli("mailchimp_export.zip", exports.mailchimp_zip())
    assert code == 0 and "5 rows read: 0 were added, 0 were updated, 2 unchanged, 3 skipped" in out
    assert await _snapshot(db) == before


async def test_mailchimp_cleaned_file_imports_as_bounced(cli: Cli, db: Database) -> None:
    code, out = await cli("cleaned.csv", exports.mailchimp_cleaned())
    assert code == 0, out
    ed = await subscriber(db, "ed@example.org")
    assert ed is not None and (ed.status, ed.bounced_at, ed.name) == ("bounced", _at(2023, 6, 3, 7), "Ed")


async def test_listmonk_imports_pending_unless_consented(cli: Cli, db: Database) -> None:
    code, out = await cli("subscribers.csv", exports.listmonk(), "--dry-run")
    assert code == 0 and "dry run: nothing was changed" in out and "3 would be added" in out
    assert "complained: 1 would be added" in out and await count(db, Subscriber) == 0

    code, out = await cli("subscribers.csv", exports.listmonk())
    assert code == 0 and "read the file as a listmonk export" in out and "Yoga (1)" in out
    fay = await subscriber(db, "fay@example.org")
    assert fay is not None and (fay.status, fay.name, fay.topics, fay.signup_at) == ("pending", "Fay Wu", ["OCD"],
                                                                                   None)
    assert (await subscriber(db, "gus@example.org")).status == "complained"  # type: ignore[union-attr]
    assert (await subscriber(db, "hal@example.org")).status == "unsubscribed"  # type: ignore[union-attr]
    before = await _snapshot(db)
    code, out = await cli("subscribers.csv", exports.listmonk())
    assert code == 0 and "0 were added, 0 were updated, 1 unchanged, 2 skipped" in out
    assert await _snapshot(db) == before


async def test_listmonk_consented_is_recorded_as_the_source(cli: Cli, db: Database) -> None:
    assert (await cli("subscribers.csv", exports.listmonk()))[0] == 0  # pending first, then the declaration
    code, out = await cli("subscribers.csv", exports.listmonk(), "--consented")
    assert code == 0, out
    fay = await subscriber(db, "fay@example.org")
    assert fay is not None and fay.status == "confirmed"
    assert fay.signup_at == dt.datetime(2022, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert fay.signup_source == "import: listmonk export; consent records held by the operator (--consented)"
    assert (await subscriber(db, "gus@example.org")).status == "complained"  # type: ignore[union-attr]


async def test_ghost_members_labels_and_unsubscribed(cli: Cli, db: Database) -> None:
    code, out = await cli("members.csv", exports.ghost(), "--from", "ghost")
    assert code == 0, out
    assert "Imported 2023 (1)" in out and "columns not used: id, note, complimentary_plan" in out
    ivy = await subscriber(db, "ivy@example.org")
    assert ivy is not None and (ivy.status, ivy.name, ivy.topics) == ("pending", "Ivy Ng", ["anxiety"])
    assert ivy.created_at == _at(2023, 1, 10, 10)
    assert (await subscriber(db, "jo@example.org")).status == "unsubscribed"  # type: ignore[union-attr]


async def test_substack_zip_reads_the_email_list_only(cli: Cli, db: Database) -> None:
    code, out = await cli("export.zip", exports.substack_zip(), "--consented")
    assert code == 0, out
    assert "files in the zip not imported (not a subscriber list): posts.csv, posts/1.opens.csv" in out
    kim = await subscriber(db, "kim@example.org")
    assert kim is not None and (kim.status, kim.signup_at) == ("confirmed", _at(2021, 7, 1, 9))
    assert (await subscriber(db, "lee@example.org")).status == "unsubscribed"  # type: ignore[union-attr]
    assert await count(db, Subscriber) == 2
    code, out = await cli("export.zip", exports.substack_zip(), "--from", "substack", "--dry-run")
    assert code == 0 and "0 would be added, 0 would be updated, 1 unchanged, 1 skipped" in out
    assert "posts.csv, posts/1.opens.csv" in out


async def test_a_forced_layout_that_does_not_fit_is_refused(cli: Cli, db: Database) -> None:
    code, out = await cli("members.csv", exports.ghost(), "--from", "substack")
    assert code == 1 and "not a Substack export: the header lacks active_subscription, email_disabled" in out
    assert await count(db, Subscriber) == 0


@functools.cache
def _bomb() -> bytes:
    return exports.zip_bomb(MAX_UNPACKED_BYTES)


async def test_a_zip_bomb_or_a_broken_zip_is_refused_changing_nothing(cli: Cli, db: Database) -> None:
    await add_subscriber(db, "keep@example.org")
    code, out = await cli("bomb.zip", _bomb())
    assert code == 1 and "unpacks to more than 256 MB" in out and "nothing was imported" in out
    code, out = await cli("broken.zip", exports.mailchimp_zip()[:200])
    assert code == 1 and "not a readable zip file" in out
    code, out = await cli("no-list.zip", exports.zipped({"posts.csv": b"post_id,title\n1,Hi\n"}))
    assert code == 1 and "holds no Mailchimp, listmonk, Ghost or Substack subscriber list" in out
    assert await count(db, Subscriber) == 1


def _as_applied(dry_run_output: str) -> list[str]:
    """A dry run's summary in the words of the import it previews (its own 'dry run' line left out)."""
    return [line.replace("would be", "were") for line in dry_run_output.splitlines() if "dry run" not in line]


EXPORTS = {  # each tool's file as it publishes it, recognised by its header (no --from)
    "mailchimp_subscribed.csv": exports.mailchimp_subscribed,
    "mailchimp_unsubscribed.csv": exports.mailchimp_unsubscribed,
    "mailchimp_cleaned.csv": exports.mailchimp_cleaned,
    "mailchimp.zip": exports.mailchimp_zip,
    "listmonk.csv": exports.listmonk,
    "ghost_members.csv": exports.ghost,
    "substack_email_list.csv": exports.substack,
    "substack.zip": exports.substack_zip,
}
LABELS = {"mailchimp": "a Mailchimp export", "listmonk": "a listmonk export", "ghost": "a Ghost export",
          "substack": "a Substack export"}


@pytest.mark.parametrize("name", list(EXPORTS))
async def test_each_export_is_recognised_previewed_exactly_by_a_dry_run_and_a_reimport_changes_nothing(
        cli: Cli, db: Database, name: str) -> None:
    data = EXPORTS[name]()
    code, preview = await cli(name, data, "--dry-run")
    assert code == 0 and "dry run: nothing was changed" in preview, preview
    assert await count(db, Subscriber) == 0
    tool = name.split("_")[0].split(".")[0]
    assert LABELS[tool] in preview  # recognised by its header alone

    code, applied = await cli(name, data)
    assert code == 0, applied
    assert _as_applied(preview) == applied.splitlines()  # the preview was the import, line for line
    added = await count(db, Subscriber)
    assert added > 0

    before = await _snapshot(db)
    code, again = await cli(name, data)
    assert code == 0 and "0 were added, 0 were updated" in again, again
    assert await _snapshot(db) == before and await count(db, Subscriber) == added


async def test_mailchimp_unsubscribed_file_alone_imports_as_unsubscribed(cli: Cli, db: Database) -> None:
    code, out = await cli("unsubscribed_members_export_1a2b3c.csv", exports.mailchimp_unsubscribed())
    assert code == 0 and "as a Mailchimp export" in out, out
    di = await subscriber(db, "di@example.org")
    assert di is not None and (di.status, di.unsubscribed_at) == ("unsubscribed", _at(2023, 5, 2, 8))
    assert di.signup_source == "import: Mailchimp export"
