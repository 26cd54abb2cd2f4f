"""The OpenAPI 3.1 description of ``webservice.php``, generated from the operation registry.

``GET /openapi.json`` serves it. Nothing in it is written by hand per operation: every operation
the running gateway has (built-in or from a plugin's entry point) becomes one request shape, built
from its marshmallow schema (parameter names, types, required flags), its method hint and whether
it needs a session, so the description cannot drift from what the endpoint accepts.

How the single endpoint is modelled:

- One path (``/webservice.php``, and its alias ``/webservice``) with ``GET`` and ``POST``.
- ``components/schemas/Request`` is a ``oneOf`` of one object schema per operation
  (``Operation.<name>``), discriminated by the ``operation`` property. ``POST`` takes it as a
  url-encoded, multipart or JSON body; ``GET`` as query parameters (an exploded ``form``-style
  object parameter: each property is a query parameter of its own).
- Every answer is HTTP 200 with the envelope (``Envelope``: ``Success`` or ``Failure``); the error
  codes are listed with their meaning in ``ErrorCode``.
- Each operation schema carries ``x-wsgate-operation`` (name, method hint, needs a session) for
  tools; people read the same in its description.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, current_app
from marshmallow import fields, missing, validate

from webservice.api.errors import WIRE_PROFILES, ErrorCode
from webservice.api.gateway import current_gateway

if TYPE_CHECKING:
    from webservice.api.registry import Operation, OperationRegistry

OPENAPI_VERSION = "3.1.0"
DOCUMENT_PATH = "/openapi.json"
ENDPOINT_PATHS = ("/webservice.php", "/webservice")
SESSION_HEADER = "corebos-authorization"
#: The exact shape of the session ids the gateway hands out (webservice/store/tokens.py).
SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$"

#: What each error code means; every code of :class:`ErrorCode` must be here (the document refuses
#: to build otherwise, and a test builds it).
ERROR_MEANINGS: dict[str, str] = {
    ErrorCode.UNKNOWN_OPERATION: "No operation, or one this gateway does not have (checked "
    "before any session check).",
    ErrorCode.AUTHENTICATION_REQUIRED: "The operation needs a session and the request names no "
    "live one (missing, malformed, unknown, expired or logged out); also getchallenge/login for "
    "an unknown or inactive user when HIDE_UNKNOWN_USERS is off, and extendsession without the "
    "web-UI cookie.",
    ErrorCode.AUTHENTICATION_FAILURE: "extendsession with a web-UI cookie whose login has ended.",
    ErrorCode.INVALID_AUTH_TOKEN: "login without a live (unused, unexpired) challenge token.",
    ErrorCode.ACCESSKEY_UNDEFINED: "login for a user without an access key (only when "
    "HIDE_UNKNOWN_USERS is off).",
    ErrorCode.INVALID_USER_CREDENTIALS: "login with a wrong accessKey (and, when "
    "HIDE_UNKNOWN_USERS is on, for an unknown or inactive user or one without an access key).",
    ErrorCode.MANDATORY_FIELDS_MISSING: "A required parameter is missing or empty; the message "
    "names it.",
    ErrorCode.INVALID_PARAMETER: "A parameter has the wrong type or form, or is too long, or the "
    "body is neither a form nor a JSON object; the message says which and why.",
    ErrorCode.ACCESS_DENIED: "Not allowed for this caller (e.g. another user's session, a "
    "cross-site extendsession).",
    ErrorCode.INTERNAL_SERVER_ERROR: "Something unexpected failed; the details are in the "
    "gateway's log only.",
    ErrorCode.SERVICE_UNAVAILABLE: "The session store (Redis) is unreachable; nothing changed, "
    "retry shortly. Or, with REDIS_WAIT_REPLICAS, \"Logout not confirmed; retry\" (\"Login ...\"): "
    "the change is made, but its replicas did not confirm it in time; a retried logout is told it "
    "succeeded.",
    ErrorCode.REQUEST_TOO_LARGE: "The body exceeds MAX_CONTENT_LENGTH bytes, or the request has "
    "more than MAX_FORM_PARTS parameters.",
    ErrorCode.METHOD_NOT_ALLOWED: "OPTIONS (the endpoint answers no CORS preflight), HEAD (it "
    "runs no operation for a body nobody sees) or a method it does not serve (TRACE, CONNECT, ...). PUT, PATCH and DELETE are answered like POST.",
    ErrorCode.TOO_MANY_REQUESTS: "Too many failed logins for this user or from this address, or "
    "too many getchallenge calls from this address; the message says how many seconds to wait.",
    ErrorCode.INVALID_SESSIONID: "(vtiger profile) The session id names no live session: "
    "malformed, unknown, logged out or ended earlier.",
    ErrorCode.SESSION_EXPIRED: "(vtiger profile) The session was found past its absolute "
    "timeout (and ended); asked again, it is INVALID_SESSIONID.",
    ErrorCode.SESSION_LEFT_IDLE: "(vtiger profile) The session was found past its idle timeout "
    "(and ended); asked again, it is INVALID_SESSIONID.",
}

_EXTENSION_KEY = "wsgate.openapi"
#: Where an app keeps the descriptions other parts of the gateway add (the REST session API's).
_PARTS_KEY = "wsgate.openapi.parts"

#: A part of the document: ``{"paths": {...}, "schemas": {...}, "securitySchemes": {...}}``,
#: built for the app's session cookie name.
DocumentPart = Callable[[str], Mapping[str, Any]]

blueprint = Blueprint("openapi", __name__)


@blueprint.get(DOCUMENT_PATH)
def openapi_json() -> Response:
    """The document, built once per app (the registry does not change after start-up)."""
    body = current_app.extensions.get(_EXTENSION_KEY)
    if body is None:
        gateway = current_gateway()
        cookie = current_app.session_interface.get_cookie_name(current_app)
        parts = [part(cookie) for part in current_app.extensions.get(_PARTS_KEY, [])]
        document = build_document(gateway.operations, gateway.settings, cookie, parts)
        body = json.dumps(document, ensure_ascii=False, indent=1)
        current_app.extensions[_EXTENSION_KEY] = body
    return Response(body, mimetype="application/json")


def add_part(app: Flask, part: DocumentPart) -> None:
    """Describes more of the app in its document (before its first request)."""
    app.extensions.setdefault(_PARTS_KEY, []).append(part)


def error_codes(profile: str = "corebos") -> list[str]:
    """Every error code the envelope can carry under the wire ``profile``, in declaration order."""
    others = {
        code
        for name, answers in WIRE_PROFILES.items()
        if name != profile
        for code, _message in answers.values()
    } - {code for code, _message in WIRE_PROFILES[profile].values()}
    return [
        value for name, value in vars(ErrorCode).items() if name.isupper() and value not in others
    ]


def schema_name(operation_name: str) -> str:
    """The component name of an operation's request schema (component names allow few chars)."""
    return "Operation." + re.sub(r"[^A-Za-z0-9._-]", "_", operation_name)


def build_document(
    registry: OperationRegistry,
    settings: Mapping[str, Any],
    cookie: str = "session",
    parts: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The OpenAPI document of ``webservice.php`` for the operations in ``registry``, with the
    error codes of the settings' wire profile, and the ``parts`` others add; ``cookie`` is the
    name of the app's session cookie (extendsession's)."""
    operations = list(registry)
    limits = _Limits.of(settings)
    schemas: dict[str, Any] = {
        schema_name(op.name): operation_schema(op, limits) for op in operations
    }
    schemas["Request"] = {
        "description": "One webservice.php request: the parameters of the operation named by "
        "`operation`. Parameters a request's operation does not declare are ignored.",
        "oneOf": [{"$ref": f"#/components/schemas/{schema_name(op.name)}"} for op in operations],
        "discriminator": {
            "propertyName": "operation",
            "mapping": {
                op.name: f"#/components/schemas/{schema_name(op.name)}" for op in operations
            },
        },
    }
    profile = str(settings.get("WIRE_PROFILE", "corebos"))
    schemas.update(_envelope_schemas(profile))
    document = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "wsgate webservice.php",
            "version": _package_version(),
            "description": _description(operations, limits, profile),
        },
        "paths": {
            path: _path_item(path, index) for index, path in enumerate(ENDPOINT_PATHS)
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "coreBOSAuthorization": {
                    "type": "apiKey",
                    "in": "header",
                    "name": SESSION_HEADER,
                    "description": "The session id (login's sessionName). An empty header is "
                    "ignored. It wins over the sessionName parameter.",
                },
                "sessionName": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "sessionName",
                    "description": "The session id as a parameter (query, form or JSON body). "
                    '"" and "null" mean none.',
                },
                "webSession": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": cookie,
                    "description": "The web UI's session cookie: extendsession only, together "
                    "with the page's X-CSRFToken header or a same-origin Origin.",
                },
            },
        },
        "x-wsgate-operations": [
            {
                "name": op.name,
                "method": op.method,
                "needsSession": op.needs_session,
                "parameters": [
                    {"name": name, "type": kind, "required": required}
                    for name, kind, required in op.describe_params()
                ],
            }
            for op in operations
        ],
    }
    for part in parts:
        document["paths"].update(part.get("paths", {}))
        schemas.update(part.get("schemas", {}))
        document["components"]["securitySchemes"].update(part.get("securitySchemes", {}))
    return document


class _Limits:
    """The request limits the document states (they are enforced by request_parsing)."""

    def __init__(self, name_length: int, value_length: int, parameters: int, body: int) -> None:
        self.name_length = name_length
        self.value_length = value_length
        self.parameters = parameters
        self.body = body

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> _Limits:
        return cls(
            int(settings.get("MAX_PARAMETER_NAME_LENGTH", 256)),
            int(settings.get("MAX_PARAMETER_LENGTH", 65536)),
            int(settings.get("MAX_FORM_PARTS", 200)),
            int(settings.get("MAX_CONTENT_LENGTH", 1024 * 1024)),
        )


def operation_schema(op: Operation, limits: _Limits | None = None) -> dict[str, Any]:
    """The request shape of one operation: ``operation`` plus its declared parameters."""
    limits = limits or _Limits.of({})
    properties: dict[str, Any] = {
        "operation": {
            "type": "string",
            "enum": [op.name],
            "description": "The operation's name (matched case-insensitively).",
        }
    }
    required = ["operation"]
    for attribute, declared in op.params.fields.items():
        if declared.dump_only:
            continue
        name = declared.data_key or attribute
        properties[name] = parameter_schema(declared, limits)
        if declared.required:
            required.append(name)
    if op.needs_session and "sessionName" not in properties:
        properties["sessionName"] = {
            "type": "string",
            "pattern": SESSION_ID_PATTERN,
            "description": f"The session id, unless the {SESSION_HEADER} header carries it.",
        }
    session = (
        f"Needs a live session (the {SESSION_HEADER} header or sessionName)."
        if op.needs_session
        else "Needs no session."
    )
    description = " ".join(
        part for part in (op.description, session, f"Method hint: {op.method}.") if part
    )
    return {
        "title": op.name,
        "description": description,
        "type": "object",
        "properties": properties,
        "required": required,
        "x-wsgate-operation": {
            "name": op.name,
            "method": op.method,
            "needsSession": op.needs_session,
        },
    }


def parameter_schema(declared: fields.Field, limits: _Limits | None = None) -> dict[str, Any]:
    """The JSON Schema of one marshmallow field, as the coreBOS parameter types go on the wire."""
    from webservice.api.params import Encoded

    limits = limits or _Limits.of({})
    schema: dict[str, Any]
    if isinstance(declared, Encoded):
        schema = {
            "description": "An `encoded` parameter: a JSON text (in a JSON body, the value "
            "itself may be given).",
        }
    elif isinstance(declared, fields.Boolean):
        schema = {
            "type": "boolean",
            "description": "A `boolean` parameter: true/false, 1/0, on/off, yes/no.",
        }
    elif isinstance(declared, fields.Integer):
        schema = {"type": "integer"}
    elif isinstance(declared, fields.Number):
        schema = {"type": "number", "description": "A `double` parameter."}
    elif isinstance(declared, fields.DateTime):
        schema = {
            "type": "string",
            "format": "date-time",
            "description": "A `datetime` parameter (ISO 8601).",
        }
    elif isinstance(declared, fields.String):
        # An empty value counts as missing; longer values than the limit are refused.
        schema = {"type": "string", "minLength": 1, "maxLength": limits.value_length}
    else:
        schema = {"description": f"A {type(declared).__name__} parameter."}
    for validator in _validators(declared):
        _apply_validator(schema, validator)
    description = declared.metadata.get("description")
    if description:
        schema["description"] = str(description)
    default = declared.load_default
    if default is not missing and not callable(default):
        try:
            json.dumps(default)
        except TypeError:
            pass
        else:
            schema["default"] = default
    return schema


def _validators(declared: fields.Field) -> list[Any]:
    return list(getattr(declared, "validators", []) or [])


def _apply_validator(schema: dict[str, Any], validator: Any) -> None:
    if isinstance(validator, validate.Length):
        if validator.equal is not None:
            schema["minLength"] = schema["maxLength"] = validator.equal
        else:
            if validator.min is not None:
                schema["minLength"] = max(validator.min, schema.get("minLength", 0))
            if validator.max is not None:
                schema["maxLength"] = min(validator.max, schema.get("maxLength", validator.max))
    elif isinstance(validator, validate.OneOf):
        schema["enum"] = list(validator.choices)
    elif isinstance(validator, validate.Range):
        if validator.min is not None:
            key = "minimum" if validator.min_inclusive else "exclusiveMinimum"
            schema[key] = validator.min
        if validator.max is not None:
            key = "maximum" if validator.max_inclusive else "exclusiveMaximum"
            schema[key] = validator.max
    elif isinstance(validator, validate.Regexp):
        schema["pattern"] = validator.regex.pattern


def _envelope_schemas(profile: str) -> dict[str, Any]:
    codes = error_codes(profile)
    missing_meanings = [code for code in codes if code not in ERROR_MEANINGS]
    if missing_meanings:
        raise LookupError(f"error codes without a meaning in openapi.ERROR_MEANINGS: {missing_meanings}")
    return {
        "Envelope": {
            "description": "Every answer of webservice.php: HTTP 200, application/json.",
            "oneOf": [
                {"$ref": "#/components/schemas/Success"},
                {"$ref": "#/components/schemas/Failure"},
            ],
        },
        "Success": {
            "type": "object",
            "properties": {
                "success": {"const": True},
                "result": {"description": "What the operation answers."},
                "moreinfo": {"type": "null", "description": "Always null, as coreBOS sends it."},
            },
            "required": ["success", "result", "moreinfo"],
            "additionalProperties": False,
        },
        "Failure": {
            "type": "object",
            "properties": {
                "success": {"const": False},
                "error": {
                    "type": "object",
                    "properties": {
                        "message": {"type": "string", "minLength": 1},
                        "code": {"$ref": "#/components/schemas/ErrorCode"},
                    },
                    "required": ["message", "code"],
                    "additionalProperties": False,
                },
                "moreinfo": {"type": "null", "description": "Always null, as coreBOS sends it."},
            },
            "required": ["success", "error", "moreinfo"],
            "additionalProperties": False,
        },
        "ErrorCode": {
            "type": "string",
            "description": "What went wrong; compare the code, show the message.",
            "oneOf": [
                {"const": code, "description": ERROR_MEANINGS[code]} for code in codes
            ],
        },
    }


def _path_item(path: str, index: int) -> dict[str, Any]:
    suffix = "" if index == 0 else "_alias"
    envelope = {
        "200": {
            "description": "Always HTTP 200: the envelope says whether the operation succeeded.",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}
            },
        }
    }
    request = {"$ref": "#/components/schemas/Request"}
    note = (
        "" if index == 0 else " The same endpoint as /webservice.php, for new integrations."
    )
    return {
        "summary": "The coreBOS web service endpoint: every operation, named by `operation`.",
        "get": {
            "operationId": f"webserviceGet{suffix}",
            "summary": "Call an operation with query parameters.",
            "description": "GET and POST are interchangeable for every operation." + note,
            "parameters": [
                {
                    "name": "request",
                    "in": "query",
                    "style": "form",
                    "explode": True,
                    "required": True,
                    "description": "The operation and its parameters, each a query parameter.",
                    "schema": request,
                },
                {
                    "name": SESSION_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "The session id; an empty header is ignored.",
                    "schema": {"type": "string"},
                },
            ],
            "responses": envelope,
        },
        "post": {
            "operationId": f"webservicePost{suffix}",
            "summary": "Call an operation with a form or JSON body.",
            "description": "Parameters are read from the query string and the form together "
            "(the form wins on a clash); a JSON object body is read only when both are empty. "
            "PUT, PATCH and DELETE are answered like POST; OPTIONS, HEAD and other methods "
            "answer METHOD_NOT_ALLOWED." + note,
            "parameters": [
                {
                    "name": SESSION_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "The session id; an empty header is ignored.",
                    "schema": {"type": "string"},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {"schema": request},
                    "multipart/form-data": {"schema": request},
                    "application/json": {"schema": request},
                },
            },
            "responses": envelope,
        },
    }


def _description(operations: list[Operation], limits: _Limits, profile: str) -> str:
    rows = "\n".join(
        f"| `{op.name}` | {op.method} | {'yes' if op.needs_session else 'no'} | "
        + (
            ", ".join(
                f"`{name}` ({kind}{', required' if required else ''})"
                for name, kind, required in op.describe_params()
            )
            or "—"
        )
        + " |"
        for op in operations
    )
    codes = "\n".join(
        f"| `{code}` | {ERROR_MEANINGS[code]} |" for code in error_codes(profile)
    )
    return f"""\
A coreBOS-compatible web service: one endpoint, `webservice.php`, whose parameter `operation`
names what to do. Parameters come from the query string, a url-encoded or multipart form, or
(only when both are empty) a JSON object body. An empty parameter counts as missing.

The session id travels in the `{SESSION_HEADER}` header or the `sessionName` parameter.

Every answer is HTTP 200, `application/json`: `{{"success": true, "result": ...}}` or
`{{"success": false, "error": {{"code": ..., "message": ...}}}}`.

Limits: a body of at most {limits.body} bytes, at most {limits.parameters} parameters, parameter
names of at most {limits.name_length} characters and values of at most {limits.value_length}.

| operation | method hint | needs a session | parameters |
|---|---|---|---|
{rows}

| error code | meaning |
|---|---|
{codes}
"""


def _package_version() -> str:
    try:
        return version("wsgate")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"
