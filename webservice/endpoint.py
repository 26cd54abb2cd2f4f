"""The ``webservice.php`` endpoint: parse, find the operation, check the session, run, wrap.

Whatever happens, the answer is the envelope with HTTP 200: bad input gets its error code, a Redis
outage SERVICE_UNAVAILABLE, and anything unexpected INTERNAL_SERVER_ERROR with the traceback in
the log only.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from webservice import envelope
from webservice.context import OperationContext
from webservice.errors import (
    ErrorCode,
    WebServiceError,
    authentication_required,
    internal_error,
    method_not_allowed,
    service_unavailable,
    unknown_operation,
)
from webservice.gateway import current_gateway
from webservice.request_parsing import parse_request

log = logging.getLogger(__name__)

PATHS = ("/webservice.php", "/webservice")
#: Every method is answered with the envelope; GET and POST are the ones clients use. OPTIONS too:
#: a CORS preflight gets no CORS headers, so browsers keep other origins out.
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

blueprint = Blueprint("webservice", __name__)


def handle() -> Response:
    if request.method == "OPTIONS":
        return envelope.failure(method_not_allowed(request.method))
    try:
        return envelope.success(_dispatch())
    except WebServiceError as error:
        return envelope.failure(error)
    except RedisError as error:
        log.warning("session store unavailable: %s", type(error).__name__)
        return envelope.failure(service_unavailable())
    except RequestEntityTooLarge:
        return envelope.failure(request_too_large())
    except HTTPException as error:
        return envelope.failure(
            WebServiceError(ErrorCode.INVALID_PARAMETER, f"Malformed request: {error.description}")
        )
    except Exception:
        log.exception("operation failed")
        return envelope.failure(internal_error())


def _dispatch() -> object:
    gateway = current_gateway()
    parsed = parse_request(request, gateway.settings["MAX_FORM_PARTS"])
    op = gateway.operations.get(parsed.operation) if parsed.operation else None
    if op is None:
        raise unknown_operation()
    session = None
    if op.needs_session:
        session = gateway.sessions.validate(parsed.session_id)
        if session is None:
            raise authentication_required()
    params = op.load_params(parsed.params)
    context = OperationContext(gateway, parsed.client, session, parsed.session_id)
    return op.handler(context, params)


def request_too_large() -> WebServiceError:
    limit = current_gateway().settings["MAX_CONTENT_LENGTH"]
    return WebServiceError(ErrorCode.REQUEST_TOO_LARGE, f"Request body exceeds {limit} bytes")


for _path, _name in (("/webservice.php", "webservice_php"), ("/webservice", "webservice")):
    blueprint.add_url_rule(
        _path, _name, handle, methods=METHODS, provide_automatic_options=False
    )
