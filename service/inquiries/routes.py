"""Public inquiry routes: the contact form page, its JSON twin for the blog's script, the form
token for that script, and the thank-you page.

Answers, by who sent it:
- a person, valid: 303 to /contact/thanks (JSON: 201 {"id": receipt}, an opaque receipt that is
  fresh for every answer); a duplicate or a double click gets the same answer and no second
  email, and nothing in it tells it apart;
- a person, invalid: the form again, every value kept, each error by its field (422);
  token expired: 422 with a notice; too many forms from one connection: 429 with a notice;
- a submission that looks automated (honeypot filled, token missing, tampered, replayed or too
  young): the same answer as a person's; it is stored *held* and mails nothing until staff
  release it (see service/inquiries/held.py);
- a plain HTML form on the blog that posts here without any token: this page again with the
  values filled in and a fresh token, asking to press Send once more (see docs/inquiries.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from service.admin.brand_web import brand_of
from service.cors import ApiCorsMiddleware
from service.db import get_session, utcnow
from service.forms import (
    HONEYPOT_FIELD,
    HUMAN_MESSAGES,
    TOKEN_FIELD,
    Screening,
    Verdict,
    issue_form_token,
    read_form,
    read_json,
    screen,
)
from service.i18n import N_, current_language, gettext, pick_language, set_language
from service.inquiries.flows import (
    ATTRIBUTION_FIELDS,
    CONTACT_METHOD_LABELS,
    UTM_FIELDS,
    InquiryInput,
    Submission,
    clean_attribution,
    clean_inquiry,
    submit_inquiry,
)
from service.web import client_ip, render, settings_of

FORM = "inquiry"
TEXT_FIELDS = ("name", "email", "phone", "topic", "contact_method", "message")
FIELD_ORDER = ("name", "email", "phone", "topic", "contact_method", "message", "consent")
CONFIRM_NOTICE = N_("Almost done: please check your answers below and press “Send my inquiry” to send them to us.")


# -- the page ---------------------------------------------------------------------------------


async def contact_form(request: Request) -> Response:
    """The empty form, with attribution taken from the query string and the Referer."""
    q = request.query_params
    set_language(pick_language(q.get("lang"), settings_of(request).language))
    values: dict[str, Any] = {f: q.get(f, "") for f in UTM_FIELDS}
    values["source_page"] = q.get("source_page") or request.headers.get("referer", "")
    values["referrer"] = q.get("referrer", "")
    return _form_page(request, values, {})


async def contact_submit(request: Request) -> Response:
    data: dict[str, Any] = dict(await read_form(request))
    set_language(pick_language(data.get("lang") or request.query_params.get("lang"), settings_of(request).language))
    if not data.get(TOKEN_FIELD) and not str(data.get(HONEYPOT_FIELD) or "").strip():
        data["source_page"] = data.get("source_page") or request.headers.get("referer", "")
        return _form_page(request, data, {}, notice=gettext(CONFIRM_NOTICE), notice_kind="notice")
    screening = await screen(request, data, form=FORM)
    verdict = screening.verdict
    if verdict in _STATUS:
        return _form_page(request, data, {}, notice=gettext(HUMAN_MESSAGES[verdict]), status=_STATUS[verdict],
                          headers=_retry_after(request, verdict))
    inquiry, errors = clean_inquiry(data, settings_of(request))
    if inquiry is None:
        return _form_page(request, data, errors, status=422)
    await _store(request, data, inquiry, screening)
    lang = current_language()
    return RedirectResponse("/contact/thanks" + (f"?lang={lang}" if lang != settings_of(request).language else ""),
                            status_code=303)


async def contact_thanks(request: Request) -> Response:
    set_language(pick_language(request.query_params.get("lang"), settings_of(request).language))
    return render(request, "inquiries/thanks.html")


# -- JSON for the blog's script ---------------------------------------------------------------


async def api_submit(request: Request) -> Response:
    if request.method == "OPTIONS":  # not a CORS preflight (ApiCorsMiddleware answers those)
        return Response(status_code=204, headers={"Allow": "POST, OPTIONS"})
    data = await read_json(request, what=N_("the inquiry"))
    set_language(pick_language(data.get("lang"), settings_of(request).language))
    screening = await screen(request, data, form=FORM)
    verdict = screening.verdict
    if verdict is Verdict.EXPIRED:
        return JSONResponse({"errors": {TOKEN_FIELD: gettext(HUMAN_MESSAGES[verdict])}}, status_code=422)
    if verdict is Verdict.RATE_LIMITED:
        return JSONResponse({"error": gettext(HUMAN_MESSAGES[verdict])}, status_code=429,
                            headers=_retry_after(request, verdict))
    inquiry, errors = clean_inquiry(data, settings_of(request))
    if inquiry is None:
        return JSONResponse({"errors": dict(errors)}, status_code=422)
    submission = await _store(request, data, inquiry, screening)
    return JSONResponse({"id": submission.receipt}, status_code=201)


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


async def _store(request: Request, data: Mapping[str, Any], inquiry: InquiryInput,
                 screening: Screening) -> Submission:
    attribution = clean_attribution(data, ip=client_ip(request), user_agent=request.headers.get("user-agent", ""),
                                    language=current_language())
    return await submit_inquiry(get_session(request), settings=settings_of(request), inquiry=inquiry,
                                attribution=attribution, now=utcnow(), nonce=screening.nonce,
                                hold_reason=screening.hold_reason, brand=brand_of(request))


def _form_page(request: Request, data: Mapping[str, Any], errors: Mapping[str, str], *, notice: str | None = None,
               notice_kind: str = "alert", status: int = 200, headers: dict[str, str] | None = None) -> Response:
    values: dict[str, str | bool] = {f: _text(data.get(f)) for f in (*TEXT_FIELDS, *ATTRIBUTION_FIELDS)}
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


_api_cors = [Middleware(ApiCorsMiddleware)]

routes: list[BaseRoute] = [
    Route("/contact", contact_form, methods=["GET"], name="contact_form"),
    Route("/contact", contact_submit, methods=["POST"], name="contact_submit"),
    Route("/contact/thanks", contact_thanks, methods=["GET"], name="contact_thanks"),
    Route("/api/inquiries", api_submit, methods=["POST", "OPTIONS"], middleware=_api_cors, name="api_inquiries"),
    Route("/api/form-token", api_form_token, methods=["GET", "OPTIONS"], middleware=_api_cors,
          name="api_form_token"),
]
