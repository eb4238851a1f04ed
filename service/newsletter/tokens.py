"""Newsletter tokens: confirmation (expires after CONFIRM_MAX_AGE) and unsubscribe (never
expires, cannot be forged: an HMAC over the subscriber id under the secret key)."""

from __future__ import annotations

from service.settings import Settings
from service.tokens import Tokens

CONFIRM_MAX_AGE = 7 * 24 * 60 * 60


def confirm_token(tokens: Tokens, subscriber_id: int) -> str:
    return tokens.dumps("confirm", subscriber_id)


def read_confirm_token(tokens: Tokens, token: str) -> int:
    """The subscriber id; raises TokenError (with `.expired`) when tampered or expired."""
    return int(tokens.loads("confirm", token, max_age=CONFIRM_MAX_AGE))


def unsubscribe_token(tokens: Tokens, subscriber_id: int) -> str:
    return tokens.dumps_forever("unsubscribe", subscriber_id)


def read_unsubscribe_token(tokens: Tokens, token: str) -> int:
    return int(tokens.loads_forever("unsubscribe", token))


def unsubscribe_url(settings: Settings, tokens: Tokens, subscriber_id: int) -> str:
    """The URL for List-Unsubscribe, the visible unsubscribe link and the preference centre."""
    return f"{settings.base_url}/unsubscribe/{unsubscribe_token(tokens, subscriber_id)}"


def confirm_url(settings: Settings, tokens: Tokens, subscriber_id: int) -> str:
    return f"{settings.base_url}/confirm/{confirm_token(tokens, subscriber_id)}"
