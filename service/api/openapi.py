"""The admin API's part of the OpenAPI document (service/openapi.py merges `V1_OPERATIONS` and
`V1_COMPONENTS` into the one document served at /api/openapi.json). Every operation needs a
bearer token (`bearerAuth`) with the scope named in its description; errors are the one shape
`ApiError`."""

from __future__ import annotations

from typing import Any

from service.admin.apitokens import LEVELS, RESOURCES

P = "/api/v1"
_STR = {"type": "string"}
_NSTR = {"type": "string", "nullable": True}
_TIME = {"type": "string", "format": "date-time", "nullable": True}
_ERR = {"$ref": "#/components/schemas/ApiError"}
_OBJ = {"type": "object"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def _page(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["data", "next_cursor"], "properties": {
        "data": {"type": "array", "items": item}, "next_cursor": {**_NSTR, "description": "Pass as `cursor` for "
                                                                   "the next page; null on the last."}}}


_RETRY = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
_ALWAYS = {
    "401": _json(_ERR, "No token, or one that is unknown, expired or revoked (code says which).",
                 {"WWW-Authenticate": {"schema": _STR, "description": "Bearer"}}),
    "403": _json(_ERR, "The token lacks the scope (insufficient_scope), or the action is admin-only (admin_only)."),
    "429": _json(_ERR, "Over API_RATE_LIMIT for this token.", _RETRY),
}
_ID = {"type": "integer", "minimum": 1}
_LIMIT = {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1,
                                                                          "maximum": 200, "default": 50}}
_CURSOR = {"name": "cursor", "in": "query", "required": False, "schema": _STR,
           "description": "next_cursor of the page before (opaque)."}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _ID}


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _body(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {"required": True, "content": {media: {"schema": schema}}}


def op(op_id: str, summary: str, scope: str, answers: dict[str, Any], *, params: list[dict[str, Any]] | None = None,
       body: dict[str, Any] | None = None, admin: bool = False, tag: str = "") -> dict[str, Any]:
    described = f"Needs the scope `{scope}`{' and the admin role' if admin else ''}."
    operation: dict[str, Any] = {
        "operationId": op_id, "summary": summary, "description": described, "tags": [tag or scope.split(":")[0]],
        "security": [{"bearerAuth": []}], "responses": {**answers, **_ALWAYS}}
    if params:
        operation["parameters"] = params
    if body:
        operation["requestBody"] = body
        operation["responses"].setdefault("400", _json(_ERR, "The body is not a JSON object."))
        operation["responses"].setdefault("415", _json(_ERR, "Wrong Content-Type."))
    return operation


_INQUIRY_FIELDS: dict[str, Any] = {
    "id": {"type": "integer"}, "created_at": _TIME, "status": _STR, "status_changed_at": _TIME, "name": _STR,
    "email": _STR, "topic": _STR, "contact_method": _STR}
_INQUIRY = {"type": "object", "required": ["id", "status"], "properties": _INQUIRY_FIELDS}
_EVENT = {"type": "object", "properties": {"id": {"type": "integer"}, "created_at": _TIME, "kind": _STR,
                                           "from_status": _NSTR, "to_status": _NSTR, "note": _NSTR, "by": _NSTR}}
_INQUIRY_FULL = {"type": "object", "required": ["id", "message", "events"], "properties": {
    **_INQUIRY_FIELDS, "message": _STR, "phone": _STR, "events": {"type": "array", "items": _EVENT}}}
_SUBSCRIBER = {"type": "object", "required": ["id", "email", "status"], "properties": {
    "id": {"type": "integer"}, "email": _STR, "name": _STR, "status": _STR, "topics": {"type": "array",
                                                                                       "items": _STR},
    "created_at": _TIME, "status_changed_at": _TIME, "consent": _OBJ}}
_CAMPAIGN = {"type": "object", "required": ["id", "subject", "status"], "properties": {
    "id": {"type": "integer"}, "subject": _STR, "preheader": _STR, "intro": _STR, "body": _STR, "status": _STR,
    "audience_topics": {"type": "array", "items": _STR}, "article_ids": {"type": "array",
                                                                         "items": {"type": "integer"}},
    "scheduled_at": _TIME, "created_at": _TIME, "started_at": _TIME, "sent_at": _TIME}}
_ARTICLE = {"type": "object", "required": ["id", "title"], "properties": {
    "id": {"type": "integer"}, "title": _STR, "link": _STR, "summary": _STR, "published_at": _TIME,
    "topics": {"type": "array", "items": _STR}}}
_TOKEN = {"type": "object", "required": ["id", "name", "prefix", "scopes", "status"], "properties": {
    "id": {"type": "integer"}, "name": _STR, "prefix": _STR, "owner": _STR, "scopes": {"type": "array",
                                                                                        "items": _STR},
    "created_at": _TIME, "expires_at": _TIME, "last_used_at": _TIME, "revoked_at": _TIME, "status": _STR}}

_404 = {"404": _json(_ERR, "No such record.")}
_422 = {"422": _json(_ERR, "A field is wrong (error.field names it); nothing was changed.")}
_409 = {"409": _json(_ERR, "Not possible in the record's state; nothing was changed.")}
_FILTER_400 = {"400": _json(_ERR, "The cursor is not one this list gave.")}

V1_OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    (f"{P}/inquiries", "get"): op(
        "listInquiries", "Inquiries, newest first, with the admin's filters and search (a search is audited)",
        "inquiries:read", {"200": _json(_page(_INQUIRY), "A page (no message texts)."), **_FILTER_400, **_422},
        params=[_query("status", _STR, "new, contacted, qualified, closed, spam or held"), _query("topic", _STR),
                _query("from", {"type": "string", "format": "date"}),
                _query("to", {"type": "string", "format": "date"}),
                _query("q", _STR, "words of the name, address or message; or an address"), _LIMIT, _CURSOR]),
    (f"{P}/inquiries/{{inquiry_id}}", "get"): op(
        "getInquiry", "One inquiry with its history (audited as inquiry_view: health data)", "inquiries:read",
        {"200": _json(_INQUIRY_FULL, "The inquiry."), **_404}, params=[_path("inquiry_id")]),
    (f"{P}/inquiries/{{inquiry_id}}/status", "post"): op(
        "setInquiryStatus", "Change an inquiry's status (audited as inquiry_status)", "inquiries:write",
        {"200": _json(_OBJ, "Done (changed: false when it already had it)."), **_404, **_409, **_422},
        params=[_path("inquiry_id")], body=_body({"type": "object", "required": ["status"], "properties": {
            "status": {"type": "string", "enum": ["new", "contacted", "qualified", "closed", "spam"]}}})),
    (f"{P}/inquiries/{{inquiry_id}}/notes", "post"): op(
        "addInquiryNote", "Add an internal note (audited as inquiry_note)", "inquiries:write",
        {"201": _json(_EVENT, "The note."), **_404, **_422}, params=[_path("inquiry_id")],
        body=_body({"type": "object", "required": ["note"], "properties": {"note": {"type": "string",
                                                                                    "minLength": 1}}})),
    (f"{P}/subscribers", "get"): op(
        "listSubscribers", "Subscribers, newest first, by status, topic and a search", "subscribers:read",
        {"200": _json(_page(_SUBSCRIBER), "A page."), **_FILTER_400, **_422},
        params=[_query("status", _STR), _query("topic", _STR), _query("q", _STR), _LIMIT, _CURSOR]),
    (f"{P}/subscribers", "post"): op(
        "createSubscriber", "Sign someone up: pending, and a confirmation email goes out (double opt-in)",
        "subscribers:write", {"202": _json(_SUBSCRIBER, "Recorded (a confirmed or suppressed address is left as "
                                                        "it is)."), **_422},
        body=_body({"type": "object", "required": ["email"], "properties": {
            "email": {"type": "string", "format": "email"}, "name": _STR,
            "topics": {"type": "array", "items": _STR}}})),
    (f"{P}/subscribers/import", "post"): op(
        "importSubscribers", "Import a CSV with consent evidence (signup_at, signup_ip, consent_text…), as the "
        "admin's import (audited as subscriber_import)", "subscribers:write",
        {"200": _json(_OBJ, "The import's report."), **_422},
        params=[_query("dry_run", {"type": "boolean"}), _query("send_confirmation", {"type": "boolean"}),
                _query("consented", {"type": "boolean"}, "you hold consent records for rows that carry none"),
                _query("from", _STR, "mailchimp, listmonk, ghost, substack or plain")],
        body=_body({"type": "string"}, "text/csv")),
    (f"{P}/subscribers/{{subscriber_id}}", "get"): op(
        "getSubscriber", "One subscriber with their consent evidence", "subscribers:read",
        {"200": _json(_SUBSCRIBER, "The subscriber."), **_404}, params=[_path("subscriber_id")]),
    (f"{P}/subscribers/{{subscriber_id}}/unsubscribe", "post"): op(
        "unsubscribeSubscriber", "Unsubscribe (audited as subscriber_unsubscribe)", "subscribers:write",
        {"200": _json(_SUBSCRIBER, "Unsubscribed."), **_404, **_409}, params=[_path("subscriber_id")]),
    (f"{P}/subscribers/{{subscriber_id}}/suppress", "post"): op(
        "suppressSubscriber", "Suppress: never mailed again (audited as subscriber_suppress)", "subscribers:write",
        {"200": _json(_SUBSCRIBER, "Suppressed."), **_404, **_409, **_422}, params=[_path("subscriber_id")],
        body=_body({"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string",
                                                                                        "minLength": 1}}})),
    (f"{P}/subscribers/{{subscriber_id}}/erase", "post"): op(
        "eraseSubscriber", "Erase on the person's request, confirmed with their address (audited as "
        "subscriber_erase, without it)", "subscribers:write", {"200": _json(_OBJ, "Erased."), **_404, **_422},
        params=[_path("subscriber_id")], body=_body({"type": "object", "required": ["confirm_email"],
                                                     "properties": {"confirm_email": _STR}})),
    (f"{P}/campaigns", "get"): op(
        "listCampaigns", "Campaigns, newest first", "campaigns:read",
        {"200": _json(_page(_CAMPAIGN), "A page."), **_FILTER_400, **_422}, params=[_LIMIT, _CURSOR]),
    (f"{P}/campaigns", "post"): op(
        "createCampaign", "Create a draft: a Markdown body, articles, or both (audited as campaign_create)",
        "campaigns:write", {"201": _json(_CAMPAIGN, "The draft."), **_422},
        body=_body({"type": "object", "required": ["subject"], "properties": {
            "subject": {"type": "string", "minLength": 1, "maxLength": 300}, "preheader": _STR, "intro": _STR,
            "body": _STR, "article_ids": {"type": "array", "items": {"type": "integer"}},
            "audience_topics": {"type": "array", "items": _STR}}})),
    (f"{P}/campaigns/{{campaign_id}}", "get"): op(
        "getCampaign", "One campaign", "campaigns:read", {"200": _json(_CAMPAIGN, "The campaign."), **_404},
        params=[_path("campaign_id")]),
    (f"{P}/campaigns/{{campaign_id}}/preview", "get"): op(
        "previewCampaign", "The campaign as a subscriber would get it", "campaigns:read",
        {"200": _json({"type": "object", "required": ["subject", "html", "text"], "properties": {
            "subject": _STR, "html": _STR, "text": _STR}}, "The rendered email."), **_404, **_422},
        params=[_path("campaign_id"), _query("email", _STR, "a subscriber's address (default: someone of "
                                                            "every topic)")]),
    (f"{P}/campaigns/{{campaign_id}}/schedule", "post"): op(
        "scheduleCampaign", "Schedule (audited as campaign_schedule)", "campaigns:write",
        {"200": _json(_CAMPAIGN, "Scheduled."), **_404, **_409, **_422}, params=[_path("campaign_id")],
        body=_body({"type": "object", "required": ["at"], "properties": {
            "at": {"type": "string", "format": "date-time", "description": "with a UTC offset"}}})),
    (f"{P}/campaigns/{{campaign_id}}/send", "post"): op(
        "sendCampaign", "Send now: queue the deliveries (audited as campaign_send)", "campaigns:write",
        {"200": _json(_CAMPAIGN, "Sending."), **_404, **_409}, params=[_path("campaign_id")]),
    (f"{P}/campaigns/{{campaign_id}}/pause", "post"): op(
        "pauseCampaign", "Pause a sending campaign (audited as campaign_pause)", "campaigns:write",
        {"200": _json(_CAMPAIGN, "Paused."), **_404, **_409}, params=[_path("campaign_id")]),
    (f"{P}/campaigns/{{campaign_id}}/stats", "get"): op(
        "campaignStats", "A campaign's figures: sent, failed, bounced, skipped, rate, ETA", "campaigns:read",
        {"200": _json(_OBJ, "The figures."), **_404}, params=[_path("campaign_id")]),
    (f"{P}/articles", "get"): op(
        "listArticles", "Imported articles, newest first", "campaigns:read",
        {"200": _json(_page(_ARTICLE), "A page."), **_FILTER_400, **_422}, params=[_LIMIT, _CURSOR],
        tag="articles"),
    (f"{P}/articles/import", "post"): op(
        "importArticles", "Import FEED_URL now (audited as articles_import)", "campaigns:write",
        {"200": _json(_OBJ, "Counts of new, updated, unchanged."), **_409, **_422}, tag="articles"),
    (f"{P}/tokens", "get"): op(
        "listTokens", "Your tokens", "tokens:read", {"200": _json(_page(_TOKEN), "Every one of yours.")}),
    (f"{P}/tokens/all", "get"): op(
        "listAllTokens", "Everyone's tokens", "tokens:read", {"200": _json(_page(_TOKEN), "Every token.")},
        admin=True),
    (f"{P}/tokens/{{token_id}}/revoke", "post"): op(
        "revokeToken", "Revoke a token of yours (an admin: anyone's; audited as api_token_revoke)", "tokens:write",
        {"200": _json(_TOKEN, "Revoked (or already was)."), **_404}, params=[_path("token_id")]),
}

V1_COMPONENTS: dict[str, Any] = {
    "securitySchemes": {"bearerAuth": {
        "type": "http", "scheme": "bearer", "bearerFormat": "tdg_ and 43 characters",
        "description": "A personal access token from /admin/tokens. Scopes: "
                       + ", ".join(f"{r}:{lv}" for r in RESOURCES for lv in LEVELS)
                       + " (write includes read; articles come with campaigns)."}},
    "schemas": {"ApiError": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message", "field"], "properties": {
            "code": _STR, "message": _STR, "field": {**_NSTR, "description": "the field or parameter at fault"}}}}}},
}
