"""CSV as Tidings writes and reads it: one writer for every export (the CLI's and the admin's
subscriber exports, the admin's inquiry export), so every cell is escaped the same way.

Formula injection (OWASP "CSV Injection"): a spreadsheet runs a cell that starts with `=`, `+`,
`-`, `@`, a tab or a carriage return as a formula, and names and messages come from public
forms. Such a cell is written with an apostrophe in front, which spreadsheets show as text.
`unescape_cell` undoes exactly that, and the subscriber importer applies it, so an export still
imports back unchanged. A value that already starts with apostrophes before a formula character
gets one more, so reading it back always gives the original.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import IO

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
LINE_END = "\r\n"  # RFC 4180
_CHUNK = 64 * 1024


def _needs_escape(text: str) -> bool:
    return text.lstrip("'").startswith(FORMULA_START)


def csv_cell(value: object) -> str:
    """The text of one cell: '' for None, UTC ISO 8601 for times, a leading apostrophe before
    anything a spreadsheet would run as a formula."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        text = value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    else:
        text = value.isoformat() if isinstance(value, dt.date) else str(value)
    return "'" + text if _needs_escape(text) else text


def unescape_cell(text: str) -> str:
    """The value `csv_cell` escaped: one leading apostrophe removed when it guards a formula."""
    if text.startswith("'") and _needs_escape(text[1:]):
        return text[1:]
    return text


class CsvWriter:
    """csv.writer whose every cell goes through `csv_cell`."""

    def __init__(self, out: IO[str]) -> None:
        self._writer = csv.writer(out, lineterminator=LINE_END)

    def writerow(self, values: Iterable[object]) -> None:
        self._writer.writerow([csv_cell(v) for v in values])


async def stream_csv(rows: AsyncIterable[Iterable[object]]) -> AsyncIterator[str]:
    """The CSV text of `rows` in chunks of about 64 KB, for a StreamingResponse."""
    buffer = io.StringIO()
    writer = CsvWriter(buffer)
    async for row in rows:
        writer.writerow(row)
        if buffer.tell() > _CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
