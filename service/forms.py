"""Spam defence for public forms (inquiry, signup), shared by their HTML and JSON endpoints.

A form carries a signed token stamped with the time it was served: a submission is refused if
the token is missing or tampered (a bot posting blind), younger than FORM_MIN_SECONDS (a bot
filling fields instantly) or older than FORM_MAX_AGE_SECONDS (a person who left the tab open:
told so, and keeps what they typed). A hidden honeypot field catches form-filling bots, and a
per-IP fixed-window limit caps everyone. Bots get an ordinary-looking success answer, so they
learn nothing; nothing is stored or mailed for them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from service.ratelimit import hit_rate_limit
from service.tokens import TokenError, Tokens
from service.web import client_ip, settings_of

TOKEN_FIELD = "form_token"  # noqa: S105 - a field name, not a secret
HONEYPOT_FIELD = "website"


class Verdict(enum.Enum):
    OK = "ok"
    BOT = "bot"  # answer as if it worked; store nothing
    EXPIRED = "expired"  # tell the person; keep their input
    RATE_LIMITED = "rate_limited"  # tell the person; keep their input


HUMAN_MESSAGES = {
    Verdict.EXPIRED: "This form was open for a long time and has expired for your security. "
                     "Your answers are still here: please send it again.",
    Verdict.RATE_LIMITED: "We have received several forms from your connection in a short time. "
                          "Please wait a few minutes and send it again; your answers are still here.",
}


def tokens_of(request: Request) -> Tokens:
    tokens = getattr(request.app.state, "tokens", None)
    if tokens is None:
        tokens = request.app.state.tokens = Tokens(settings_of(request))
    return tokens  # type: ignore[no-any-return]


def issue_form_token(request: Request, form: str) -> str:
    """A token for one rendering of form `form` (stamped with the current time)."""
    return tokens_of(request).dumps("form", form)


async def screen_submission(request: Request, session: AsyncSession, data: Mapping[str, Any], *,
                            form: str) -> Verdict:
    """Decide whether a submission of `form` comes from a person who may send it now."""
    settings = settings_of(request)
    if str(data.get(HONEYPOT_FIELD) or "").strip():
        return Verdict.BOT
    token = data.get(TOKEN_FIELD)
    if not isinstance(token, str) or not token:
        return Verdict.BOT
    try:
        name, age = tokens_of(request).loads_with_age("form", token)
    except TokenError:
        return Verdict.BOT
    if name != form or age < settings.form_min_seconds:
        return Verdict.BOT
    if age > settings.form_max_age_seconds:
        return Verdict.EXPIRED
    allowed = await hit_rate_limit(session, key=f"form:{client_ip(request)}", limit=settings.form_rate_limit)
    if not allowed:
        return Verdict.RATE_LIMITED
    return Verdict.OK
