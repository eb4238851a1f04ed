"""The public forms' shared intake (inquiry, newsletter signup; their HTML and JSON endpoints):
reading a posted form or JSON body, and screening a submission for signs of automation.

A form carries a signed token stamped with the time it was served and a random nonce. A
submission whose honeypot field is filled, whose token is missing, tampered or of another form,
or whose token is younger than FORM_MIN_SECONDS looks automated: it is *held*, never dropped
(a person with autofill and a quick finger looks just like that), and its sender sees the
ordinary answer. A token older than FORM_MAX_AGE_SECONDS tells the person, who keeps what they
typed. A per-IP fixed-window limit (IPv6 by /64, see `ip_limit_key`) caps everyone, held
submissions included, with a visible notice. The nonce makes a token good for one stored
submission: the domain stores it with what it stores and checks it in the same transaction.
"""

from __future__ import annotations

import enum
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request

from service.db import get_session
from service.i18n import N_, gettext
from service.ratelimit import hit_rate_limit, ip_limit_key
from service.tokens import TokenError, Tokens
from service.web import client_ip, settings_of

TOKEN_FIELD = "form_token"  # noqa: S105 - a field name, not a secret
HONEYPOT_FIELD = "website"
MAX_FIELDS = 100
# Held reasons, as stored and shown to staff.
HONEYPOT = "honeypot filled"
TOO_FAST = "too fast"
TAMPERED = "tampered token"
MISSING = "missing token"
REPLAYED = "replayed token"
HOLD_REASONS = (HONEYPOT, TOO_FAST, TAMPERED, MISSING, REPLAYED)


class Verdict(enum.Enum):
    OK = "ok"
    HOLD = "hold"  # looks automated: answer as if it worked; store it held, mail nothing
    EXPIRED = "expired"  # tell the person; keep their input
    RATE_LIMITED = "rate_limited"  # tell the person; keep their input


@dataclass(frozen=True)
class Screening:
    verdict: Verdict
    hold_reason: str | None = None  # one of HOLD_REASONS when verdict is HOLD
    nonce: str | None = None  # the form token's nonce, when the token is genuine


# Marked for the catalogue; shown through `gettext` in the person's language.
HUMAN_MESSAGES = {
    Verdict.EXPIRED: N_("This form was open for a long time and has expired for your security. "
                        "Your answers are still here: please send it again."),
    Verdict.RATE_LIMITED: N_("We have received several forms from your connection in a short time. "
                             "Please wait a few minutes and send it again; your answers are still here."),
}


class FormFields(dict[str, Any]):
    """The posted fields, first value of each; `getlist` gives every value of one field."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__()
        self._pairs = pairs
        for key, value in pairs:
            self.setdefault(key, value)

    def getlist(self, key: str) -> list[Any]:
        return [v for k, v in self._pairs if k == key]


def tokens_of(conn: HTTPConnection) -> Tokens:
    tokens = getattr(conn.app.state, "tokens", None)
    if tokens is None:
        tokens = conn.app.state.tokens = Tokens(settings_of(conn))
    return tokens


def issue_form_token(request: Request, form: str) -> str:
    """A token for one rendering of form `form`: the current time and a random nonce, signed."""
    return tokens_of(request).dumps("form", {"form": form, "nonce": secrets.token_urlsafe(12)})


def _form_and_nonce(payload: Any, token: str) -> tuple[str, str]:
    if isinstance(payload, dict):
        return str(payload.get("form")), str(payload.get("nonce"))[:64]
    # a token issued before tokens had a nonce (a bare form name): its own hash stands in
    return str(payload), hashlib.sha256(token.encode()).hexdigest()[:32]


def _judge_token(request: Request, token: Any, form: str) -> tuple[str | None, str | None, bool]:
    """(hold reason, nonce, expired) for the submitted token."""
    settings = settings_of(request)
    if not isinstance(token, str) or not token:
        return MISSING, None, False
    try:
        payload, age = tokens_of(request).loads_with_age("form", token)
    except TokenError:
        return TAMPERED, None, False
    name, nonce = _form_and_nonce(payload, token)
    if name != form:
        return TAMPERED, None, False
    if age > settings.form_max_age_seconds:
        return None, nonce, True
    if age < settings.form_min_seconds:
        return TOO_FAST, nonce, False
    return None, nonce, False


async def screen(request: Request, data: dict[str, Any], *, form: str) -> Screening:
    """Decide how a submission of `form` is taken: as sent, held, or refused with a notice.

    The per-IP hit is counted in the request's transaction, the first statement of it: a
    refused submission (422, 429) is answered after its commit, so its hit counts; one that
    fails (500) counts nothing, as it stores nothing. The counter row stays locked until the
    request commits, so two submissions from one address at the same moment run one after the
    other (a few milliseconds; the limit allows a handful in minutes). One connection, one
    transaction and one commit per submission, instead of a second session for the counter."""
    settings = settings_of(request)
    reason, nonce, expired = _judge_token(request, data.get(TOKEN_FIELD), form)
    if str(data.get(HONEYPOT_FIELD) or "").strip():
        reason = HONEYPOT
    if expired and reason is None:
        return Screening(Verdict.EXPIRED)
    allowed = await hit_rate_limit(get_session(request), key=f"form:{ip_limit_key(client_ip(request))}",
                                   limit=settings.form_rate_limit)
    if not allowed:
        return Screening(Verdict.RATE_LIMITED)
    if reason is not None:
        return Screening(Verdict.HOLD, reason, nonce)
    return Screening(Verdict.OK, None, nonce)


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_form(request: Request) -> FormFields:
    """The posted fields. Bytes that are not UTF-8 become U+FFFD, which validation then refuses
    by field name; no files; at most MAX_FIELDS fields."""
    ctype = _content_type(request)
    if ctype == "application/x-www-form-urlencoded":
        body = (await request.body()).decode("utf-8", "replace")
        try:
            pairs: list[tuple[str, Any]] = parse_qsl(body, keep_blank_values=True, encoding="utf-8",
                                                     errors="replace", max_num_fields=MAX_FIELDS)
        except ValueError:
            raise HTTPException(400, gettext("The form has too many fields.")) from None
    elif ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=0, max_fields=MAX_FIELDS)
        except UnicodeDecodeError:
            raise HTTPException(400, gettext("The form data is not valid UTF-8.")) from None
        pairs = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    else:
        raise HTTPException(415, gettext(
            "Please send the form as application/x-www-form-urlencoded or multipart/form-data."))
    return FormFields(pairs)


async def read_json(request: Request, *, what: str) -> dict[str, Any]:
    """The body as a JSON object of fields; a clear 400/415 for anything else (`what` names the
    thing sent, for the message). Nesting deeper than Python's recursion limit is a 400 too."""
    if _content_type(request) != "application/json":
        raise HTTPException(415, gettext("Send %(what)s as JSON with Content-Type: application/json.",
                                         what=gettext(what)))
    body = await request.body()
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise HTTPException(400, gettext("The request body is not valid UTF-8.")) from None
    except RecursionError:
        raise HTTPException(400, gettext(
            "The request body is nested too deeply; send a JSON object of fields.")) from None
    except ValueError:
        raise HTTPException(400, gettext("The request body is not valid JSON.")) from None
    if not isinstance(data, dict):
        raise HTTPException(400, gettext("The request body must be a JSON object of fields."))
    for field, value in data.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise HTTPException(400, gettext("The field %(field)s is not valid Unicode.",
                                                 field=repr(field))) from None
    return data
