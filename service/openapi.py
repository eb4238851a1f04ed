"""The OpenAPI 3 description of the public JSON API, served at GET /api/openapi.json.

One registry, `OPERATIONS`, declares each JSON endpoint: its request body, its answers and
their bodies. `openapi_document(routes)` walks the app's routes and emits every /api route from
the registry, so a new /api route without a declaration here fails tests/test_openapi.py (and
the document's URL) instead of silently going undocumented. OPTIONS (CORS preflight) and
HEAD are left out: browsers send those, API clients do not.

Every 4xx and 5xx answer of /api has a JSON body: `{"error": "one sentence"}`, or, when fields
are wrong, `{"errors": {"field": "what is wrong"}}` (service/web.py error_response and the
domain handlers).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from service.admin.brand_web import brand_of
from service.api.openapi import V1_COMPONENTS, V1_OPERATIONS

OPENAPI_PATH = "/api/openapi.json"

_STR = {"type": "string"}
_ERROR = {"$ref": "#/components/schemas/Error"}
_FIELD_ERRORS = {"$ref": "#/components/schemas/FieldErrors"}
_ANY_ERROR = {"$ref": "#/components/schemas/AnyError"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}

# Answers any /api route may give: a body over MAX_BODY_BYTES, and the database being away.
_COMMON = {
    "413": _json(_ERROR, "The body is larger than MAX_BODY_BYTES."),
    "503": _json(_ERROR, "The database is briefly unavailable; nothing was stored.", _RETRY_AFTER),
}
_FORM_TOKEN_FIELD = {"type": "string", "description": "From GET /api/form-token (inquiries) or "
                                                     "GET /api/subscriptions (newsletter); signed and timed."}
_HONEYPOT = {"type": "string", "description": "Leave empty: a filled-in value marks the submission as automated "
                                            "(it is held for review, not sent on)."}
_RECEIPT = {"type": "string", "pattern": "^[A-Za-z0-9_-]{22}$",
            "description": "An opaque receipt, fresh for every answer (a duplicate gets a new one too)."}

_LANG = {"type": "string", "description": "the language of the answer and of the emails that follow: a shipped "
                                          "language (en, de; de-DE counts as de), else LANGUAGE"}

INQUIRY_REQUEST = {
    "type": "object",
    "required": ["name", "email", "topic", "message", "consent", "form_token"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "email": {"type": "string", "format": "email"},
        "phone": {"type": "string"},
        "topic": {"type": "string", "description": "one of TOPICS"},  # the enum is filled in from TOPICS
        "contact_method": {"type": "string", "enum": ["email", "phone", "either"]},
        "message": {"type": "string", "minLength": 1},
        "consent": {"type": "boolean", "enum": [True],
                    "description": "consent to be contacted about the inquiry (the form's 'yes', 'on', '1' work too)"},
        "newsletter": {"anyOf": [{"type": "boolean"}, {"type": "string"}]},
        "form_token": _FORM_TOKEN_FIELD,
        "website": _HONEYPOT,
        "lang": _LANG,
        **{f: {"type": "string"} for f in ("source_page", "referrer", "utm_source", "utm_medium", "utm_campaign",
                                          "utm_term", "utm_content")},
    },
}

SUBSCRIPTION_REQUEST = {
    "type": "object",
    "required": ["email", "form_token"],
    "properties": {
        "email": {"type": "string", "format": "email"},
        "name": {"type": "string", "maxLength": 200},
        "topics": {"type": "array", "items": _STR, "description": "topics from TOPICS (one topic as a string works "
                                                                 "too)"},
        "form_token": _FORM_TOKEN_FIELD,
        "website": _HONEYPOT,
        "lang": _LANG,
        "source_page": {"type": "string", "description": "the page the signup form is on (an http(s) URL; "
                                                          "the admin's content report counts signups by it)"},
    },
}

_WEBHOOK_EVENT = {
    "type": "object",
    "required": ["id", "type", "recipient"],
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 190,
               "description": "Your event id: the same id twice is recorded once."},
        "type": {"type": "string", "enum": ["hard", "soft", "complaint"]},
        "recipient": {"type": "string", "format": "email"},
        "occurred_at": {"type": "string", "format": "date-time", "description": "With a zone; default: now."},
        "status": {"type": "string", "maxLength": 16, "description": "An enhanced status code such as 5.1.1."},
        "diagnostic": {"type": "string", "description": "What the receiving server said (one line is kept)."},
        "message_id": {"type": "string", "description": "The Message-ID of our message, to match the campaign."},
        "return_path": {"type": "string", "description": "The envelope sender of our message (our VERP address)."},
    },
}
GENERIC_WEBHOOK = {
    "oneOf": [
        {"type": "object", "required": ["events"], "properties": {
            "events": {"type": "array", "minItems": 1, "maxItems": 1000, "items": _WEBHOOK_EVENT}}},
        _WEBHOOK_EVENT,
    ],
}
_SIGNATURE_HEADER = {"name": "X-Tidings-Signature", "in": "header", "required": True, "schema": {
    "type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
    "description": "sha256= and the hex HMAC-SHA256 of the raw body, keyed with WEBHOOK_SECRET."}
# Routes outside /api that are part of the documented API.
DOCUMENTED_ELSEWHERE = ("/webhooks/generic",)

# (path, method) -> the operation object, minus what every operation shares.
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("/api/inquiries", "post"): {
        "operationId": "createInquiry",
        "summary": "Send an inquiry (the contact form's JSON twin for the blog's script)",
        "requestBody": {"required": True, "content": {"application/json": {"schema": INQUIRY_REQUEST}}},
        "responses": {
            "201": _json({"type": "object", "required": ["id"], "properties": {"id": _RECEIPT}},
                         "Received: stored (held for review when it looked automated), or a duplicate of one "
                         "stored moments ago. The answer is the same in every case."),
            "400": _json(_ERROR, "The body is not a JSON object of fields in valid UTF-8 (or is nested too "
                                 "deeply)."),
            "415": _json(_ERROR, "Content-Type is not application/json."),
            "422": _json(_FIELD_ERRORS, "Fields are missing or wrong, or the form token expired."),
            "429": _json(_ERROR, "Too many inquiries from this address.", _RETRY_AFTER),
        },
    },
    ("/api/form-token", "get"): {
        "operationId": "getFormToken",
        "summary": "A fresh form token for POST /api/inquiries",
        "responses": {
            "200": _json({"type": "object", "required": ["form_token"], "properties": {"form_token": _STR}},
                         "A token; not cacheable."),
        },
    },
    ("/api/subscriptions", "get"): {
        "operationId": "getSubscriptionForm",
        "summary": "What a blog script needs to show the signup form",
        "responses": {
            "200": _json({"type": "object", "required": ["form_token", "consent_text", "topics"], "properties": {
                "form_token": _STR, "consent_text": _STR, "topics": {"type": "array", "items": _STR}}},
                "A form token, the consent text to show, and the topics to offer."),
        },
    },
    ("/api/subscriptions", "post"): {
        "operationId": "subscribe",
        "summary": "Sign up for the newsletter (double opt-in: a confirmation email follows)",
        "requestBody": {"required": True, "content": {"application/json": {"schema": SUBSCRIPTION_REQUEST}}},
        "responses": {
            "202": _json({"type": "object", "required": ["message"], "properties": {"message": _STR}},
                         "Accepted; the same answer whether or not the address was known."),
            "400": _json(_ERROR, "The body is not a JSON object of fields in valid UTF-8 (or is nested too "
                                 "deeply)."),
            "415": _json(_ERROR, "Content-Type is not application/json."),
            "422": _json(_FIELD_ERRORS, "Fields are missing or wrong, or the form token expired."),
            "429": _json(_ANY_ERROR, "Too many signups from this address."),
        },
    },
    ("/webhooks/generic", "post"): {
        "operationId": "reportBounces",
        "summary": "Report bounces and complaints from your own relay or script (signed with WEBHOOK_SECRET)",
        "parameters": [_SIGNATURE_HEADER],
        "requestBody": {"required": True, "content": {"application/json": {"schema": GENERIC_WEBHOOK}}},
        "responses": {
            "200": _json({"type": "object", "required": ["events", "outcomes"], "properties": {
                "events": {"type": "integer"},
                "outcomes": {"type": "object", "additionalProperties": {"type": "integer"},
                             "description": "How many events did what: suppressed, counted, unsubscribed, "
                                            "recorded, flagged, duplicate, rejected."}}},
                "Every event checked and recorded (or found recorded before)."),
            "400": _json(_ERROR, "The body is not JSON."),
            "401": _json(_ERROR, "X-Tidings-Signature is missing."),
            "403": _json(_ERROR, "X-Tidings-Signature does not match the body; nothing was recorded."),
            "404": _json(_ERROR, "WEBHOOK_SECRET is not set: the webhook is off."),
            "422": _json(_ERROR, "An event is wrong (the message names it); nothing was recorded."),
        },
    },
    (OPENAPI_PATH, "get"): {
        "operationId": "getOpenApi",
        "summary": "This document",
        "responses": {"200": _json({"type": "object"}, "The OpenAPI 3 description of the JSON API.")},
    },
    **V1_OPERATIONS,  # the admin API (service/api/openapi.py)
}
_V1_ERROR = {"$ref": "#/components/schemas/ApiError"}
_V1_COMMON = {
    "413": _json(_V1_ERROR, "The body is larger than MAX_BODY_BYTES."),
    "503": _json(_V1_ERROR, "The database is briefly unavailable; nothing was changed.", _RETRY_AFTER),
}

COMPONENTS = {
    "schemas": {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": _STR}},
        "FieldErrors": {"type": "object", "required": ["errors"], "properties": {
            "errors": {"type": "object", "additionalProperties": _STR}}},
        "AnyError": {"anyOf": [_ERROR, _FIELD_ERRORS]},
        **V1_COMPONENTS["schemas"],
    },
    "securitySchemes": V1_COMPONENTS["securitySchemes"],
}

_IGNORED_METHODS = {"HEAD", "OPTIONS"}
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")  # "{inquiry_id:int}" is "{inquiry_id}" in the document


def api_operations(routes: Iterable[BaseRoute], prefix: str = "") -> list[tuple[str, str]]:
    """(path, method) of every /api route of the app, in route order."""
    found: list[tuple[str, str]] = []
    for route in routes:
        if isinstance(route, Mount):
            found += api_operations(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            path = _CONVERTOR.sub(r"{\1}", prefix + route.path)
            if path.startswith("/api/") or path in DOCUMENTED_ELSEWHERE:
                found += [(path, m.lower()) for m in sorted(route.methods or ()) if m not in _IGNORED_METHODS]
    return found


class UndocumentedRoute(LookupError):
    pass


def openapi_document(routes: Iterable[BaseRoute], *, title: str = "Tidings", server_url: str = "/",
                     topics: Iterable[str] = ()) -> dict[str, Any]:
    """The document for these routes (with this installation's TOPICS as enums); raises
    UndocumentedRoute for an /api route not in OPERATIONS."""
    paths: dict[str, dict[str, Any]] = {}
    for path, method in api_operations(routes):
        operation = OPERATIONS.get((path, method))
        if operation is None:
            raise UndocumentedRoute(f"{method.upper()} {path} has no entry in service/openapi.py OPERATIONS")
        common = _V1_COMMON if path.startswith("/api/v1/") else _COMMON
        paths.setdefault(path, {})[method] = {**operation, "responses": {**operation["responses"], **common}}
    topics = list(topics)
    if topics:
        paths = json.loads(json.dumps(paths))  # a copy: the registry stays as declared
        inquiry = paths.get("/api/inquiries", {}).get("post")
        if inquiry:
            inquiry["requestBody"]["content"]["application/json"]["schema"]["properties"]["topic"]["enum"] = topics
        signup = paths.get("/api/subscriptions", {}).get("post")
        if signup:
            signup["requestBody"]["content"]["application/json"]["schema"]["properties"]["topics"]["items"] = {
                "type": "string", "enum": topics}
    return {
        "openapi": "3.0.3",
        "info": {"title": f"{title} JSON API", "version": "1",
                 "description": "Inquiries and newsletter signups from the blog, and the generic bounce "
                                "webhook. Errors are JSON: "
                                "{\"error\": \"…\"} or {\"errors\": {\"field\": \"…\"}}. "
                                "The admin API (/api/v1, a bearer token) answers errors as "
                                "{\"error\": {\"code\": \"…\", \"message\": \"…\", \"field\": …}} "
                                "and pages lists by cursor (docs/api.md)."},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": COMPONENTS,
    }


async def openapi_json(request: Request) -> Response:
    document = getattr(request.app.state, "openapi_document", None)
    if document is None:
        settings = request.app.state.settings
        document = openapi_document(request.app.routes, title=settings.org_name, topics=settings.topics)
        request.app.state.openapi_document = document
    # the title is the brand's name in force (admins may change it at run time)
    document = {**document, "info": {**document["info"], "title": f"{brand_of(request).name} JSON API"}}
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=300"})


route = Route(OPENAPI_PATH, openapi_json, methods=["GET"], name="api_openapi")
