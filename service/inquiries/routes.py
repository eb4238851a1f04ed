"""Public inquiry routes: the contact form page, its JSON twin for the blog's script, the form
token for that script, and the thank-you page.

Answers, by who sent it:
- a person, valid: 303 to /contact/thanks (JSON: 201 {"id": n}); a duplicate gets the same answer
  with the id of the inquiry stored moments ago, and no second email;
- a person, invalid: the form again, every value kept, each error by its field (422);
  token expired: 422 with a notice; too many forms from one address: 429 with a notice;
- a bot (honeypot filled, token tampered or too young): an ordinary success, 303 to the thank-you
  page (JSON: 202 {"status": "received"}, no id, since nothing was created); nothing is stored
  or mailed;
- a plain HTML form on the blog that posts here without any token: this page again with the
  values filled in and a fresh token, asking to press Send once more (see docs/inquiries.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from service.cors import ApiCorsMiddleware
from service.db import get_session, utcnow
from service.forms import HONEYPOT_FIELD, HUMAN_MESSAGES, TOKEN_FIELD, Verdict, issue_form_token, screen_submission
from service.inquiries.flows import (
    ATTRIBUTION_FIELDS,
    CONTACT_METHOD_LABELS,
    UTM_FIELDS,
    InquiryInput,
    Submission,
    check_unicode,
    clean_attribution,
    clean_inquiry,
    submit_inquiry,
)
from service.validation import FieldError
from service.web import client_ip, render, settings_of

FORM = "inquiry"
TEXT_FIELDS = ("name", "email", "phone", "topic", "contact_method", "message")
FIELD_ORDER = ("name", "email", "phone", "topic", "contact_method", "message", "consent")
CONFIRM_NOTICE = "Almost done: please check your answers below and press “Send my inquiry” to send them to us."


# -- the page ---------------------------------------------------------------------------------


async def contact_form(request: Request) -> Response:
    """The empty form, with attribution taken from the query string and the Referer."""
    q = request.query_params
    values: dict[str, Any] = {f: q.get(f, "") for f in UTM_FIELDS}
    values["source_page"] = q.get("source_page") or request.headers.get("referer", "")
    values["referrer"] = q.get("referrer", "")
    return _form_page(request, values, {})


async def contact_submit(request: Request) -> Response:
    data = await _read_form(request)
    if not data.get(TOKEN_FIELD) and not str(data.get(HONEYPOT_FIELD) or "").strip():
        data["source_page"] = data.get("source_page") or request.headers.get("referer", "")
        return _form_page(request, data, {}, notice=CONFIRM_NOTICE, notice_kind="notice")
    verdict = await _screen(request, data)
    if verdict is Verdict.BOT:
        return RedirectResponse("/contact/thanks", status_code=303)
    if verdict is not Verdict.OK:
        return _form_page(request, data, {}, notice=HUMAN_MESSAGES[verdict], status=_STATUS[verdict],
                          headers=_retry_after(request, verdict))
    inquiry, errors = clean_inquiry(data, settings_of(request))
    if inquiry is None:
        return _form_page(request, data, errors, status=422)
    await _store(request, data, inquiry)
    return RedirectResponse("/contact/thanks", status_code=303)


async def contact_thanks(request: Request) -> Response:
    return render(request, "inquiries/thanks.html")


# -- JSON for the blog's script ---------------------------------------------------------------


async def api_submit(request: Request) -> Response:
    if request.method == "OPTIONS":  # not a CORS preflight (ApiCorsMiddleware answers those)
        return Response(status_code=204, headers={"Allow": "POST, OPTIONS"})
    data = await _read_json(request)
    verdict = await _screen(request, data)
    if verdict is Verdict.BOT:
        return JSONResponse({"status": "received"}, status_code=202)
    if verdict is Verdict.EXPIRED:
        return JSONResponse({"errors": {TOKEN_FIELD: HUMAN_MESSAGES[verdict]}}, status_code=422)
    if verdict is Verdict.RATE_LIMITED:
        return JSONResponse({"error": HUMAN_MESSAGES[verdict]}, status_code=429,
                            headers=_retry_after(request, verdict))
    inquiry, errors = clean_inquiry(data, settings_of(request))
    if inquiry is None:
        return JSONResponse({"errors": dict(errors)}, status_code=422)
    submission = await _store(request, data, inquiry)
    return JSONResponse({"id": submission.inquiry_id}, status_code=201)


async def api_form_token(request: Request) -> Response:
    if request.method == "OPTIONS":
        return Response(status_code=204, headers={"Allow": "GET, OPTIONS"})
    return JSONResponse({"form_token": issue_form_token(request, FORM)}, headers={"Cache-Control": "no-store"})


# -- helpers ------------------------------------------------------------------------------------

_STATUS = {Verdict.EXPIRED: 422, Verdict.RATE_LIMITED: 429}


def _retry_after(request: Request, verdict: Verdict) -> dict[str, str] | None:
    if verdict is not Verdict.RATE_LIMITED:
        return None
    return {"Retry-After": str(settings_of(request).form_rate_limit.seconds)}


async def _screen(request: Request, data: Mapping[str, Any]) -> Verdict:
    # Not in the request's transaction: the rate-limit counter row is locked only while its
    # upsert runs, not for the whole request, and a hit counts even when the submission is then
    # refused. On PostgreSQL the upsert runs in autocommit (no BEGIN/COMMIT round trips).
    async with request.app.state.sessions() as session:
        if session.bind.dialect.name == "postgresql":
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            return await screen_submission(request, session, data, form=FORM)
        async with session.begin():
            return await screen_submission(request, session, data, form=FORM)


async def _store(request: Request, data: Mapping[str, Any], inquiry: InquiryInput) -> Submission:
    attribution = clean_attribution(data, ip=client_ip(request), user_agent=request.headers.get("user-agent", ""))
    return await submit_inquiry(get_session(request), settings=settings_of(request), inquiry=inquiry,
                                attribution=attribution, now=utcnow())


def _form_page(request: Request, data: Mapping[str, Any], errors: Mapping[str, str], *, notice: str | None = None,
               notice_kind: str = "alert", status: int = 200, headers: dict[str, str] | None = None) -> Response:
    values = {f: _text(data.get(f)) for f in (*TEXT_FIELDS, *ATTRIBUTION_FIELDS)}
    values["contact_method"] = values["contact_method"] or "email"
    values["consent"] = _checked(data.get("consent"))
    values["newsletter"] = _checked(data.get("newsletter"))
    ctx = {
        "values": values,
        "errors": errors,
        "summary": [(f, errors[f]) for f in FIELD_ORDER if f in errors],
        "form_token": issue_form_token(request, FORM),
        "contact_methods": CONTACT_METHOD_LABELS,
        "notice": notice,
        "notice_kind": notice_kind,
    }
    return render(request, "inquiries/contact.html", ctx, status_code=status, headers=headers)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _checked(value: Any) -> bool:
    return value is True or str(value or "").strip().lower() in ("1", "on", "yes", "true")


async def _read_form(request: Request) -> dict[str, Any]:
    """The posted fields (first value of each). Bytes that are not UTF-8 become U+FFFD, which
    validation then refuses by field name."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded":
        body = (await request.body()).decode("utf-8", "replace")
        try:
            pairs = parse_qsl(body, keep_blank_values=True, encoding="utf-8", errors="replace", max_num_fields=100)
        except ValueError:
            raise HTTPException(400, "The form has too many fields.") from None
    elif ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=0, max_fields=100)
        except UnicodeDecodeError:
            raise HTTPException(400, "The form data is not valid UTF-8.") from None
        pairs = [(k, v) for k, v in form.multi_items()]
    else:
        raise HTTPException(415, "Please send the form as application/x-www-form-urlencoded or multipart/form-data.")
    data: dict[str, Any] = {}
    for key, value in pairs:
        data.setdefault(key, value)
    return data


async def _read_json(request: Request) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise HTTPException(415, "Send the inquiry as JSON with Content-Type: application/json.")
    body = await request.body()
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise HTTPException(400, "The request body is not valid UTF-8.") from None
    except ValueError:
        raise HTTPException(400, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "The request body must be a JSON object of fields.")
    try:
        check_unicode(data)
    except FieldError as exc:
        raise HTTPException(400, f"The field {exc.field!r} is not valid Unicode.") from None
    return data


_api_cors = [Middleware(ApiCorsMiddleware)]

routes: list[BaseRoute] = [
    Route("/contact", contact_form, methods=["GET"], name="contact_form"),
    Route("/contact", contact_submit, methods=["POST"], name="contact_submit"),
    Route("/contact/thanks", contact_thanks, methods=["GET"], name="contact_thanks"),
    Route("/api/inquiries", api_submit, methods=["POST", "OPTIONS"], middleware=_api_cors, name="api_inquiries"),
    Route("/api/form-token", api_form_token, methods=["GET", "OPTIONS"], middleware=_api_cors,
          name="api_form_token"),
]
