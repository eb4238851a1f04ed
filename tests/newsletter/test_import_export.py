"""CSV import and export: messy real-world files, line-numbered errors, no partial garbage,
the rules that protect consent, a 10 MB file, the CLI, and an export that imports back unchanged."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from service.cli import main
from service.mail.models import OutboxMessage
from service.newsletter import flows
from service.newsletter.exporter import export_subscribers
from service.newsletter.importer import ImportFileError, ImportReport, import_clean_email, import_subscribers
from service.newsletter.models import Subscriber, SubscriberTopic
from service.settings import Settings
from service.tokens import Tokens
from service.validation import FieldError, clean_email
from tests.conftest import TEST_SECRET, Database
from tests.factories import count, outbox_count, subscriber

MESSY = (
    "\ufeffE-Mail;Full Name;Topics;STATUS;Consent date\r\n"
    "ana@example.org;Ana Lima;anxiety|PTSD;confirmed;2024-05-01\r\n"
    "not-an-email;Bad;;;\r\n"
    "ANA@Example.org;Ana again;;;\r\n"
    "\r\n"
    "bo@example.org;\"Bo; the second\";;confirmed;\r\n"
    "cy@example.org;Cy;astrology;;\r\n"
    "di@example.org;Di;;sleeping;\r\n"
    "ed@example.org;\"Ed\nwith a line break\";;;\r\n"
    "fay@example.org;Fay;;;yesterday\r\n"
    "gus@example.org;Gus;;;;extra\r\n"
    "hal@example.org;Hal;depression;unsubscribed;\r\n"
    "ivy@example.org;Ivy;;;2023-12-24T10:00:00+01:00\r\n"
).encode()


async def _import(db: Database, settings: Settings, data: bytes, **kw: object) -> ImportReport:
    async with db.sessions.begin() as session:
        return await import_subscribers(session, io.BytesIO(data), settings=settings, tokens=Tokens(settings),
                                        **kw)  # type: ignore[arg-type]


async def test_messy_csv_imports_the_good_rows_and_names_the_bad_lines(db: Database, settings: Settings) -> None:
    report = await _import(db, settings, MESSY)
    assert report.rows == 11  # the blank line 5 is not a row
    assert report.added == 4  # ana, bo, hal, ivy
    errors = dict(report.errors)
    assert set(errors) == {3, 7, 8, 9, 11, 12}
    assert "not valid" in errors[3]
    assert "astrology" in errors[7]
    assert "sleeping" in errors[8]
    assert "single line" in errors[9]  # the quoted field spans lines 9-10
    assert "yesterday" in errors[11] and "not a date" in errors[11]
    assert "6 fields" in errors[12]
    assert report.skipped == {"duplicate": 1} and report.skipped_lines["duplicate"] == [4]
    assert report.pending_without_consent_date == 1
    ana = await subscriber(db, "ana@example.org")
    assert ana is not None and ana.status == "confirmed" and ana.name == "Ana Lima"
    assert ana.topics == ["PTSD", "anxiety"] and ana.signup_source == "import"
    assert ana.signup_at is not None and ana.signup_at.isoformat() == "2024-05-01T00:00:00+00:00"
    bo = await subscriber(db, "bo@example.org")
    assert bo is not None and bo.status == "pending" and bo.name == "Bo; the second"
    hal = await subscriber(db, "hal@example.org")
    assert hal is not None and hal.status == "unsubscribed" and hal.unsubscribed_at is not None
    ivy = await subscriber(db, "ivy@example.org")
    assert ivy is not None and ivy.signup_at is not None and ivy.signup_at.hour == 9
    assert await outbox_count(db) == 0  # no confirmation emails unless asked
    lines = "\n".join(report.summary_lines())
    assert "line 3:" in lines and "(lines 4)" in lines


async def test_an_address_repeated_many_times_keeps_its_first_line_and_counts_every_other(
        db: Database, settings: Settings) -> None:
    rows = ["email,name"] + [f"{'Rae' if i % 2 else 'rae'}@example.org,Rae {i}" for i in range(2000)]
    rows += ["sol@example.org,Sol", "SOL@example.org,Sol again", "tom@example.org,Tom"]
    report = await _import(db, settings, ("\n".join(rows) + "\n").encode())
    assert report.added == 3
    assert report.skipped == {"duplicate": 2000}  # 1,999 of Rae's lines and Sol's second
    assert report.skipped_lines["duplicate"][:2] == [3, 4]
    rae = await subscriber(db, "rae@example.org")
    assert rae is not None and rae.name == "Rae 0"  # the first line wins
    sol = await subscriber(db, "sol@example.org")
    assert sol is not None and sol.name == "Sol"


async def test_unknown_columns_are_listed_once_and_ignored(db: Database, settings: Settings) -> None:
    await _import(db, settings, b"email\nkeep@example.org\n")
    report = await _import(db, settings, b"email;Phone;Birthday\nnew@example.org;123;1990-01-01\nb@example.org;4;\n")
    assert report.added == 2 and report.summary_lines().count("columns not used: Phone, Birthday") == 1
    with pytest.raises(ImportFileError, match="no 'email' column"):
        await _import(db, settings, b"name\nAna\n")
    with pytest.raises(ImportFileError, match="empty"):
        await _import(db, settings, b"")
    assert await count(db, Subscriber) == 3


async def test_a_failure_halfway_leaves_nothing_behind(db: Database, settings: Settings) -> None:
    class BrokenDisk(io.BytesIO):
        def read1(self, size: int = -1) -> bytes:
            if self.tell() > 60_000:
                raise OSError("I/O error")
            return super().read1(size)

        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > 60_000:
                raise OSError("I/O error")
            return super().read(size)

    rows = b"".join(b"r%d@example.org,Reader\n" % i for i in range(10_000))
    with pytest.raises(OSError):
        async with db.sessions.begin() as session:
            await import_subscribers(session, BrokenDisk(b"email,name\n" + rows), settings=settings,
                                     tokens=Tokens(settings))
    assert await count(db, Subscriber) == 0


async def test_dry_run_reports_exactly_and_changes_nothing(db: Database, settings: Settings) -> None:
    async with db.sessions() as session:
        await session.begin()
        dry = await import_subscribers(session, io.BytesIO(MESSY), settings=settings, tokens=Tokens(settings),
                                       dry_run=True)
        await session.rollback()
    assert await count(db, Subscriber) == 0
    real = await _import(db, settings, MESSY)
    assert (dry.added, dry.skipped, dry.errors) == (real.added, real.skipped, real.errors)
    assert dry.summary_lines()[0].endswith("would be updated, 1 skipped, 6 with errors")


async def test_import_never_revives_and_never_downgrades(db: Database, settings: Settings) -> None:
    await _import(db, settings, b"email,status,signup_at\n"
                                b"left@example.org,unsubscribed,\nbounced@example.org,bounced,\n"
                                b"happy@example.org,confirmed,2024-01-01\nwaiting@example.org,,\n")
    report = await _import(db, settings, b"email,status,signup_at,name\n"
                                         b"left@example.org,confirmed,2024-02-02,L\n"
                                         b"bounced@example.org,,,B\n"
                                         b"happy@example.org,pending,,Happy\n"
                                         b"waiting@example.org,confirmed,2024-03-03,W\n")
    assert report.skipped == {"not_revived": 2} and report.skipped_lines["not_revived"] == [2, 3]
    assert report.updated == 2
    assert (await subscriber(db, "left@example.org")).status == "unsubscribed"  # type: ignore[union-attr]
    happy = await subscriber(db, "happy@example.org")
    assert happy is not None and happy.status == "confirmed" and happy.name == "Happy"
    waiting = await subscriber(db, "waiting@example.org")
    assert waiting is not None and waiting.status == "confirmed"  # consent date given: confirmed
    await _import(db, settings, b"email,status\nhappy@example.org,unsubscribed\n")  # the safe direction
    assert (await subscriber(db, "happy@example.org")).status == "unsubscribed"  # type: ignore[union-attr]


async def test_send_confirmation_mails_only_pending_rows(db: Database, settings: Settings) -> None:
    data = b"email,status,signup_at\np1@example.org,,\np2@example.org,confirmed,\nc@example.org,confirmed,2024-01-01\n"
    async with db.sessions() as session:
        await session.begin()
        dry = await import_subscribers(session, io.BytesIO(data), settings=settings, tokens=Tokens(settings),
                                       send_confirmation=True, dry_run=True)
        await session.rollback()
    assert dry.confirmations_queued == 2 and "2 confirmation emails would be queued" in dry.summary_lines()
    assert await outbox_count(db) == 0
    report = await _import(db, settings, data, send_confirmation=True)
    assert report.confirmations_queued == 2
    async with db.sessions() as session:
        recipients = sorted((await session.scalars(select(OutboxMessage.recipient))).all())
    assert recipients == ["p1@example.org", "p2@example.org"]
    again = await _import(db, settings, data, send_confirmation=True)  # within 10 minutes: not again
    assert again.confirmations_queued == 0 and await outbox_count(db) == 2


@pytest.mark.slow  # imports a 10 MB file
async def test_ten_megabyte_file(db: Database, settings: Settings) -> None:
    consent = "I agree to receive the newsletter; " * 10
    rows = [f"reader{i}@mail{i % 50}.example.org,Reader {i},anxiety;OCD,confirmed,2024-05-01,{consent}\n"
            for i in range(24_000)]
    data = ("email,name,topics,status,signup_at,consent_text\n" + "".join(rows)).encode()
    assert len(data) > 10_000_000
    report = await _import(db, settings, data)
    assert report.added == 24_000 and report.error_count == 0
    assert await count(db, Subscriber) == 24_000 and await count(db, SubscriberTopic) == 48_000


async def test_export_imports_back_unchanged(db: Database, settings: Settings) -> None:
    tokens = Tokens(settings)
    async with db.sessions.begin() as session:
        for email, topics in (("a@example.org", ["PTSD"]), ("b@example.org", []), ("c@example.org", ["OCD", "other"])):
            await flows.request_subscription(session, settings=settings, tokens=tokens, email=email, name="Név, \"q\"",
                                             topics=topics, ip="198.51.100.1", user_agent="UA; x", source="form",
                                             consent_text="Yes,\nplease")
        c = await session.scalar(select(Subscriber).where(Subscriber.email == "c@example.org"))
        await flows.unsubscribe_subscriber(session, subscriber_id=c.id, source="test")  # type: ignore[union-attr]
    await _import(db, settings, b"email,status,signup_at\nconf@example.org,confirmed,2024-01-01T08:00:00Z\n")
    first = io.StringIO()
    async with db.sessions() as session:
        assert await export_subscribers(session, first) == 4
    async with db.sessions.begin() as session:
        await session.execute(delete(SubscriberTopic))
        await session.execute(delete(Subscriber))
    report = await _import(db, settings, first.getvalue().encode())
    assert report.added == 4 and report.error_count == 0
    second = io.StringIO()
    async with db.sessions() as session:
        await export_subscribers(session, second)
    assert second.getvalue() == first.getvalue()
    assert "Yes,\nplease" in first.getvalue() and "conf@example.org,,confirmed" in first.getvalue()
    only = io.StringIO()
    async with db.sessions() as session:
        assert await export_subscribers(session, only, status="unsubscribed") == 1


def test_cli_import_dry_run_export_and_a_file_without_addresses(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "list.csv"
    path.write_bytes(b"email;name\nana@example.org;Ana\nana@example.org;Dup\nbad;X\n")
    assert main(["subscribers", "import", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing was changed" in out and "1 would be added" in out and "line 4:" in out
    assert main(["subscribers", "import", str(path), "--source", "old-crm"]) == 0
    assert "1 were added" in capsys.readouterr().out
    exported = tmp_path / "out.csv"
    assert main(["subscribers", "export", "-o", str(exported)]) == 0
    assert "ana@example.org,Ana,pending,,,,,old-crm" in exported.read_text()
    assert main(["subscribers", "export", "--status", "confirmed"]) == 0
    assert capsys.readouterr().out.count("\n") == 1  # the header only
    assert main(["subscribers", "import", str(tmp_path / "missing.csv")]) == 1
    assert "cannot open" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_bytes(b"mail address,shoe size\n")
    assert main(["subscribers", "import", str(tmp_path / "bad.csv")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no 'email' column" in err


@hsettings(max_examples=300, deadline=None)
@given(st.one_of(
    st.emails(),
    st.text(alphabet=st.sampled_from("ab.-_+@ü\"' \t\nxz09A"), max_size=30),
    st.from_regex(r"[a-z.]{0,70}@[a-z0-9.-]{0,20}\.[a-z]{1,5}", fullmatch=True),
))
def test_import_email_check_agrees_with_clean_email(value: str) -> None:
    def outcome(fn):  # type: ignore[no-untyped-def]
        try:
            return fn()
        except FieldError as exc:
            return ("error", exc.message)

    assert outcome(lambda: import_clean_email(value)) == outcome(lambda: clean_email({"email": value}))
