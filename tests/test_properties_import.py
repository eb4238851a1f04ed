"""Property tests (Hypothesis) for the subscriber CSV importer, on both databases: arbitrary
bytes and arbitrary CSV never crash it (a file it cannot read is an ImportFileError, one line
for the person who chose it), it never stores an address that fails validation, and its summary
adds up: every row read is added, updated, skipped or reported as an error, and the table grows
by exactly the number added.

Each example runs in a transaction that is rolled back (the importer never commits), seeded with
a few existing subscribers so that updates, duplicates and never-revived rows happen too."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.newsletter.csvrows import COLUMNS
from service.newsletter.importer import ImportFileError, ImportReport, import_clean_email, import_subscribers
from service.newsletter.models import Subscriber
from service.tokens import Tokens
from service.validation import FieldError, email_key
from tests.conftest import Database, make_settings

EXISTING = {"kept@example.org": "confirmed", "left@example.org": "unsubscribed", "waiting@example.org": "pending"}
POOL = [*EXISTING, "KEPT@Example.org", "new@example.org", "new@example.org ", "ana+news@clinic.test",
        "josé@exämple.org", "a@b", "not an address", "", "x@-bad-.org", "two@@example.org", "\x00@example.org",
        "quote\"@example.org", "a@example.org\r\nBcc: b@example.org"]
DATES = ["", "2024-05-01", "2024-05-01T09:30:00Z", "2024-05-01 09:30 UTC", "yesterday", "2024-13-45", "0"]
STATUSES = ["", "pending", "confirmed", "Confirmed", "unsubscribed", "bounced", "complained", "deleted", "?"]
TOPIC_CELLS = ["", "anxiety", "PTSD;depression", "ptsd|Chronic Pain", "astrology", ";;", "other; OCD"]

cell_text = st.text(max_size=30)
email_cells = st.one_of(st.sampled_from(POOL), st.sampled_from(POOL), st.emails().map(str), cell_text)
CELLS: dict[str, Any] = {
    "email": email_cells,
    "name": st.one_of(st.just(""), st.text(max_size=250)),
    "status": st.one_of(st.sampled_from(STATUSES), cell_text),
    "topics": st.one_of(st.sampled_from(TOPIC_CELLS), cell_text),
    **{c: st.one_of(st.sampled_from(DATES), cell_text) for c in ("signup_at", "confirmed_at", "unsubscribed_at")},
}


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    extra = draw(st.lists(st.sampled_from([c for c in CELLS if c != "email"]), unique=True, max_size=4))
    columns = draw(st.permutations(["email", *extra]))
    header = [draw(st.sampled_from(COLUMNS[c])).upper() if draw(st.booleans()) else c for c in columns]
    rows = [list(r) for r in draw(st.lists(st.tuples(*(CELLS[c] for c in columns)), max_size=25))]
    for row in rows:  # now and then a line with a cell too many or too few
        change = draw(st.sampled_from([0] * 8 + [1, -1]))
        if change > 0:
            row.append(draw(cell_text))
        elif change < 0 and row:
            row.pop()
    delimiter = draw(st.sampled_from([",", ";"]))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    data = out.getvalue().encode("utf-8")
    return (b"\xef\xbb\xbf" + data) if draw(st.booleans()) else data


def valid_stored(email: str) -> bool:
    try:
        return import_clean_email(email) == email
    except FieldError:
        return False


async def run_import(db: Database, data: bytes) -> None:
    s = make_settings(db)
    async with db.sessions() as session, session.begin():
        for email, status in EXISTING.items():
            session.add(Subscriber(email=email, email_key=email_key(email), name="", status=status))
        await session.flush()
        before = await _count(session)
        try:
            report = await import_subscribers(session, io.BytesIO(data), settings=s, tokens=Tokens(s),
                                              send_confirmation=True)
        except ImportFileError as exc:
            event("refused: " + str(exc).split(":")[0])
            assert str(exc) and "\n" not in str(exc)
            assert await _count(session) == before
        else:
            event(f"added {min(report.added, 1)}+, updated {min(report.updated, 1)}+, "
                  f"skipped {min(sum(report.skipped.values()), 1)}+, errors {min(report.error_count, 1)}+")
            check_report(report)
            assert await _count(session) == before + report.added
            stored = (await session.execute(select(Subscriber.email, Subscriber.email_key))).all()
            assert all(valid_stored(e) and k == email_key(e) for e, k in stored), stored
            assert len({k for _, k in stored}) == len(stored)
        await session.rollback()


def check_report(report: ImportReport) -> None:
    assert report.rows == report.added + report.updated + sum(report.skipped.values()) + report.error_count
    assert min(report.added, report.updated, report.error_count, *report.skipped.values(), 0) >= 0
    assert report.summary_lines()[0].startswith(f"{report.rows} rows read")


async def _count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Subscriber)) or 0)


FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.binary(max_size=600))
async def test_arbitrary_bytes_never_crash_the_importer(database: Database, data: bytes) -> None:
    await run_import(database, data)


@pytest.mark.slow  # sixty generated CSV files through the real importer
@FUZZ
@given(data=csv_files())
async def test_arbitrary_csv_imports_only_valid_addresses_and_the_summary_adds_up(
    database: Database, data: bytes
) -> None:
    await run_import(database, data)


@FUZZ
@given(header=st.lists(st.text(max_size=12), min_size=1, max_size=5), body=st.text(max_size=200))
async def test_arbitrary_headers_are_refused_in_one_line_or_imported(
    database: Database, header: list[str], body: str
) -> None:
    await run_import(database, (",".join(header) + "\n" + body).encode("utf-8", "surrogatepass"))
