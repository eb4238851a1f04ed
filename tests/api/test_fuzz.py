"""schemathesis over the admin API (/api/v1) with a token of every scope, from the served
OpenAPI document: positive and negative cases against the real app and database, with a few
records in place so that some fuzzed ids exist. No answer is a 5xx; every answer matches the
document (status, content type, body schema); every 4xx is the one error shape. Derandomized,
bounded, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks

from service.app import create_app, domain_routes
from service.openapi import openapi_document
from service.settings import RateLimit, Settings
from tests.api.conftest import api_client, make_token
from tests.conftest import Database
from tests.factories import add_inquiries, add_subscriber, inquiry_row, make_campaign, make_staff

DOCUMENT = openapi_document(domain_routes(), title=Settings().org_name, topics=Settings().topics)
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
V1 = {f"{m.upper()} {p}": op for p, ops in DOCUMENT["paths"].items() if p.startswith("/api/v1/")
      for m, op in ops.items()}
RUNS = [pytest.param(label, mode, id=f"{label}-{mode.value}") for label, op in V1.items()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if mode is GenerationMode.POSITIVE or "requestBody" in op or "parameters" in op]
load_all_checks()
CHECKS_RUN = [CHECKS.get_one(name) for name in ("not_a_server_error", "status_code_conformance",
                                                "content_type_conformance", "response_schema_conformance")]
FUZZ = settings(max_examples=40, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.fixture
async def api(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.with_(api_rate_limit=RateLimit(1_000_000, 60)), sessions=db.sessions)
    admin = await make_staff(db)
    raw = await make_token(db, admin)
    await add_inquiries(db, [inquiry_row(i) for i in range(3)])
    for i in range(3):
        await add_subscriber(db, f"reader{i}@example.org")
    await make_campaign(db, settings, start=False)
    async with api_client(app, raw) as c:
        yield c


@pytest.mark.slow  # hundreds of fuzzed requests per operation
@pytest.mark.parametrize(("label", "mode"), RUNS)
@FUZZ
@given(data=st.data())
async def test_fuzzed_admin_api_calls_never_get_a_5xx(api: httpx.AsyncClient, label: str, mode: GenerationMode,
                                                      data: st.DataObject) -> None:
    operation = SCHEMA.find_operation_by_label(label)
    assert operation is not None
    case = data.draw(operation.as_strategy(generation_mode=mode))
    kwargs: dict[str, Any] = case.as_transport_kwargs(base_url="http://testserver")
    request = {k: kwargs[k] for k in ("method", "url", "params") if kwargs.get(k) is not None}
    headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() != "authorization"}
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        body = kwargs["data"]
        request["content"] = body if isinstance(body, bytes | str) else str(httpx.QueryParams(body))
    response = await api.request(**request, headers=headers)
    event(f"{response.status_code}")
    assert response.status_code < 500, (response.status_code, response.text, case.as_curl_command())
    if 400 <= response.status_code < 500:
        error = response.json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)
    case.validate_response(response, checks=CHECKS_RUN)
