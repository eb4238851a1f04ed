"""The export layouts the subscriber import understands: Mailchimp, listmonk, Ghost, Substack
(recognised by a required subset of their header, since tools add columns over time) and our
own columns. Each tool's row is turned into our columns (`csvrows.COLUMNS`) plus the topics it
names; the row checker then treats it like a row of our own. The mapping is written down in
docs/newsletter.md; change both together.

Consent: Mailchimp's opt-in and confirmation times and IPs are evidence and are kept, with the
tool named as the signup source. listmonk's `enabled` is an account state and Ghost's and
Substack's exports carry only a creation date, so their readers import as pending unless the
operator declares they hold the consent records (`consented`), which becomes the source.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass

Cells = dict[str, str]
Converted = tuple[Cells, list[str]]  # our columns, and the topics the row names


@dataclass(frozen=True)
class Context:
    """What a conversion needs besides the row: the signup source and the operator's word."""

    source: str
    consented: bool
    topics: dict[str, str]  # configured topics by lower-cased name


@dataclass(frozen=True)
class Layout:
    name: str  # for --from and the admin's select
    label: str  # for people
    required: frozenset[str]  # normalised header names that identify the layout
    used: frozenset[str]  # the columns the conversion reads (the others are reported unused)
    convert: Callable[[Cells, Context], Converted]


def normalise_header(raw: str) -> str:
    """Header names compared lower-cased, with - and spaces as _ (`"Email Address"` → `email_address`)."""
    return raw.strip().lower().replace("-", "_").replace(" ", "_")


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes", "t")


def _source(ctx: Context, label: str, consented: bool = False) -> str:
    base = f"{ctx.source}: {label} export"
    return f"{base}; consent records held by the operator (--consented)" if consented else base


def _pending_or_consented(cells: Cells, ctx: Context, label: str, created: str) -> Cells:
    """A reader with no consent evidence in the file: pending, or confirmed on the operator's word
    (dated by the tool's creation date; without one the checker keeps it pending)."""
    if ctx.consented:
        return {"status": "confirmed", "signup_at": created, "signup_source": _source(ctx, label, True)}
    return {"status": "pending", "signup_source": _source(ctx, label)}


# -- Mailchimp ------------------------------------------------------------------------------------

_MAILCHIMP_REQUIRED = frozenset({"email_address", "optin_time", "confirm_time", "leid", "euid"})


def _mailchimp_tags(value: str) -> list[str]:
    """TAGS holds each tag quoted, comma separated (`"Tag A","Tag B"`); older files a plain list."""
    value = value.strip()
    if not value:
        return []
    if '"' not in value:
        cells = value.split(",")
    elif value[0] == value[-1] == '"' and value.count('"') == 2 * (value.count('","') + 1):
        cells = value[1:-1].split('","')  # the usual form, no quote or comma inside a tag: no csv reader
    else:
        cells = next(csv.reader([value], skipinitialspace=True))
    return [c.strip() for c in cells if c.strip()]


def _mailchimp(cells: Cells, ctx: Context) -> Converted:
    name = " ".join(p for p in (cells.get("first_name", "").strip(), cells.get("last_name", "").strip()) if p)
    optin, confirm = cells.get("optin_time", "").strip(), cells.get("confirm_time", "").strip()
    out: Cells = {
        "email": cells.get("email_address", ""), "name": name, "signup_at": optin or confirm,
        "signup_ip": cells.get("optin_ip", ""), "confirmed_at": confirm, "confirm_ip": cells.get("confirm_ip", ""),
        "signup_source": _source(ctx, "Mailchimp"),
    }
    if "unsub_time" in cells:  # the unsubscribed file
        out.update(status="unsubscribed", unsubscribed_at=cells["unsub_time"])
    elif "clean_time" in cells:  # the cleaned file: addresses that bounced
        out.update(status="bounced", bounced_at=cells["clean_time"])
    else:
        out["status"] = "confirmed"
    topics = _mailchimp_tags(cells.get("tags", ""))
    # Interest (group) columns carry the chosen interests, comma separated; other merge fields look
    # the same, so only a value naming a configured topic counts (the rest is not a topic).
    for column in cells.keys() - _MAILCHIMP_KNOWN:
        topics.extend(t.strip() for t in cells[column].split(",") if t.strip().lower() in ctx.topics)
    return out, topics


_MAILCHIMP_KNOWN = frozenset({
    "email_address", "first_name", "last_name", "address", "phone_number", "birthday", "company", "member_rating",
    "optin_time", "optin_ip", "confirm_time", "confirm_ip", "latitude", "longitude", "gmtoff", "dstoff",
    "timezone", "cc", "region", "last_changed", "leid", "euid", "notes", "tags", "unsub_time",
    "unsub_campaign_title", "unsub_campaign_id", "unsub_reason", "unsub_reason_other", "clean_time",
    "clean_campaign_title", "clean_campaign_id",
})

# -- listmonk -------------------------------------------------------------------------------------

_LISTMONK_STATUS = {"disabled": "unsubscribed", "blocklisted": "complained"}


def _listmonk(cells: Cells, ctx: Context) -> Converted:
    state = cells.get("status", "").strip().lower()
    out: Cells = {"email": cells.get("email", ""), "name": cells.get("name", ""),
                  "created_at": cells.get("created_at", "")}
    if state in _LISTMONK_STATUS:
        out.update(status=_LISTMONK_STATUS[state], signup_source=_source(ctx, "listmonk"),
                   status_changed_at=cells.get("updated_at", ""))
    else:
        out.update(_pending_or_consented(cells, ctx, "listmonk", cells.get("created_at", "")))
    topics: list[str] = []
    raw = cells.get("attributes", "").strip()
    if raw:
        try:
            attributes = json.loads(raw)
        except ValueError:
            attributes = None
        wanted = attributes.get("topics") if isinstance(attributes, dict) else None
        if isinstance(wanted, str):
            wanted = [wanted]
        if isinstance(wanted, list):
            topics = [str(t).strip() for t in wanted if str(t).strip()]
    return out, topics


# -- Ghost ----------------------------------------------------------------------------------------


def _ghost(cells: Cells, ctx: Context) -> Converted:
    created = cells.get("created_at", "")
    out: Cells = {"email": cells.get("email", ""), "name": cells.get("name", ""), "created_at": created}
    if not _truthy(cells.get("subscribed_to_emails", "")) or cells.get("deleted_at", "").strip():
        out.update(status="unsubscribed", signup_source=_source(ctx, "Ghost"),
                   unsubscribed_at=cells.get("deleted_at", ""))
    else:
        out.update(_pending_or_consented(cells, ctx, "Ghost", created))
    return out, [t.strip() for t in cells.get("labels", "").split(",") if t.strip()]


# -- Substack -------------------------------------------------------------------------------------


def _substack(cells: Cells, ctx: Context) -> Converted:
    created = cells.get("created_at", "")
    out: Cells = {"email": cells.get("email", ""), "created_at": created}
    if _truthy(cells.get("email_disabled", "")):
        out.update(status="unsubscribed", signup_source=_source(ctx, "Substack"))
    else:
        out.update(_pending_or_consented(cells, ctx, "Substack", created))
    return out, []


LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (
    Layout("mailchimp", "Mailchimp", _MAILCHIMP_REQUIRED, _MAILCHIMP_KNOWN - {
        "address", "phone_number", "birthday", "company", "member_rating", "latitude", "longitude", "gmtoff",
        "dstoff", "timezone", "cc", "region", "last_changed", "leid", "euid", "notes", "unsub_campaign_title",
        "unsub_campaign_id", "unsub_reason", "unsub_reason_other", "clean_campaign_title", "clean_campaign_id"},
        _mailchimp),
    Layout("listmonk", "listmonk", frozenset({"uuid", "email", "name", "attributes", "status"}),
           frozenset({"email", "name", "attributes", "status", "created_at", "updated_at"}), _listmonk),
    Layout("ghost", "Ghost", frozenset({"id", "email", "subscribed_to_emails", "labels"}),
           frozenset({"email", "name", "subscribed_to_emails", "created_at", "deleted_at", "labels"}), _ghost),
    Layout("substack", "Substack", frozenset({"email", "active_subscription", "email_disabled"}),
           frozenset({"email", "email_disabled", "created_at"}), _substack),
)}
PLAIN = "plain"
SOURCES = (*LAYOUTS, PLAIN)  # the choices of --from


def detect(header: list[str]) -> Layout | None:
    """The tool whose required columns the (normalised) header holds; None for our own columns."""
    present = set(header)
    for layout in LAYOUTS.values():
        if layout.required <= present:
            return layout
    return None


def read_columns(layout: Layout, header: list[str]) -> list[int]:
    """The positions of the columns a tool's conversion reads (for Mailchimp, its used fixed
    columns and every column it does not know, which may be an interest column)."""
    if layout.name == "mailchimp":
        return [i for i, h in enumerate(header) if h in layout.used or h not in _MAILCHIMP_KNOWN]
    return [i for i, h in enumerate(header) if h in layout.used]


def unused_columns(layout: Layout, header: list[str], raw: list[str]) -> list[str]:
    """The columns of `raw` a tool's conversion does not read (for Mailchimp, its own fixed columns
    it ignores; its other columns are read as interest columns)."""
    if layout.name == "mailchimp":
        return [r for h, r in zip(header, raw, strict=True) if h in _MAILCHIMP_KNOWN and h not in layout.used]
    return [r for h, r in zip(header, raw, strict=True) if h not in layout.used]
