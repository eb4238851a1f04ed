"""What every provider module shares: the request as received, refusals, and small readers."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import Headers, State

from service.bounces.events import one_line
from service.bounces.returnpath import token_of_address
from service.settings import Settings

# How far a signed timestamp may be from our clock (Mailgun, SendGrid).
MAX_SKEW = dt.timedelta(minutes=5)
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


class Refused(Exception):
    """The request is not what the provider would send: answered with `status` and a JSON
    `{"error": message}`, nothing changed."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Received:
    """One webhook request: the raw body (signatures are over bytes, never re-encoded JSON)."""

    headers: Headers
    body: bytes
    settings: Settings
    session: AsyncSession
    state: State  # the app's state: caches that outlive a request (SNS certificates)
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


def parse_json(body: bytes) -> Any:
    """The body as JSON, or a 400 naming what is wrong."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(400, f"the body is not JSON: {exc}") from None


def optional_obj(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one (for parts a payload may leave out)."""
    return value if isinstance(value, dict) else {}


def obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Refused(400, f"{what}: expected a JSON object")
    return value


def text(data: dict[str, Any], key: str, what: str, *, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise Refused(400, f"{what}.{key}: expected a string")
    return value


def fresh(timestamp: str, now: dt.datetime, what: str) -> None:
    """Refuse a signed timestamp (seconds since the epoch) further than MAX_SKEW from now."""
    try:
        at = dt.datetime.fromtimestamp(float(timestamp), dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise Refused(403, f"{what}: the timestamp is not a number of seconds") from None
    if abs(now - at) > MAX_SKEW:
        raise Refused(403, f"{what}: the timestamp is stale (more than {int(MAX_SKEW.total_seconds())} "
                           f"seconds from our clock); refused as a possible replay")


def iso_time(value: Any, default: dt.datetime) -> dt.datetime:
    """An ISO 8601 time with a zone, else `default` (providers' times are informative only)."""
    if isinstance(value, str):
        try:
            at = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return default
        return at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    return default


def epoch_time(value: Any, default: dt.datetime) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(float(value), dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return default


def status_of(*texts: Any) -> str | None:
    """The first enhanced status code (RFC 3463, e.g. 5.1.1) in these texts."""
    for value in texts:
        found = _STATUS.search(value) if isinstance(value, str) else None
        if found:
            return found.group(1)
    return None


def diagnostic(*texts: Any) -> str:
    return one_line(" ".join(t for t in texts if isinstance(t, str) and t.strip()))


def message_id(value: Any) -> str | None:
    """A Message-ID as we store it (`<...>`), from a provider that may drop the brackets."""
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    return (value if value.startswith("<") else f"<{value}>")[:255]


def event_key(provider: str, *parts: str) -> str:
    """The idempotency key: the provider's own ids, hashed when too long for the column."""
    key = ":".join((provider, *parts))
    return key if len(key) <= 200 else f"{provider}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def return_token(settings: Settings, address: Any) -> str | None:
    """Our VERP token when a provider reports the envelope sender and it is one of ours."""
    return token_of_address(settings, address) if isinstance(address, str) and address else None


def recipient(value: Any, what: str) -> str:
    """An address a provider reports (already authenticated): one line with an @, or a 400."""
    if not isinstance(value, str) or "@" not in value or len(value) > 320 or any(c in value for c in "\r\n\0"):
        raise Refused(400, f"{what}: expected an email address")
    return value.strip()
