"""The operation registry and the parameter types of operation plugins."""

from __future__ import annotations

import json
import math

import pytest
from marshmallow import ValidationError, pre_load

import operations
from tests.unit.support import TEST_OPERATIONS, envelope, error, result
from webservice.api.errors import WebServiceError
from webservice.api.params import (
    Boolean,
    DateTime,
    Double,
    Encoded,
    Params,
    String,
    bare_text_fields,
)
from webservice.api.registry import (
    ENTRY_POINT_GROUP,
    Operation,
    OperationRegistry,
    RegistryError,
    installed_operations,
    operation,
)


def _handler(context, params):
    """First line of the description.

    More text that is not part of it.
    """
    return params


# --- The decorator ------------------------------------------------------------------------------


def test_operation_decorator_builds_an_operation():
    class P(Params):
        a = String(required=True)
        b = Double()

    op = operation("MixedCase", params=P, method="GET", needs_session=False)(_handler)
    assert isinstance(op, Operation)
    assert op.name == "mixedcase"
    assert op.method == "GET"
    assert op.needs_session is False
    assert op.handler is _handler
    assert op.description == "First line of the description."
    assert op.describe_params() == [("a", "string", True), ("b", "double", False)]


def test_operation_defaults():
    op = operation("plain")(_handler)
    assert op.method == "POST"
    assert op.needs_session is True
    assert op.describe_params() == []
    assert op.load_params({"anything": "x", "operation": "plain"}) == {}


@pytest.mark.parametrize("method", ["PUT", "get", "DELETE", ""])
def test_operation_method_must_be_get_or_post(method):
    with pytest.raises(RegistryError):
        operation("bad", method=method)


def test_describe_params_uses_wire_names_and_types():
    class P(Params):
        text = String(required=True)
        payload = Encoded()
        flag = Boolean()
        amount = Double(required=True)
        when = DateTime()
        python_name = String(data_key="wireName")

    op = operation("described", params=P)(_handler)
    assert op.describe_params() == [
        ("text", "string", True),
        ("payload", "encoded", False),
        ("flag", "boolean", False),
        ("amount", "double", True),
        ("when", "datetime", False),
        ("wireName", "string", False),
    ]


def test_builtin_operations_describe_themselves():
    by_name = {op.name: op for op in operations.BUILTIN_OPERATIONS}
    assert by_name["getchallenge"].needs_session is False
    assert by_name["getchallenge"].describe_params() == [("username", "string", True)]
    assert by_name["login"].needs_session is False
    assert by_name["login"].describe_params() == [
        ("username", "string", True),
        ("accessKey", "string", True),
    ]
    assert by_name["logout"].needs_session is True
    assert by_name["logout"].describe_params() == [("sessionName", "string", False)]
    assert by_name["listtypes"].needs_session is True
    for op in operations.BUILTIN_OPERATIONS:
        assert op.name == op.name.lower()
        assert op.description


# --- The registry -----------------------------------------------------------------------------


def test_registry_finds_operations_case_insensitively():
    registry = OperationRegistry()
    op = operation("FindMe")(_handler)
    registry.add(op, "test")
    assert registry.get("findme") is op
    assert registry.get("FINDME") is op
    assert registry.get("FindMe") is op
    assert registry.get("other") is None
    assert registry.source("findme") == "test"
    assert len(registry) == 1


def test_registry_iterates_by_name():
    registry = OperationRegistry()
    for name in ["zeta", "alpha", "Mid"]:
        registry.add(operation(name)(_handler), "test")
    assert [op.name for op in registry] == ["alpha", "mid", "zeta"]


@pytest.mark.parametrize("second", ["dup", "DUP", "Dup"])
def test_duplicate_names_are_refused(second):
    registry = OperationRegistry()
    registry.add(operation("dup")(_handler), "first")
    with pytest.raises(RegistryError, match="dup"):
        registry.add(operation(second)(_handler), "second")
    assert len(registry) == 1


def test_only_operations_can_be_registered():
    registry = OperationRegistry()
    for thing in [_handler, "login", None, {"name": "x"}]:
        with pytest.raises(RegistryError):
            registry.add(thing, "test")


def test_discover_builtins_with_a_duplicate():
    ops = (operation("one")(_handler), operation("ONE")(_handler))
    with pytest.raises(RegistryError):
        OperationRegistry.of(ops)


@pytest.mark.parametrize("name", ["login", "LOGIN", "getChallenge", "listtypes"])
def test_create_app_refuses_a_duplicate_name(make_app, name):
    clash = operation(name, needs_session=False)(_handler)
    with pytest.raises(RegistryError):
        make_app(extra_operations=(clash,))


class _FakeEntryPoint:
    def __init__(self, value, loaded):
        self.value = value
        self._loaded = loaded
        self.dist = None

    def load(self):
        return self._loaded


def test_discover_loads_entry_points(monkeypatch):
    extra = operation("fromplugin")(_handler)
    seen = []

    def fake_entry_points(group):
        seen.append(group)
        return [_FakeEntryPoint("pkg:fromplugin", extra)]

    monkeypatch.setattr("webservice.api.registry.entry_points", fake_entry_points)
    registry = OperationRegistry.of([*operations.BUILTIN_OPERATIONS, *installed_operations()])
    assert seen == [ENTRY_POINT_GROUP] == ["wsgate.operations"]
    assert registry.get("FromPlugin") == extra
    assert "pkg:fromplugin" in registry.source("fromplugin")


@pytest.mark.parametrize("loaded", ["not an operation", _handler, None])
def test_discover_refuses_an_entry_point_that_is_not_an_operation(monkeypatch, loaded):
    monkeypatch.setattr(
        "webservice.api.registry.entry_points", lambda group: [_FakeEntryPoint("pkg:thing", loaded)]
    )
    with pytest.raises(RegistryError):
        OperationRegistry.of([*operations.BUILTIN_OPERATIONS, *installed_operations()])


def test_discover_refuses_an_entry_point_that_clashes(monkeypatch):
    clash = operation("Logout")(_handler)
    monkeypatch.setattr(
        "webservice.api.registry.entry_points", lambda group: [_FakeEntryPoint("pkg:logout", clash)]
    )
    with pytest.raises(RegistryError, match="logout"):
        OperationRegistry.of([*operations.BUILTIN_OPERATIONS, *installed_operations()])


# --- Parameter types, field by field -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ('{"a": [1, 2, {"b": null}]}', {"a": [1, 2, {"b": None}]}),
        ("[1, 2]", [1, 2]),
        ('"text"', "text"),
        ("3", 3),
        ({"already": "decoded"}, {"already": "decoded"}),
        ([1, {"x": 2}], [1, {"x": 2}]),
        (7, 7),
    ],
)
def test_encoded_decodes_json_and_accepts_decoded_values(raw, decoded):
    assert Encoded().deserialize(raw) == decoded


@pytest.mark.parametrize("raw", ["{", "{'a': 1}", "not json", ""])
def test_encoded_rejects_invalid_json(raw):
    with pytest.raises(ValidationError):
        Encoded().deserialize(raw)


@pytest.mark.parametrize(
    ("raw", "value"),
    [("true", True), ("TRUE", True), ("1", True), ("on", True), ("yes", True), (True, True),
     ("false", False), ("0", False), ("off", False), ("no", False), (False, False)],
)
def test_boolean(raw, value):
    assert Boolean().deserialize(raw) is value


@pytest.mark.parametrize("raw", ["maybe", "2", "truthy", "[]"])
def test_boolean_rejects(raw):
    with pytest.raises(ValidationError):
        Boolean().deserialize(raw)


@pytest.mark.parametrize(("raw", "value"), [("1.5", 1.5), ("-2", -2.0), ("1e3", 1000.0), (4, 4.0)])
def test_double(raw, value):
    assert Double().deserialize(raw) == value


@pytest.mark.parametrize("raw", ["NaN", "nan", "inf", "-Infinity", "abc", "1,5", float("nan"), math.inf])
def test_double_rejects_nan_infinity_and_text(raw):
    with pytest.raises(ValidationError):
        Double().deserialize(raw)


# --- Parameter types through the endpoint ----------------------------------------------------------


@pytest.fixture
def typed_client(probe_client):
    def call(**params):
        return envelope(probe_client.post("/webservice.php", data={"operation": "typed", **params}))

    call.json = lambda document: envelope(  # type: ignore[attr-defined]
        probe_client.post("/webservice.php", json={"operation": "typed", **document})
    )
    return call


def test_typed_parameters_are_converted(typed_client):
    answer = result(
        typed_client(
            text="hi", payload='{"k": [1, 2]}', flag="yes", amount="2.5", when="2024-01-02T03:04:05"
        )
    )
    assert answer == {
        "text": {"value": "hi", "type": "str"},
        "payload": {"value": {"k": [1, 2]}, "type": "dict"},
        "flag": {"value": True, "type": "bool"},
        "amount": {"value": 2.5, "type": "float"},
        "when": {"value": "2024-01-02T03:04:05", "type": "datetime"},
    }


def test_encoded_parameter_in_a_json_body_may_be_an_object_or_a_string(typed_client):
    nested = {"k": {"deep": [1, None, "x"]}}
    assert result(typed_client.json({"text": "t", "payload": nested}))["payload"]["value"] == nested
    encoded = json.dumps(nested)
    assert result(typed_client.json({"text": "t", "payload": encoded}))["payload"]["value"] == nested


def test_missing_required_parameter_is_named(typed_client):
    message = error(typed_client(flag="yes"), "MANDATORY_FIELDS_MISSING")
    assert "text" in message


def test_missing_comes_before_invalid_in_declaration_order(typed_client):
    message = error(typed_client(flag="maybe"), "MANDATORY_FIELDS_MISSING")
    assert "text" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("payload", "{not json"),
        ("flag", "maybe"),
        ("amount", "NaN"),
        ("amount", "nan"),
        ("amount", "Infinity"),
        ("amount", "twelve"),
        ("when", "yesterday"),
        ("when", "2024-13-45T99:00:00"),
    ],
)
def test_invalid_parameter_is_named(typed_client, name, value):
    message = error(typed_client(text="t", **{name: value}), "INVALID_PARAMETER")
    assert name in message


def test_deeply_nested_encoded_parameter_is_invalid_not_an_internal_error(typed_client):
    message = error(typed_client(text="t", payload="[" * 50_000 + "]" * 50_000), "INVALID_PARAMETER")
    assert "payload" in message


@pytest.mark.parametrize(
    ("document", "name"),
    [
        ({"text": ["a", "list"]}, "text"),
        ({"text": {"an": "object"}}, "text"),
        ({"text": "t", "amount": "NaN"}, "amount"),
        ({"text": "t", "flag": "maybe"}, "flag"),
        ({"text": "t", "amount": [1]}, "amount"),
    ],
)
def test_invalid_parameter_in_a_json_body_is_named(typed_client, document, name):
    message = error(typed_client.json(document), "INVALID_PARAMETER")
    assert name in message


def test_test_operations_are_not_builtins():
    names = {op.name for op in operations.BUILTIN_OPERATIONS}
    assert not names & {op.name for op in TEST_OPERATIONS}


# --- bare text fields: loaded without marshmallow, as marshmallow loads them --------------------


class _BareParams(Params):
    handle = String(required=True)
    note = String()


class _Validated(Params):
    handle = String(validate=lambda value: value != "no")


class _Defaulted(Params):
    note = String(load_default="hi")


class _Renamed(Params):
    note = String(data_key="Note")


class _Nullable(Params):
    note = String(allow_none=True)


class _Hooked(Params):
    note = String()

    @pre_load
    def upper(self, data, **kwargs):
        return {key: value.upper() if isinstance(value, str) else value for key, value in data.items()}


class _Typed(Params):
    note = String()
    count = Double()


@pytest.mark.parametrize(
    ("schema", "bare"),
    [
        (Params, ()),
        (_BareParams, (("handle", True), ("note", False))),
        (_Validated, None),
        (_Defaulted, None),
        (_Renamed, None),
        (_Nullable, None),
        (_Hooked, None),
        (_Typed, None),
    ],
)
def test_only_schemas_of_bare_text_fields_are_loaded_without_marshmallow(schema, bare):
    assert bare_text_fields(schema()) == bare


_VALUES = [_ABSENT := object(), "", "x", "ü" * 3, None, 5, 1.5, True, ["a"], {"a": 1}, b"raw"]


@pytest.mark.parametrize("schema", [Params, _BareParams, _Validated, _Hooked, _Typed])
@pytest.mark.parametrize("handle", _VALUES)
@pytest.mark.parametrize("note", _VALUES)
def test_parameters_load_as_marshmallow_loads_them(schema, handle, note):
    raw = {"operation": "op", "sessionName": "s"}
    for name, value in (("handle", handle), ("note", note)):
        if value is not _ABSENT:
            raw[name] = value
    op = operation("op", params=schema)(lambda context, params: None)
    try:
        expected: object = schema().load(raw)
    except ValidationError:
        expected = ValidationError
    try:
        loaded: object = op.load_params(raw)
    except WebServiceError:
        loaded = ValidationError
    assert loaded == expected
