"""Reading a subscriber CSV: header names to columns (case-insensitive, with aliases), BOM
and delimiter handling, and the check of each row, with messages fit to show next to its line
number. Streaming: nothing here holds more than one row."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable
from functools import lru_cache
from typing import IO, Any

from service.newsletter.flows import normalise_topics
from service.newsletter.models import SUBSCRIBER_STATUSES, SUPPRESSED_STATUSES
from service.settings import Settings
from service.validation import FieldError, clean_email, clean_mailable_email, clean_text, email_key

# canonical column -> accepted header spellings (compared lower-cased, with - and spaces as _)
COLUMNS: dict[str, tuple[str, ...]] = {
    "email": ("email", "e_mail", "email_address", "mail"),
    "name": ("name", "full_name"),
    "topics": ("topics", "topic", "interests"),
    "status": ("status",),
    "signup_at": ("signup_at", "consent_date", "consented_at", "consent_at", "signup_date", "subscribed_at",
                  "optin_date", "opt_in_date"),
    "signup_ip": ("signup_ip", "ip"),
    "signup_user_agent": ("signup_user_agent", "user_agent"),
    "signup_source": ("signup_source", "source"),
    "consent_text": ("consent_text",),
    "confirmed_at": ("confirmed_at",),
    "confirm_ip": ("confirm_ip",),
    "created_at": ("created_at",),
    "status_changed_at": ("status_changed_at",),
    "unsubscribed_at": ("unsubscribed_at",),
    "bounced_at": ("bounced_at",),
    "complained_at": ("complained_at",),
    "last_bounce": ("last_bounce",),
}
_ALIASES = {alias: canon for canon, aliases in COLUMNS.items() for alias in aliases}
DATE_COLUMNS = ("signup_at", "confirmed_at", "created_at", "status_changed_at", "unsubscribed_at", "bounced_at",
                "complained_at")
TEXT_LIMITS = {"signup_ip": 64, "signup_user_agent": 500, "signup_source": 200, "consent_text": 5000,
               "confirm_ip": 64, "last_bounce": 2000}

_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")


@lru_cache(maxsize=4096)
def _checked_domain(domain: str) -> str | None:
    try:
        return clean_email({"email": "a@" + domain}).rpartition("@")[2]
    except FieldError:
        return None


def import_clean_email(value: str) -> str:
    """clean_email, fast for the common case: a plain ASCII local part is checked by its RFC 5322
    dot-atom pattern and the domain's verdict is cached (lists repeat a few domains endlessly).
    Anything else goes through clean_email itself, so the results and messages are the same."""
    candidate = value.strip()
    local, at, domain = candidate.rpartition("@")
    if at and len(candidate) <= 254 and len(local) <= 64 and _DOT_ATOM.match(local):
        checked = _checked_domain(domain)
        if checked is not None:
            return f"{local}@{checked}"
    return clean_mailable_email({"email": value}, "email")


class ImportFileError(ValueError):
    """The file cannot be imported at all (one line for the person who chose it)."""


def open_csv(binary: IO[bytes]) -> tuple[Any, list[str], Callable[[], int]]:
    """A csv reader over `binary` (BOM stripped, delimiter sniffed from the header line), the
    header cells as written (stripped), and a function giving the bytes read so far."""
    text_stream = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="")
    try:
        return _open_csv(binary, text_stream)
    except BaseException:
        text_stream.detach()  # the caller owns (and closes) the binary file
        raise


def _open_csv(binary: IO[bytes], text_stream: io.TextIOWrapper) -> tuple[Any, list[str], Callable[[], int]]:
    header_line = text_stream.readline()
    if not header_line.strip():
        raise ImportFileError("the file is empty: expected a header line with at least an 'email' column")
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    try:
        header = next(csv.reader([header_line], delimiter=delimiter))
    except csv.Error as exc:
        raise ImportFileError(f"line 1: {_csv_problem(exc)}; nothing was imported") from None
    header = [raw.strip() for raw in header]
    reader = _Reader(text_stream, delimiter)

    def position() -> int:
        try:
            return binary.tell()
        except (OSError, ValueError):
            return 0

    return reader, header, position


def plain_columns(header: list[str]) -> tuple[list[str], list[str]]:
    """Our own columns: the canonical name of each header cell ('' for one we do not use) and the
    unused header cells, listed in the summary (never a reason to refuse the file)."""
    columns: list[str] = []
    unused: list[str] = []
    for raw in header:
        canon = _ALIASES.get(raw.lower().replace("-", "_").replace(" ", "_"))
        if canon is None:
            unused.append(raw or "(empty)")
        elif canon in columns:
            raise ImportFileError(f"the column {raw!r} appears twice in the header")
        columns.append(canon or "")
    if "email" not in columns:
        raise ImportFileError("the header has no 'email' column (nor the columns of a Mailchimp, listmonk, Ghost "
                              "or Substack export); nothing was imported")
    return columns, unused


def _csv_problem(exc: csv.Error) -> str:
    """What csv.Error means, for the person who chose the file."""
    if "field larger than field limit" in str(exc):
        return f"a field is longer than {csv.field_size_limit() // 1024} KB ({csv.field_size_limit()} characters)"
    return f"not readable as CSV ({exc})"


class _Reader:
    """csv.reader that keeps hold of its text stream (to detach it from the caller's file), and
    turns a line the csv module cannot read (a field over its size limit) into an
    ImportFileError naming the line the record starts on: the import stops and changes nothing."""

    def __init__(self, stream: io.TextIOWrapper, delimiter: str) -> None:
        self.stream = stream
        self._reader = csv.reader(stream, delimiter=delimiter, strict=False)
        self._start = 2  # the line the next record starts on (the header is line 1)

    def __iter__(self) -> _Reader:
        return self

    def __next__(self) -> list[str]:
        try:
            record = next(self._reader)
        except csv.Error as exc:
            raise ImportFileError(f"line {self._start}: {_csv_problem(exc)}; nothing was imported") from None
        self._start = self._reader.line_num + 2
        return record

    @property
    def line_num(self) -> int:
        return self._reader.line_num


def _parse_date(value: str, column: str) -> dt.datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace(" UTC", "+00:00"))
    except ValueError:
        raise FieldError(column, f"{column}: {value[:40]!r} is not a date (use ISO 8601, e.g. 2024-05-01 "
                                 "or 2024-05-01T09:30:00Z)") from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


class RowChecker:
    def __init__(self, settings: Settings, source: str, now: dt.datetime) -> None:
        self.topics = {t.lower(): t for t in settings.topics}
        self.settings = settings
        self.source = source
        self.now = now

    def split_topics(self, named: list[str]) -> tuple[str, list[str]]:
        """A tool's topics: those matching a configured topic (as our `topics` cell) and the rest."""
        matched = [self.topics[t.lower()] for t in named if t.lower() in self.topics]
        return ";".join(matched), [t for t in named if t.lower() not in self.topics]

    def check(self, cells: dict[str, str]) -> tuple[dict[str, Any], list[str] | None, bool]:
        """A staging row, its topics (None = not given) and whether 'confirmed' fell back to pending."""
        email = import_clean_email(cells.get("email", ""))
        name = clean_text(cells, "name", label="name", max_length=200) if cells.get("name") else ""
        row: dict[str, Any] = {"email": email, "email_key": email_key(email), "name": name}
        for column in DATE_COLUMNS:
            row[column] = _parse_date(cells.get(column, ""), column)
        for column, limit in TEXT_LIMITS.items():
            value = cells.get(column, "").strip()
            if "\x00" in value or "\ufffd" in value:
                raise FieldError(column, f"{column} contains characters that are not valid UTF-8 text")
            row[column] = value[:limit] or None
        status = cells.get("status", "").strip().lower() or "pending"
        if status not in SUBSCRIBER_STATUSES:
            raise FieldError("status", f"status {status[:30]!r} is not one of {', '.join(SUBSCRIBER_STATUSES)}")
        downgraded = False
        if status == "confirmed" and row["signup_at"] is None:
            status, downgraded = "pending", True
        if status == "confirmed":
            row["confirmed_at"] = row["confirmed_at"] or row["signup_at"]
        elif status in SUPPRESSED_STATUSES:
            row[f"{status}_at"] = row[f"{status}_at"] or row["status_changed_at"] or self.now
        row["status"] = status
        row["signup_source"] = row["signup_source"] or self.source
        topics = None
        raw_topics = cells.get("topics", "").strip()
        if raw_topics:
            wanted = [t.strip() for t in raw_topics.replace("|", ";").split(";") if t.strip()]
            bad = [t for t in wanted if t.lower() not in self.topics]
            if bad:
                raise FieldError("topics", f"unknown topic {bad[0][:40]!r} (known: {', '.join(self.settings.topics)})")
            topics = normalise_topics(self.settings, [self.topics[t.lower()] for t in wanted])
        row["has_topics"] = 1 if topics is not None else 0
        return row, topics, downgraded
