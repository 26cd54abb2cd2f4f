"""``/openapi.json``: generated from the operation registry, so it cannot drift from it."""

from __future__ import annotations

import json

import pytest

from tests.unit.conftest import gateway_of
from tests.unit.support import TEST_OPERATIONS
from tests.unit.test_plugins import example_site, on_path  # noqa: F401 (fixtures)
from webservice.api.errors import ErrorCode
from webservice.api.openapi import (
    ERROR_MEANINGS,
    SESSION_ID_PATTERN,
    build_document,
    error_codes,
    schema_name,
)

#: What each marshmallow field class of webservice.api.params looks like in the document.
EXPECTED_TYPES = {
    "string": {"type": "string"},
    "boolean": {"type": "boolean"},
    "double": {"type": "number"},
    "datetime": {"type": "string", "format": "date-time"},
    "encoded": {},
}


def document_of(app) -> dict:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return json.loads(response.get_data(as_text=True))


def assert_matches_registry(document: dict, registry) -> None:
    """Every operation of the registry, with exactly its parameters, and nothing else."""
    schemas = document["components"]["schemas"]
    names = [op.name for op in registry]
    assert names, "an empty registry"
    request = schemas["Request"]
    assert request["oneOf"] == [{"$ref": f"#/components/schemas/{schema_name(n)}"} for n in names]
    assert request["discriminator"]["propertyName"] == "operation"
    assert request["discriminator"]["mapping"] == {
        name: f"#/components/schemas/{schema_name(name)}" for name in names
    }
    documented = {key for key in schemas if key.startswith("Operation.")}
    assert documented == {schema_name(name) for name in names}
    listed = {entry["name"]: entry for entry in document["x-wsgate-operations"]}
    assert set(listed) == set(names)
    for op in registry:
        shape = schemas[schema_name(op.name)]
        assert shape["type"] == "object"
        properties = dict(shape["properties"])
        assert properties.pop("operation")["enum"] == [op.name]
        declared = op.describe_params()
        declared_names = [name for name, _, _ in declared]
        if op.needs_session and "sessionName" not in declared_names:
            assert properties.pop("sessionName")["pattern"] == SESSION_ID_PATTERN
        assert list(properties) == declared_names, op.name
        assert shape["required"] == ["operation"] + [n for n, _, required in declared if required]
        for name, kind, _ in declared:
            for key, value in EXPECTED_TYPES.get(kind, {}).items():
                assert properties[name].get(key) == value, (op.name, name, kind)
        assert shape["x-wsgate-operation"] == {
            "name": op.name, "method": op.method, "needsSession": op.needs_session,
        }
        assert listed[op.name] == {
            "name": op.name,
            "method": op.method,
            "needsSession": op.needs_session,
            "parameters": [{"name": n, "type": k, "required": r} for n, k, r in declared],
        }
        assert ("Needs a live session" in shape["description"]) == op.needs_session
        assert f"Method hint: {op.method}." in shape["description"]
        row = f"| `{op.name}` | {op.method} | {'yes' if op.needs_session else 'no'} |"
        assert row in document["info"]["description"]


def test_document_matches_the_builtin_registry(app, gateway):
    document = document_of(app)
    assert document["openapi"].startswith("3.1")
    assert_matches_registry(document, gateway.operations)
    assert {op.name for op in gateway.operations} >= {"getchallenge", "login", "logout"}


def test_test_operations_with_every_parameter_type_appear(make_app):
    app = make_app(extra_operations=TEST_OPERATIONS)
    document = document_of(app)
    assert_matches_registry(document, gateway_of(app).operations)
    typed = document["components"]["schemas"]["Operation.typed"]["properties"]
    assert typed["text"]["type"] == "string" and typed["text"]["minLength"] == 1
    assert typed["flag"]["type"] == "boolean"
    assert typed["amount"]["type"] == "number"
    assert typed["when"] == {"type": "string", "format": "date-time",
                             "description": "A `datetime` parameter (ISO 8601)."}
    assert "type" not in typed["payload"] and "JSON" in typed["payload"]["description"]


def test_plugins_from_entry_points_appear(example_site, on_path, make_app):  # noqa: F811
    on_path(example_site)
    app = make_app()
    document = document_of(app)
    assert_matches_registry(document, gateway_of(app).operations)
    echo = document["components"]["schemas"]["Operation.echo"]
    assert echo["required"] == ["operation", "text"]
    assert echo["x-wsgate-operation"]["needsSession"] is True


def test_every_error_code_is_documented_with_its_meaning(app):
    schemas = document_of(app)["components"]["schemas"]
    codes = [value for name, value in vars(ErrorCode).items() if name.isupper()]
    assert set(ERROR_MEANINGS) == set(codes)
    vtiger_only = {"INVALID_SESSIONID", "SESSION_EXPIRED", "SESSION_LEFT_IDLE"}
    assert error_codes() == [code for code in codes if code not in vtiger_only]
    assert set(error_codes("vtiger")) == set(codes)
    documented = schemas["ErrorCode"]["oneOf"]
    assert [entry["const"] for entry in documented] == error_codes()
    assert all(entry["description"] == ERROR_MEANINGS[entry["const"]] for entry in documented)
    failure = schemas["Failure"]["properties"]["error"]
    assert failure["required"] == ["message", "code"]
    assert failure["properties"]["code"] == {"$ref": "#/components/schemas/ErrorCode"}


def test_a_code_without_a_meaning_stops_the_document(monkeypatch, gateway):
    monkeypatch.setattr(ErrorCode, "NEW_CODE", "NEW_CODE", raising=False)
    with pytest.raises(LookupError, match="NEW_CODE"):
        build_document(gateway.operations, gateway.settings)


def test_envelope(app):
    schemas = document_of(app)["components"]["schemas"]
    assert schemas["Envelope"]["oneOf"] == [
        {"$ref": "#/components/schemas/Success"}, {"$ref": "#/components/schemas/Failure"}]
    assert schemas["Success"]["properties"]["success"] == {"const": True}
    assert schemas["Failure"]["properties"]["success"] == {"const": False}


@pytest.mark.parametrize("path", ["/webservice.php", "/webservice"])
def test_the_endpoint_is_one_path_with_get_and_post(app, path):
    item = document_of(app)["paths"][path]
    assert set(item) == {"summary", "get", "post"}
    query = item["get"]["parameters"][0]
    assert (query["in"], query["style"], query["explode"]) == ("query", "form", True)
    assert query["schema"] == {"$ref": "#/components/schemas/Request"}
    header = item["get"]["parameters"][1]
    assert (header["in"], header["name"]) == ("header", "corebos-authorization")
    content = item["post"]["requestBody"]["content"]
    assert set(content) == {
        "application/x-www-form-urlencoded", "multipart/form-data", "application/json"}
    assert all(body["schema"] == {"$ref": "#/components/schemas/Request"}
               for body in content.values())
    for method in ("get", "post"):
        responses = item[method]["responses"]
        assert set(responses) == {"200"}
        assert responses["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Envelope"}
    assert [p["operationId"] for p in (item["get"], item["post"])] == (
        ["webserviceGet", "webservicePost"] if path == "/webservice.php"
        else ["webserviceGet_alias", "webservicePost_alias"])


def test_security_schemes(make_app):
    schemes = document_of(make_app({"SESSION_COOKIE_NAME": "my_cookie"}))["components"][
        "securitySchemes"]
    assert schemes["coreBOSAuthorization"] == {**schemes["coreBOSAuthorization"],
                                               "in": "header", "name": "corebos-authorization"}
    assert schemes["webSession"]["name"] == "my_cookie"


def test_limits_are_stated(make_app):
    app = make_app({"MAX_PARAMETER_LENGTH": 1000, "MAX_FORM_PARTS": 7})
    document = document_of(app)
    assert "at most 7 parameters" in document["info"]["description"]
    assert "values of at most 1000" in document["info"]["description"]
    login = document["components"]["schemas"]["Operation.login"]["properties"]
    assert login["username"]["maxLength"] == 1000


def test_document_is_built_once_and_stays_the_same(app):
    client = app.test_client()
    first = client.get("/openapi.json").get_data()
    assert client.get("/openapi.json").get_data() == first


def test_document_loads_in_schemathesis(app):
    schemathesis = pytest.importorskip("schemathesis")
    schema = schemathesis.openapi.from_dict(document_of(app))
    labels = sorted(result.ok().label for result in schema.get_all_operations())
    assert labels == ["DELETE /v1/auth/session", "DELETE /v1/me/sessions",
                      "DELETE /v1/me/sessions/{id}", "GET /v1/me/sessions",
                      "GET /webservice", "GET /webservice.php", "POST /v1/auth/logout",
                      "POST /webservice", "POST /webservice.php"]


def test_validators_become_schema_keywords(make_app):
    from marshmallow import validate

    from webservice.api.params import Double, Params, String
    from webservice.api.registry import operation

    class Checked(Params):
        code = String(required=True, validate=validate.Length(min=2, max=5))
        kind = String(validate=validate.OneOf(["a", "b"]), metadata={"description": "The kind."})
        ratio = Double(validate=validate.Range(min=0, max=1, max_inclusive=False))
        mode = String(load_default="fast")

    @operation("checked", params=Checked, needs_session=False)
    def checked(context, params):
        return params

    app = make_app(extra_operations=(checked,))
    properties = document_of(app)["components"]["schemas"]["Operation.checked"]["properties"]
    assert (properties["code"]["minLength"], properties["code"]["maxLength"]) == (2, 5)
    assert properties["kind"]["enum"] == ["a", "b"]
    assert properties["kind"]["description"] == "The kind."
    assert (properties["ratio"]["minimum"], properties["ratio"]["exclusiveMaximum"]) == (0, 1)
    assert properties["mode"]["default"] == "fast"
