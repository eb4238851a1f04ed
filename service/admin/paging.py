"""One way to page an admin list, newest first, by a cursor (keyset, never OFFSET, so a row
added meanwhile is neither skipped nor shown twice): fetch one row more than a page, keep a
page, and, when there was more, link to the older rows after the last one shown. The links keep
the page's other query parameters (its filters), so "Older »" and "« Newest" stay inside the
filtered list; one-time notices ("saved", "deleted") are not carried along."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request

from service.admin.filters import PAGE_SIZE

NOTICE_PARAMS = ("notice", "deleted", "saved", "done", "skipped")

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """A page of rows and the links of the pager macro (`templates/admin/_pager.html`):
    `next_url` to the older rows (None on the last page), `newest_url` back to the first page
    (None on the first page)."""

    rows: list[T]
    next_url: str | None
    newest_url: str | None


def page_url(request: Request, cursor_param: str, cursor: str | None) -> str:
    """This list's URL with its query parameters, `cursor_param` set to `cursor` (or dropped)."""
    args = [(k, v) for k, v in request.query_params.multi_items()
            if k != cursor_param and k not in NOTICE_PARAMS and v != ""]
    if cursor is not None:
        args.append((cursor_param, cursor))
    return request.url.path + ("?" + urlencode(args) if args else "")


async def paginate(request: Request, fetch: Callable[[int], Awaitable[Sequence[T]]], *,
                   cursor: Callable[[T], str], cursor_param: str, size: int = PAGE_SIZE) -> Page[T]:
    """`fetch(limit)` returns up to `limit` rows after the request's cursor, newest first;
    `cursor(row)` is the `cursor_param` value that continues after `row`."""
    rows = list(await fetch(size + 1))
    next_url = None
    if len(rows) > size:
        rows = rows[:size]
        next_url = page_url(request, cursor_param, cursor(rows[-1]))
    first = cursor_param not in request.query_params
    return Page(rows=rows, next_url=next_url, newest_url=None if first else page_url(request, cursor_param, None))


async def list_total(page: Page[T], count: Callable[[], Awaitable[tuple[int, bool]]]) -> tuple[int, bool]:
    """How many rows the whole list has, and whether more than that (as `count()` says it): the
    page's own rows when it is both the first and the last page (a search that finds a few, the
    usual one, is not run a second time to be counted), else `count()`."""
    if page.newest_url is None and page.next_url is None:
        return len(page.rows), False
    return await count()
