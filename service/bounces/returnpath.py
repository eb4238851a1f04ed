"""VERP return paths: the envelope sender of every message names the message it belongs to.

With RETURN_PATH / BOUNCE_DOMAIN set, a message is sent with MAIL FROM `bounces+<token>@domain`;
a bounce comes back to that address, and the token says which campaign delivery ("d") or outbox
message ("o") it was, so the report needs no parsing to be matched. The token is 15 bytes in
lower-case base32 (24 characters, letters and 2-7: some MTAs lower-case addresses): the kind,
the row id (48 bits) and an HMAC-SHA256 of both truncated to 64 bits, keyed from SECRET_KEY (every
key of SECRET_KEY_FALLBACKS still verifies, so a rotation does not orphan bounces in flight). A
forged or mangled token reads as None.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass
from email.utils import parseaddr

from service.bounces.mime import address_of
from service.settings import TOKEN_LENGTH, Settings

KINDS = {"d": "delivery", "o": "outbox"}
_MAC_BYTES = 8
_ID_BYTES = 6


@dataclass(frozen=True)
class ReturnToken:
    kind: str  # "delivery" (a campaign delivery row) or "outbox" (a transactional message row)
    id: int


@functools.lru_cache(maxsize=8)
def _key(secret: str) -> bytes:
    return hashlib.sha256(f"tidings.return-path:{secret}".encode()).digest()


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(_key(secret), payload, hashlib.sha256).digest()[:_MAC_BYTES]


def make_token(settings: Settings, kind: str, row_id: int) -> str:
    """The signed token for one row (`kind` "delivery" or "outbox")."""
    code = next(c for c, name in KINDS.items() if name == kind)
    if not 0 < row_id < 1 << (8 * _ID_BYTES):
        raise ValueError(f"row id out of range for a return path: {row_id}")
    payload = code.encode() + row_id.to_bytes(_ID_BYTES, "big")
    token = base64.b32encode(payload + _mac(settings.secret_key, payload)).decode().lower()
    assert len(token) == TOKEN_LENGTH
    return token


def read_token(settings: Settings, token: str) -> ReturnToken | None:
    """The row a token names, or None when it is malformed or its signature does not verify."""
    if len(token) != TOKEN_LENGTH:
        return None
    try:
        raw = base64.b32decode(token.upper())
    except (binascii.Error, ValueError):
        return None
    payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    kind = KINDS.get(chr(payload[0]))
    if kind is None:
        return None
    for secret in (settings.secret_key, *settings.secret_key_fallbacks):
        if hmac.compare_digest(mac, _mac(secret, payload)):
            row_id = int.from_bytes(payload[1:], "big")
            return ReturnToken(kind, row_id) if row_id else None
    return None


def return_path(settings: Settings, kind: str, row_id: int) -> str | None:
    """The envelope sender for one row's message, or None when no return path is configured
    (the caller then uses MAIL_FROM)."""
    if settings.return_path is None:
        return None
    return settings.return_path.replace("{token}", make_token(settings, kind, row_id))


def envelope_sender(settings: Settings, kind: str, row_id: int) -> str:
    """MAIL FROM for one row's message: its VERP address, or MAIL_FROM's address."""
    return return_path(settings, kind, row_id) or parseaddr(settings.mail_from)[1]


def _pattern(settings: Settings) -> re.Pattern[str] | None:
    return None if settings.return_path is None else _compiled(settings.return_path)


@functools.lru_cache(maxsize=8)
def _compiled(return_path: str) -> re.Pattern[str]:
    before, after = return_path.split("{token}")
    return re.compile(re.escape(before) + f"([a-z2-7]{{{TOKEN_LENGTH}}})" + re.escape(after), re.IGNORECASE)


def token_of_address(settings: Settings, address: str) -> str | None:
    """The token in one of our return-path addresses (any case; `<...>` allowed), unverified;
    None when the address is not of our pattern."""
    pattern = _pattern(settings)
    if pattern is None:
        return None
    found = pattern.fullmatch(address_of(address) or address.strip())
    return found.group(1).lower() if found else None


def read_address(settings: Settings, address: str) -> ReturnToken | None:
    """The row one of our return-path addresses names, verified; None for any other address."""
    token = token_of_address(settings, address)
    return read_token(settings, token) if token else None
