"""Signed tokens (itsdangerous): one secret, a salt per purpose, `max_age` where they expire.

The newest key signs; `SECRET_KEY_FALLBACKS` are still accepted when verifying, so a key can be
rotated without breaking links already sent. A token only proves what it says; callers check
that the row it names is still in the expected state (single use).
"""

from __future__ import annotations

import base64
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
        self._forever_ints: dict[str, _IntTokens | None] = {}

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
        if type(data) is int and 0 <= data < _IntTokens.BELOW:
            if purpose not in self._forever_ints:
                self._forever_ints[purpose] = _IntTokens.checked(self._serializer(purpose))
            fast = self._forever_ints[purpose]
            if fast is not None:
                return fast.dumps(data)
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


class _IntTokens:
    """`URLSafeSerializer.dumps` of a non-negative int, the very same string, with the derived
    key and its HMAC kept: itsdangerous derives the key and builds a pure-Python HMAC for every
    token, about 20 µs, and a digest signs an unsubscribe link for every recipient. Used only
    when it gives itsdangerous's strings for a set of numbers (`checked`), so a change of
    itsdangerous's defaults falls back to it instead of making links that do not verify."""

    BELOW = 10**11  # the JSON of a larger int might be compressed (itsdangerous zlib's payloads that shrink)
    SAMPLES = (0, 1, 7, 12345, 10**9, 2**31 - 1, 11111111111, 10**11 - 1)

    def __init__(self, serializer: URLSafeSerializer) -> None:
        signer = serializer.make_signer()
        self._mac = hmac.new(signer.derive_key(), digestmod=hashlib.sha1)
        self._sep = signer.sep

    @classmethod
    def checked(cls, serializer: URLSafeSerializer) -> _IntTokens | None:
        fast = cls(serializer)
        return fast if all(fast.dumps(n) == serializer.dumps(n) for n in cls.SAMPLES) else None

    def dumps(self, number: int) -> str:
        payload = base64.urlsafe_b64encode(b"%d" % number).rstrip(b"=")
        mac = self._mac.copy()
        mac.update(payload)
        return (payload + self._sep + base64.urlsafe_b64encode(mac.digest()).rstrip(b"=")).decode("ascii")


def _hmac(secret: str, purpose: str, value: str) -> str:
    key = hashlib.sha256(f"tidings.{purpose}:{secret}".encode()).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
