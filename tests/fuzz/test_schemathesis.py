"""schemathesis against ``/openapi.json``, in-process over WSGI: requests generated from the
document (valid and invalid ones) never make a server error, and every answer conforms to the
document (status, content type, envelope or problem schema, known error code); webservice.php
and the REST session API both."""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fuzz.conftest import EXAMPLES, report
from tests.fuzz.world import World, assert_clean_logs

WORLD = World({"HIDE_UNKNOWN_USERS": True})
schema = schemathesis.openapi.from_wsgi("/openapi.json", WORLD.app)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module", autouse=True)
def captured_logs():
    with WORLD.capturing_logs():
        yield


@schema.parametrize()
@settings(max_examples=max(10, EXAMPLES // 12))
def test_openapi_document_and_endpoint_agree(case):
    counts = report("schemathesis")
    WORLD.refresh(reset_limits=True)
    WORLD.logs.take()
    response = case.call()
    case.validate_response(response, checks=CHECKS)
    assert_clean_logs(WORLD.logs.take())
    body = json.loads(response.text) if response.content else None
    if body is not None:
        assert body.get("error", {}).get("code") != "INTERNAL_SERVER_ERROR", body
    counts["cases"] += 1
    if case.path.startswith("/v1/"):
        # The REST session API answers with HTTP statuses (problem details for errors).
        counts[f"{case.method} {case.path} {response.status_code}"] += 1
        return
    label = "ok" if body and body["success"] else (body or {}).get("error", {}).get("code", "HEAD")
    counts[f"{case.method} {label}"] += 1
