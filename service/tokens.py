"""Signed tokens (itsdangerous): one secret, a salt per purpose, `max_age` where they expire.

The newest key signs; `SECRET_KEY_FALLBACKS` are still accepted when verifying, so a key can be
rotated without breaking links already sent. A token only proves what it says; callers check
that the row it names is still in the expected state (single use).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from service.settings import Settings

__all__ = ["BadSignature", "SignatureExpired", "TokenError", "Tokens"]


class TokenError(ValueError):
    """A token that is tampered, expired or of another purpose. `expired` tells which."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class Tokens:
    def __init__(self, settings: Settings) -> None:
        # itsdangerous tries keys newest-last: the last one signs, all of them verify.
        self._keys = [*reversed(settings.secret_key_fallbacks), settings.secret_key]
        # One serializer per purpose, made once: a form token is signed and checked on every
        # visit, and a digest signs a link per recipient.
        self._forever: dict[str, URLSafeSerializer] = {}
        self._timed: dict[str, URLSafeTimedSerializer] = {}

    def _serializer(self, purpose: str) -> URLSafeSerializer:
        serializer = self._forever.get(purpose)
        if serializer is None:
            serializer = self._forever[purpose] = URLSafeSerializer(self._keys, salt=f"tidings.{purpose}")
        return serializer

    def _timed_serializer(self, purpose: str) -> URLSafeTimedSerializer:
        serializer = self._timed.get(purpose)
        if serializer is None:
            serializer = self._timed[purpose] = URLSafeTimedSerializer(self._keys, salt=f"tidings.{purpose}")
        return serializer

    def dumps(self, purpose: str, data: Any) -> str:
        return self._timed_serializer(purpose).dumps(data)

    def loads(self, purpose: str, token: str, *, max_age: int | None = None) -> Any:
        try:
            return self._timed_serializer(purpose).loads(token, max_age=max_age)
        except SignatureExpired as exc:
            raise TokenError("this link has expired", expired=True) from exc
        except BadSignature as exc:
            raise TokenError("this link is not valid") from exc

    def loads_with_age(self, purpose: str, token: str) -> tuple[Any, float]:
        """Payload and age in seconds (for the minimum fill time of forms)."""
        try:
            data, ts = self._timed_serializer(purpose).loads(token, return_timestamp=True)
        except BadSignature as exc:
            raise TokenError("this form is not valid") from exc
        return data, time.time() - ts.timestamp()

    def dumps_forever(self, purpose: str, data: Any) -> str:
        """A token with no timestamp, for links that must never expire (unsubscribe)."""
        return self._serializer(purpose).dumps(data)

    def loads_forever(self, purpose: str, token: str) -> Any:
        try:
            return self._serializer(purpose).loads(token)
        except BadSignature as exc:
            raise TokenError("this link is not valid") from exc

    def keyed_hash(self, purpose: str, value: str) -> str:
        """HMAC-SHA256 of `value` under the current key (e.g. an erased address)."""
        return _hmac(self._keys[-1], purpose, value)

    def keyed_hashes(self, purpose: str, value: str) -> list[str]:
        """The hash under every accepted key, newest first: look-ups must match all of them, so a
        key rotation does not forget who was erased."""
        return [_hmac(key, purpose, value) for key in reversed(self._keys)]


def _hmac(secret: str, purpose: str, value: str) -> str:
    key = hashlib.sha256(f"tidings.{purpose}:{secret}".encode()).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
