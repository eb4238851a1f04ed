"""The OpenAPI document of the JSON API (GET /api/openapi.json) covers every /api route, and
schemathesis fuzzes each operation from it against the real app and database: positive and
negative cases (wrong types, missing fields, bodies that break the schema), half of them with a
real form token so that validation and storing run too. No answer is a 5xx; every answer
matches the document (status, content type, headers, body schema); every 4xx is a JSON error
body. Derandomized (fixed examples per run), bounded, on both databases."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from starlette.routing import Route

from service.app import create_app, domain_routes
from service.openapi import OPENAPI_PATH, UndocumentedRoute, api_operations, openapi_document
from service.settings import RateLimit, Settings
from tests.conftest import Database

DOCUMENT = openapi_document(domain_routes(), title=Settings().org_name, topics=Settings().topics)
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
# The admin API (/api/v1) needs a token and has its own error shape: tests/api/test_fuzz.py fuzzes it.
LABELS = [f"{m.upper()} {p}" for p, m in api_operations(domain_routes()) if not p.startswith("/api/v1/")]
# Negative cases need something to break: only the operations that take a body get them.
TAKES_BODY = {f"{m.upper()} {p}" for p, ops in DOCUMENT["paths"].items()
              for m, op in ops.items() if "requestBody" in op}
RUNS = [pytest.param(label, mode, id=f"{label}-{mode.value}") for label in LABELS
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if mode is GenerationMode.POSITIVE or label in TAKES_BODY]
load_all_checks()
CHECK_NAMES = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
               "response_headers_conformance", "response_schema_conformance")
CHECKS_RUN = [CHECKS.get_one(name) for name in CHECK_NAMES]


@pytest.fixture
def settings_(settings: Settings) -> Settings:
    # the generic bounce webhook on: fuzzed requests reach its signature check (none can pass it)
    return settings.with_(form_rate_limit=RateLimit(100_000, 600), webhook_secret="fuzz-webhook-secret-" + "x" * 20)


@pytest.fixture
async def api(settings_: Settings, db: Database) -> httpx.AsyncClient:
    app = create_app(settings_, sessions=db.sessions)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c  # type: ignore[misc]


async def test_the_document_lists_every_json_route_and_is_served(api: httpx.AsyncClient) -> None:
    r = await api.get(OPENAPI_PATH)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    served = r.json()
    assert served == DOCUMENT  # what the fuzzing below works from
    assert served["openapi"].startswith("3.")
    assert {(p, m) for p, ops in served["paths"].items() for m in ops} == set(api_operations(domain_routes()))
    assert {"/api/inquiries", "/api/form-token", "/api/subscriptions", OPENAPI_PATH} <= set(served["paths"])
    for path, ops in served["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if status.startswith(("4", "5")):
                    assert "application/json" in answer["content"], (method, path, status)


def test_an_api_route_missing_from_the_registry_is_an_error() -> None:
    async def endpoint(request: object) -> None:
        raise AssertionError

    with pytest.raises(UndocumentedRoute, match="POST /api/new-thing"):
        openapi_document([*domain_routes(), Route("/api/new-thing", endpoint, methods=["POST"])])


FUZZ = settings(max_examples=80, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.mark.slow  # hundreds of fuzzed requests per operation
@pytest.mark.parametrize(("label", "mode"), RUNS)
@FUZZ
@given(data=st.data())
async def test_fuzzed_requests_never_get_a_5xx_and_every_4xx_is_a_json_error(
    api: httpx.AsyncClient, label: str, mode: GenerationMode, data: st.DataObject
) -> None:
    operation = SCHEMA.find_operation_by_label(label)
    assert operation is not None
    case = data.draw(operation.as_strategy(generation_mode=mode))
    if isinstance(case.body, dict) and data.draw(st.booleans(), label="real form token"):
        path = "/api/form-token" if "inquiries" in label else "/api/subscriptions"
        case.body["form_token"] = (await api.get(path)).json()["form_token"]
        case.body["website"] = ""  # the honeypot: a value here holds the submission for review
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    if "json" in kwargs or kwargs.get("data") is not None:
        wrong_type = data.draw(st.sampled_from([None] * 6 + ["text/plain", "application/x-www-form-urlencoded"]),
                               label="content type")
        if wrong_type:
            kwargs["headers"] = {**(kwargs.get("headers") or {}), "Content-Type": wrong_type}
    request = {k: kwargs[k] for k in ("method", "url", "headers", "params") if kwargs.get(k) is not None}
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        body = kwargs["data"]
        request["content"] = body if isinstance(body, bytes | str) else httpx.QueryParams(body).__str__()
    api.cookies.clear()
    api.cookies.update(kwargs.get("cookies") or {})
    response = await api.request(**request)
    event(f"{response.status_code}")
    assert response.status_code < 500, (response.status_code, response.text, case.as_curl_command())
    if 400 <= response.status_code < 500:
        assert response.headers.get("content-type", "").startswith("application/json"), response.text
        body = response.json()
        assert isinstance(body, dict) and (isinstance(body.get("error"), str) or isinstance(body.get("errors"), dict))
    case.validate_response(response, checks=CHECKS_RUN)


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/api/no-such-thing", 404), ("DELETE", "/api/inquiries", 405), ("PUT", "/api/subscriptions", 405),
    ("POST", "/api/form-token", 405), ("POST", OPENAPI_PATH, 405),
])
async def test_unknown_api_paths_and_methods_answer_json_errors(
    api: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    r = await api.request(method, path)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/json") and isinstance(r.json()["error"], str)
