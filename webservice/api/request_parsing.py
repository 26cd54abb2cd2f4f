"""Reads a ``webservice.php`` request the way coreBOS clients send it (protocol.md §1-2).

- ``operation`` and the other parameters come from the query string and the form body together
  (the form wins on a clash; of a repeated name the last value counts, as in PHP); a JSON object
  body is read only when both are empty.
- A parameter whose value is the empty string counts as missing.
- The session id comes from a non-empty ``corebos-authorization`` header, else from
  ``sessionName``; ``""`` and ``null`` mean none.

Limits, all checked here, before any Redis call: the body size (Flask's MAX_CONTENT_LENGTH, whose
error the endpoint turns into REQUEST_TOO_LARGE), the number of parameters (MAX_FORM_PARTS,
REQUEST_TOO_LARGE), and the length of each parameter's name (MAX_PARAMETER_NAME_LENGTH) and value
(MAX_PARAMETER_LENGTH, characters; a JSON body's nested value counts as its JSON text), both
INVALID_PARAMETER. A session id that has not the exact shape the gateway hands out never reaches
Redis either (SessionStore.validate refuses it first; the standalone's web cookie likewise,
standalone/web_session.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from flask import Request, current_app
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from webservice.api.errors import ErrorCode, WebServiceError
from webservice.auth.web_login import client_info
from webservice.store.session_values import ClientInfo

SESSION_HEADER = "corebos-authorization"
_SESSION_HEADER_ENVIRON = "HTTP_COREBOS_AUTHORIZATION"
URLENCODED = "application/x-www-form-urlencoded"
NO_SESSION = ("", "null")


@dataclass(frozen=True)
class WebServiceRequest:
    operation: str
    session_id: str | None
    params: dict[str, Any]
    client: ClientInfo


#: The defaults of MAX_PARAMETER_NAME_LENGTH and MAX_PARAMETER_LENGTH (webservice/settings.py).
DEFAULT_MAX_NAME_LENGTH = 256
DEFAULT_MAX_VALUE_LENGTH = 64 * 1024
#: How much of an over-long parameter name an error message repeats.
_NAME_IN_MESSAGE = 64


def parse_request(
    request: Request,
    max_parameters: int,
    max_name_length: int | None = None,
    max_value_length: int | None = None,
) -> WebServiceRequest:
    """The operation, session id and parameters of a request; raises the envelope's input errors.

    The length limits default to the running app's MAX_PARAMETER_NAME_LENGTH and
    MAX_PARAMETER_LENGTH settings.
    """
    # Every attribute read through Flask's request proxy costs a context lookup: unwrap it once.
    unwrap = getattr(request, "_get_current_object", None)
    if unwrap is not None:
        request = unwrap()
    if max_name_length is None or max_value_length is None:
        config = current_app.config
        if max_name_length is None:
            max_name_length = config.get(
                "WSGATE_MAX_PARAMETER_NAME_LENGTH", DEFAULT_MAX_NAME_LENGTH
            )
        if max_value_length is None:
            max_value_length = config.get("WSGATE_MAX_PARAMETER_LENGTH", DEFAULT_MAX_VALUE_LENGTH)
    params = _parameters(request, max_parameters, max_name_length, max_value_length)
    if len(params) > max_parameters:
        raise too_many_parameters(max_parameters)
    operation = params.pop("operation", "")
    session_name = params.get("sessionName")
    if isinstance(session_name, str) and session_name.strip().lower() in NO_SESSION:
        del params["sessionName"]
    return WebServiceRequest(
        operation=operation.lower() if isinstance(operation, str) else "",
        session_id=_session_id(request, params.get("sessionName")),
        params=params,
        client=client_info(request),
    )


def too_many_parameters(max_parameters: int) -> WebServiceError:
    return WebServiceError(
        ErrorCode.REQUEST_TOO_LARGE, f"Too many parameters: at most {max_parameters} allowed"
    )


def parameter_name_too_long(max_length: int) -> WebServiceError:
    return WebServiceError(
        ErrorCode.INVALID_PARAMETER,
        f"Invalid parameter name: longer than {max_length} characters",
    )


def parameter_too_long(name: str, max_length: int) -> WebServiceError:
    shown = name if len(name) <= _NAME_IN_MESSAGE else name[:_NAME_IN_MESSAGE] + "…"
    return WebServiceError(
        ErrorCode.INVALID_PARAMETER,
        f"Invalid parameter {shown}: longer than {max_length} characters",
    )


def _parameters(
    request: Request, max_parameters: int, max_name_length: int, max_value_length: int
) -> dict[str, Any]:
    environ = request.environ
    query = environ.get("QUERY_STRING")
    merged = _urlencoded(query, max_parameters) if query else {}
    mimetype = request.mimetype if environ.get("CONTENT_TYPE") else ""
    if mimetype == URLENCODED:
        merged.update(_urlencoded(_body(request).decode("latin-1"), max_parameters))
    elif mimetype or environ.get("CONTENT_LENGTH") not in (None, "", "0"):
        # (Without a Content-Type Werkzeug reads no form; asking it would only check the
        # Content-Length against the limit, and there is none.)
        form = _last_values(_form(request))
        # A multipart part whose Content-Disposition names nothing Werkzeug reads: not a parameter.
        form.pop(None, None)  # type: ignore[call-overload]
        merged.update(form)
    if merged:
        # Every name and value is text here: two C-speed passes on the hot path.
        if max(map(len, merged)) > max_name_length:
            raise parameter_name_too_long(max_name_length)
        if max(map(len, merged.values())) > max_value_length:
            raise _first_too_long(merged, max_value_length)
    else:
        merged = _json_body(request)
        _check_json_lengths(merged, max_name_length, max_value_length)
    return {name: value for name, value in merged.items() if value != "" and value is not None}


def _first_too_long(params: dict[str, str], max_length: int) -> WebServiceError:
    name = next(name for name, value in params.items() if len(value) > max_length)
    return parameter_too_long(name, max_length)


def _check_json_lengths(params: dict[str, Any], max_name_length: int, max_length: int) -> None:
    """A JSON body's names and values: text by its length, anything nested by its JSON text."""
    for name, value in params.items():
        if len(name) > max_name_length:
            raise parameter_name_too_long(max_name_length)
        if isinstance(value, str):
            size = len(value)
        elif isinstance(value, (dict, list)):
            try:
                size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
            except (ValueError, RecursionError):
                size = max_length + 1
        else:
            continue
        if size > max_length:
            raise parameter_too_long(name, max_length)


def _last_values(values: MultiDict[str, str]) -> dict[str, str]:
    return {name: values.getlist(name)[-1] for name in values}


def _urlencoded(latin1: str, max_parameters: int) -> dict[str, str]:
    """A query string or url-encoded form body, its bytes as latin-1 text (as WSGI gives a query
    string), read as Werkzeug reads a form but in a third of the time (the hot path: most
    clients send every call this way). Bytes map one-to-one through latin-1, so raw and
    percent-encoded UTF-8 alike come out as text; undecodable bytes become U+FFFD. (Werkzeug's
    ``request.args`` would raise on a raw byte that is not UTF-8, which a WSGI server other than
    gunicorn may pass on, and keeps a percent-encoded one as it was written.)"""
    try:
        pairs = parse_qsl(
            latin1,
            keep_blank_values=True,
            encoding="latin-1",
            max_num_fields=max_parameters,
        )
    except ValueError:
        raise too_many_parameters(max_parameters) from None
    return {_utf8(name): _utf8(value) for name, value in pairs}


def _utf8(latin1: str) -> str:
    return latin1.encode("latin-1").decode("utf-8", "replace")


def _body(request: Request) -> bytes:
    """The request body. A body the WSGI server cannot read (a malformed chunked encoding, a
    client that stops sending) is INVALID_PARAMETER, not an error of the gateway: servers raise
    errors of their own kinds for it (gunicorn's ParseException subclasses, OSError), so
    anything but Werkzeug's own HTTP errors (413, a client that disconnected) counts."""
    try:
        return request.get_data(cache=True)
    except HTTPException:
        raise
    except Exception:
        raise unreadable_body() from None


def _form(request: Request) -> MultiDict[str, str]:
    try:
        return request.form
    except HTTPException:
        raise
    except Exception:
        raise unreadable_body() from None


def unreadable_body() -> WebServiceError:
    return WebServiceError(ErrorCode.INVALID_PARAMETER, "Malformed request: the body cannot be read")


def _json_body(request: Request) -> dict[str, Any]:
    body = _body(request)
    if not body.strip():
        return {}
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        decoded = None
    if not isinstance(decoded, dict):
        raise WebServiceError(
            ErrorCode.INVALID_PARAMETER,
            "The request body must be a form or a JSON object",
        )
    if _has_lone_surrogates(body):
        # JSON's \ud800-style escapes can name halves of characters that UTF-8 cannot encode;
        # such text would fail wherever it is hashed, stored or logged.
        raise WebServiceError(
            ErrorCode.INVALID_PARAMETER, "The request body holds text that is not valid Unicode"
        )
    return decoded


#: A JSON escape of a UTF-16 surrogate (\uD800-\uDFFF), the only way JSON text decodes to a
#: string that is not valid Unicode.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _has_lone_surrogates(body: bytes) -> bool:
    """Whether the JSON text ``body`` decodes to a string with a surrogate that is not half of a
    valid pair (checked only when it has a surrogate escape at all: the common body pays one
    regular-expression scan)."""
    if _SURROGATE_ESCAPE.search(body) is None:
        return False
    try:
        json.dumps(json.loads(body), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _session_id(request: Request, session_name: Any) -> str | None:
    """The header when it names a session, else ``sessionName`` (already without "null")."""
    # The header's WSGI name, read straight from the environ (as request.headers would).
    header = request.environ.get(_SESSION_HEADER_ENVIRON, "").strip()
    if header.lower() not in NO_SESSION:
        return header
    return None if session_name is None else str(session_name)
