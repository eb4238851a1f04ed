"""Newsletter tokens: confirmation (expires after CONFIRM_MAX_AGE) and unsubscribe (never
expires, cannot be forged: an HMAC over the subscriber id under the secret key).

A confirmation token names the subscriber AND the signup it was sent for (the row's `signup_at`,
in microseconds): after an unsubscribe and a new signup of the same address, a link from the
earlier signup no longer matches the row, so it cannot confirm the new signup.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from service.settings import Settings
from service.tokens import Tokens

CONFIRM_MAX_AGE = 7 * 24 * 60 * 60
PREVIEW_MAX_AGE = 90 * 24 * 60 * 60  # the links of a test send work this long
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def signup_stamp(signup_at: dt.datetime | None) -> int | None:
    """The signup time as whole microseconds since 1970 (exact: no float rounding)."""
    if signup_at is None:
        return None
    return (signup_at.astimezone(dt.UTC) - _EPOCH) // dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class ConfirmClaim:
    """What a valid confirmation token says: this subscriber, this signup. `signup` is None for
    a row without a signup time (an import without consent dates); `legacy` for a token from a
    version that did not bind it to a signup (it names no signup, so it confirms none)."""

    subscriber_id: int
    signup: int | None
    legacy: bool = False

    def matches(self, signup_at: dt.datetime | None) -> bool:
        return not self.legacy and self.signup == signup_stamp(signup_at)


def confirm_token(tokens: Tokens, subscriber_id: int, signup_at: dt.datetime | None) -> str:
    return tokens.dumps("confirm", [subscriber_id, signup_stamp(signup_at)])


def read_confirm_token(tokens: Tokens, token: str) -> ConfirmClaim:
    """Raises TokenError (with `.expired`) when tampered or expired, ValueError when malformed."""
    data = tokens.loads("confirm", token, max_age=CONFIRM_MAX_AGE)
    if isinstance(data, int) and not isinstance(data, bool):
        return ConfirmClaim(data, None, legacy=True)
    if (isinstance(data, list) and len(data) == 2 and isinstance(data[0], int)
            and (data[1] is None or isinstance(data[1], int))):
        return ConfirmClaim(data[0], data[1])
    raise ValueError("not a confirmation token")


def unsubscribe_token(tokens: Tokens, subscriber_id: int) -> str:
    return tokens.dumps_forever("unsubscribe", subscriber_id)


def read_unsubscribe_token(tokens: Tokens, token: str) -> int:
    return int(tokens.loads_forever("unsubscribe", token))


def unsubscribe_url(settings: Settings, tokens: Tokens, subscriber_id: int) -> str:
    """The URL for List-Unsubscribe, the visible unsubscribe link and the preference centre."""
    return f"{settings.base_url}/unsubscribe/{unsubscribe_token(tokens, subscriber_id)}"


def confirm_url(settings: Settings, tokens: Tokens, subscriber_id: int, signup_at: dt.datetime | None) -> str:
    """The link for the signup of `subscriber_id` made at `signup_at`."""
    return f"{settings.base_url}/confirm/{confirm_token(tokens, subscriber_id, signup_at)}"


def preview_token(tokens: Tokens, campaign_id: int) -> str:
    """The token of a test send's links: names the campaign, unsubscribes nobody."""
    return tokens.dumps("preview", campaign_id)


def read_preview_token(tokens: Tokens, token: str) -> int:
    """The campaign id; TokenError when tampered or older than PREVIEW_MAX_AGE, ValueError when malformed."""
    data = tokens.loads("preview", token, max_age=PREVIEW_MAX_AGE)
    if not isinstance(data, int) or isinstance(data, bool):
        raise ValueError("not a preview token")
    return data


def preview_unsubscribe_url(settings: Settings, tokens: Tokens, campaign_id: int) -> str:
    """The unsubscribe and preference link of a test send: the preference page in preview mode."""
    return f"{settings.base_url}/preview/unsubscribe/{preview_token(tokens, campaign_id)}"
