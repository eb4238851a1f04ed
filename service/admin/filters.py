"""Reading the admin lists' query strings: page cursors and dates, with errors that name the
field. The lists themselves are the domains' queries (inquiries, newsletter, campaigns, mail)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from service.db import Cursor
from service.validation import FieldError, clean_text

PAGE_SIZE = 50


class FilterError(ValueError):
    """A filter value that cannot be used (the message names the field; `field` is its query
    parameter, for the API's errors)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def parse_cursor(value: str | None) -> Cursor | None:
    """`2026-11-28T07:00:00+00:00_123` -> (datetime, id); FilterError when malformed."""
    if not value:
        return None
    stamp, _, ident = value.rpartition("_")
    try:
        when = dt.datetime.fromisoformat(stamp)
        if when.tzinfo is None:
            raise ValueError
        return when.astimezone(dt.UTC), int(ident)
    except ValueError:
        raise FilterError("Page: this page link is not valid; start again from the first page.",
                          field="cursor") from None


def format_cursor(when: dt.datetime, ident: int) -> str:
    return f"{when.astimezone(dt.UTC).isoformat()}_{ident}"


def parse_day(value: str | None, label: str, *, field: str | None = None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise FilterError(f"{label}: expected a date such as 2026-11-28.", field=field) from None


def text_param(params: Mapping[str, str], name: str, label: str, max_length: int) -> str:
    """A free-text filter (a search, a topic), trimmed and cut to `max_length`; FilterError for
    control characters (PostgreSQL refuses a NUL in a query parameter)."""
    try:
        value = clean_text({name: params.get(name, "")}, name, label=label, max_length=10_000)
    except FieldError as exc:
        raise FilterError(f"{exc.message}.", field=name) from None
    return value[:max_length]
