"""Newsletter pages and JSON: signup, confirmation, preference centre and one-click unsubscribe.

The confirm and unsubscribe pages need no CSRF token: they are reached only through an
unforgeable signed token in the URL, no cookie or session is involved, so a third-party page
cannot make a browser act with authority it does not already hold in the URL itself.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from service.admin.brand_web import brand_of
from service.cors import ApiCorsMiddleware
from service.db import get_session
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
    tokens_of,
)
from service.i18n import N_, current_language, gettext, pick_language, set_language
from service.newsletter import flows, queries
from service.newsletter.models import Subscriber
from service.newsletter.tokens import read_preview_token, read_unsubscribe_token, unsubscribe_url
from service.tokens import TokenError
from service.validation import Errors, clean_mailable_email, clean_text
from service.web import client_ip, render, settings_of

FORM = "newsletter"
_REFUSED = {Verdict.EXPIRED: 422, Verdict.RATE_LIMITED: 429}  # told to the person, who keeps their input
THANKS = "/subscribe/thanks"
_PROBLEM_STATUS = {flows.ConfirmProblem.INVALID: 400, flows.ConfirmProblem.EXPIRED: 410,
                   flows.ConfirmProblem.USED: 410, flows.ConfirmProblem.SUPERSEDED: 410}


# -- signup ---------------------------------------------------------------------------------


def _embedded(request: Request) -> bool:
    return request.query_params.get("embed") == "1"


def _thanks(request: Request) -> Response:
    query = "&".join([*(["embed=1"] if _embedded(request) else []), *_lang_query(request)])
    return RedirectResponse(THANKS + (f"?{query}" if query else ""), status_code=303)


def _lang_query(request: Request) -> list[str]:
    """`lang=…` for a redirect, so the next page speaks the language of this one."""
    return [f"lang={current_language()}"] if current_language() != settings_of(request).language else []


def _use_language(request: Request, requested: object = None) -> None:
    """The language the signup form sent (`lang`, field or query), else the install's."""
    set_language(pick_language(requested or request.query_params.get("lang"), settings_of(request).language))


def _human_message(screening: Screening) -> str:
    """The notice for a refused form, in the page's language; '' when there is none (never
    gettext(""), which is the catalogue's header)."""
    message = HUMAN_MESSAGES.get(screening.verdict)
    return gettext(message) if message else ""


def _use_subscriber_language(request: Request, subscriber: Subscriber | None) -> None:
    if subscriber is not None:
        set_language(flows.subscriber_language(settings_of(request), subscriber))


def _form_ctx(request: Request, values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
              alert: str = "") -> dict[str, Any]:
    return {"embed": _embedded(request), "form_token": issue_form_token(request, FORM), "token_field": TOKEN_FIELD,
            "honeypot": HONEYPOT_FIELD,
            "consent_text": flows.consent_text(brand_of(request).name), "values": values or {}, "errors": errors or {},
            "alert": alert}


def _clean_signup(request: Request, data: dict[str, Any], topics: list[str]) -> tuple[dict[str, Any], Errors]:
    errors = Errors()
    values = {
        "email": errors.collect("email", clean_mailable_email, data, "email"),
        "name": errors.collect("name", clean_text, data, "name", label=N_("Name"), max_length=flows.NAME_MAX) or "",
        "topics": topics,
    }
    unknown = [t for t in topics if t not in settings_of(request).topics]
    if unknown:
        errors["topics"] = gettext("Please choose topics from the list")
    return values, errors


async def _subscribe(request: Request, values: dict[str, Any], screening: Screening | None = None) -> None:
    """The signup, or, when the screening found it automated-looking, the held signup (no email)."""
    settings = settings_of(request)
    common: dict[str, Any] = dict(
        email=values["email"], name=values["name"], topics=values["topics"], ip=client_ip(request),
        user_agent=request.headers.get("user-agent", ""), source=values.get("source", "form:subscribe"),
        consent_text=flows.consent_text(brand_of(request).name), language=current_language(),
        page=values.get("page", ""),
    )
    if screening is not None and screening.verdict is Verdict.HOLD:
        await flows.hold_subscription(get_session(request), settings=settings, reason=screening.hold_reason or "",
                                      **common)
        return
    await flows.request_subscription(get_session(request), settings=settings, tokens=tokens_of(request), **common)


async def subscribe_page(request: Request) -> Response:
    if request.method != "POST":
        _use_language(request)
        return render(request, "newsletter/subscribe.html", _form_ctx(request))
    form = await read_form(request)
    _use_language(request, form.get("lang"))
    shown = {"email": form.get("email", ""), "name": form.get("name", ""), "topics": form.getlist("topics")}
    screening = await screen(request, form, form=FORM)
    if screening.verdict in _REFUSED:
        return render(request, "newsletter/subscribe.html",
                      _form_ctx(request, shown, alert=gettext(HUMAN_MESSAGES[screening.verdict])),
                      status_code=_REFUSED[screening.verdict])
    values, errors = _clean_signup(request, form, [str(t) for t in form.getlist("topics")])
    if errors:
        return render(request, "newsletter/subscribe.html", _form_ctx(request, shown, errors), status_code=422)
    values["source"] = "form:subscribe" + (":embed" if _embedded(request) else "")
    values["page"] = str(form.get("source_page") or request.headers.get("referer", ""))
    await _subscribe(request, values, screening)
    return _thanks(request)


async def subscribe_thanks(request: Request) -> Response:
    _use_language(request)
    return render(request, "newsletter/thanks.html", {"embed": _embedded(request)})


async def resend(request: Request) -> Response:
    """'Send me a new link': the signup again, for an address only, with the same answer."""
    data = await read_form(request)
    _use_language(request, data.get("lang"))
    screening = await screen(request, data, form=FORM)
    errors = Errors()
    email = errors.collect("email", clean_mailable_email, data, "email")
    if screening.verdict in _REFUSED or errors:
        ctx = {**_form_ctx(request, {"email": data.get("email", "")}, errors,
                           alert=_human_message(screening)), "problem": None}
        return render(request, "newsletter/resend.html", ctx, status_code=_REFUSED.get(screening.verdict, 422))
    await _subscribe(request, {"email": email, "name": "", "topics": None, "source": "form:resend"}, screening)
    return _thanks(request)


# -- JSON API with CORS for the blog ------------------------------------------------------------


async def api_subscriptions(request: Request) -> Response:
    if request.method == "OPTIONS":  # not a CORS preflight (ApiCorsMiddleware answers those)
        return Response(status_code=204, headers={"Allow": "GET, POST, OPTIONS"})
    settings = settings_of(request)
    _use_language(request)
    if request.method != "POST":  # what a blog script needs to show the form
        return JSONResponse({
            "form_token": issue_form_token(request, FORM), "consent_text": flows.consent_text(brand_of(request).name),
            "topics": list(settings.topics),
        }, headers={"Cache-Control": "no-store"})
    data = await read_json(request, what=N_("the signup"))
    _use_language(request, data.get("lang"))
    screening = await screen(request, data, form=FORM)
    if screening.verdict in _REFUSED:
        return JSONResponse({"errors": {TOKEN_FIELD: gettext(HUMAN_MESSAGES[screening.verdict])}},
                            status_code=_REFUSED[screening.verdict])
    topics = data.get("topics") or []
    if isinstance(topics, str):
        topics = [topics]
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        return JSONResponse({"errors": {"topics": gettext("must be a list of topics")}}, status_code=422)
    values, errors = _clean_signup(request, data, topics)
    if errors:
        return JSONResponse({"errors": dict(errors)}, status_code=422)
    values["source"] = "api"
    values["page"] = str(data.get("source_page") or request.headers.get("referer", ""))
    await _subscribe(request, values, screening)
    return JSONResponse({"message": gettext("Thank you. Please check your inbox and confirm your subscription.")},
                        status_code=202)


# -- confirmation ----------------------------------------------------------------------------


def _problem(request: Request, check: flows.ConfirmCheck) -> Response:
    problem = check.problem
    assert problem is not None
    if problem is flows.ConfirmProblem.ALREADY and check.subscriber is not None:
        return _subscribed(request, check.subscriber, already=True)
    ctx = {**_form_ctx(request), "problem": problem.value}
    return render(request, "newsletter/resend.html", ctx, status_code=_PROBLEM_STATUS[problem])


async def confirm(request: Request) -> Response:
    token = request.path_params["token"]
    session = get_session(request)
    settings = settings_of(request)
    if request.method != "POST":  # mail scanners fetch links (GET, HEAD): they only see the button
        check = await flows.check_confirm_token(session, tokens=tokens_of(request), token=token)
        _use_subscriber_language(request, check.subscriber)
        if check.problem is not None:
            return _problem(request, check)
        assert check.subscriber is not None
        return render(request, "newsletter/confirm.html", {"masked": flows.mask_email(check.subscriber.email)})
    check = await flows.confirm_subscription(session, settings=settings, tokens=tokens_of(request), token=token,
                                             ip=client_ip(request))
    _use_subscriber_language(request, check.subscriber)
    if check.problem is not None:
        return _problem(request, check)
    assert check.subscriber is not None
    return _subscribed(request, check.subscriber, already=False)


def _subscribed(request: Request, subscriber: Subscriber, *, already: bool) -> Response:
    url = unsubscribe_url(settings_of(request), tokens_of(request), subscriber.id)
    return render(request, "newsletter/confirmed.html", {"preferences_url": url, "already": already})


# -- preference centre and unsubscribe ---------------------------------------------------------


def _subscriber_id(request: Request) -> int | None:
    try:
        return read_unsubscribe_token(tokens_of(request), request.path_params["token"])
    except (TokenError, TypeError, ValueError):
        return None


def _bad_link(request: Request) -> Response:
    return render(request, "newsletter/link_problem.html", {"gone": False}, status_code=400)


async def preferences(request: Request, *, chosen: list[str] | None = None, errors: dict[str, str] | None = None,
                      status_code: int = 200) -> Response:
    """The preference centre; with `errors`, the topics as sent (`chosen`) and what is wrong with them."""
    subscriber_id = _subscriber_id(request)
    if subscriber_id is None:
        return _bad_link(request)
    sub = await queries.get_subscriber(get_session(request), subscriber_id=subscriber_id)
    if sub is None:
        return render(request, "newsletter/link_problem.html", {"gone": True}, status_code=404)
    _use_subscriber_language(request, sub)
    ctx = {"masked": flows.mask_email(sub.email), "status": sub.status,
           "chosen": sub.topics if chosen is None else chosen, "errors": errors or {},
           "saved": request.query_params.get("saved") == "1" and not errors, "token": request.path_params["token"],
           "consent_text": flows.consent_text(brand_of(request).name)}
    return render(request, "newsletter/preferences.html", ctx, status_code=status_code)


async def unsubscribe(request: Request) -> Response:
    """RFC 8058 one-click (a mailbox provider's POST: no cookie, no page) or the page's button."""
    subscriber_id = _subscriber_id(request)
    form = await _safe_form(request)
    from_page = form.get("from_page") == "1"
    if subscriber_id is None:
        if from_page:
            return _bad_link(request)
        return PlainTextResponse(gettext("This unsubscribe link is not valid.") + "\n", status_code=400)
    found = await flows.unsubscribe_subscriber(get_session(request), subscriber_id=subscriber_id,
                                               source="page" if from_page else "one-click")
    _use_subscriber_language(request, await queries.get_subscriber(get_session(request), subscriber_id=subscriber_id))
    if not from_page:
        return PlainTextResponse(gettext("You have been unsubscribed.") + "\n")
    return render(request, "newsletter/unsubscribed.html", {"found": found, "token": request.path_params["token"],
                                                            "consent_text": flows.consent_text(brand_of(request).name)})


async def preview_preferences(request: Request) -> Response:
    """The preference centre as a test send's links show it: a sample subscriber, and buttons
    that change nothing (a POST, such as a mailbox provider's one-click, answers the same)."""
    try:
        read_preview_token(tokens_of(request), request.path_params["token"])
    except (TokenError, TypeError, ValueError):
        return _bad_link(request)
    settings = settings_of(request)
    ctx = {"masked": "you@example.org", "status": "confirmed", "chosen": list(settings.topics), "saved": False,
           "token": request.path_params["token"], "consent_text": flows.consent_text(brand_of(request).name),
           "preview": True,
           "tried": request.method == "POST"}
    return render(request, "newsletter/preferences.html", ctx)


async def save_preferences(request: Request) -> Response:
    subscriber_id = _subscriber_id(request)
    if subscriber_id is None:
        return _bad_link(request)
    form = await _safe_form(request)
    topics = [str(t) for t in form.getlist("topics")]
    if any(t not in settings_of(request).topics for t in topics):  # a changed form: refused, nothing saved
        return await preferences(request, chosen=[t for t in topics if t in settings_of(request).topics],
                                 errors={"topics": gettext("Please choose topics from the list")}, status_code=422)
    found = await flows.update_preferences(get_session(request), settings=settings_of(request),
                                           subscriber_id=subscriber_id, topics=topics)
    if not found:
        return render(request, "newsletter/link_problem.html", {"gone": True}, status_code=404)
    return RedirectResponse(f"/unsubscribe/{request.path_params['token']}?saved=1", status_code=303)


async def resubscribe(request: Request) -> Response:
    """Changed their mind after unsubscribing: a fresh double opt-in for the same address."""
    subscriber_id = _subscriber_id(request)
    if subscriber_id is None:
        return _bad_link(request)
    sub = await queries.get_subscriber(get_session(request), subscriber_id=subscriber_id)
    if sub is None:
        return render(request, "newsletter/link_problem.html", {"gone": True}, status_code=404)
    _use_subscriber_language(request, sub)
    await _subscribe(request, {"email": sub.email, "name": sub.name, "topics": None, "source": "resubscribe"})
    return _thanks(request)


# -- helpers ---------------------------------------------------------------------------------


async def _safe_form(request: Request) -> FormData:
    """The form body, or an empty one when the body is not a form (one-click must not fail)."""
    try:
        return await request.form()
    except Exception:
        return FormData()


routes = [
    Route("/subscribe", subscribe_page, methods=["GET", "POST"]),
    Route("/subscribe/thanks", subscribe_thanks, methods=["GET"]),
    Route("/subscribe/resend", resend, methods=["POST"]),
    Route("/api/subscriptions", api_subscriptions, methods=["GET", "POST", "OPTIONS"],
          middleware=[Middleware(ApiCorsMiddleware)]),
    Route("/confirm/{token}", confirm, methods=["GET", "POST"]),
    Route("/unsubscribe/{token}", preferences, methods=["GET"]),
    Route("/preview/unsubscribe/{token}", preview_preferences, methods=["GET", "HEAD", "POST"]),
    Route("/unsubscribe/{token}", unsubscribe, methods=["POST"]),
    Route("/unsubscribe/{token}/preferences", save_preferences, methods=["POST"]),
    Route("/unsubscribe/{token}/resubscribe", resubscribe, methods=["POST"]),
]
