"""The admin API's one error shape, `{"error": {"code", "message", "field"}}`: here, apart
from the API's routes, because `service.web.error_response` answers with it too (404, 405, 413,
503 under /api/v1) and must not import the API."""

from __future__ import annotations

from typing import Any

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 410: "gone", 413: "too_large", 415: "unsupported_media_type", 422: "invalid",
         429: "rate_limited", 500: "server_error", 503: "unavailable"}


def api_error_body(status: int, message: str, *, code: str | None = None, field: str | None = None
                   ) -> dict[str, Any]:
    return {"error": {"code": code or CODES.get(status, "error"), "message": message, "field": field}}
