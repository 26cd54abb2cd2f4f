"""The ``webservice.php`` endpoint: parse, find the operation, check the session, run, wrap.

Whatever happens, the answer is the envelope with HTTP 200: bad input gets its error code, a Redis
outage SERVICE_UNAVAILABLE, and anything unexpected INTERNAL_SERVER_ERROR with the traceback in
the log only. Every answer carries its request id (``X-Request-Id``), is counted in the metrics
(metrics.py) and gets one structured log line (request_log.py).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Request, Response, request
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from webservice.api import envelope
from webservice.api.context import OperationContext, SessionCheck
from webservice.api.errors import (
    ErrorCode,
    WebServiceError,
    internal_error,
    method_not_allowed,
    not_confirmed,
    service_unavailable,
    session_refused,
    unknown_operation,
)
from webservice.api.gateway import Gateway, current_gateway
from webservice.api.request_parsing import parse_request
from webservice.auth.browser import Browser, NeedsRequestContext
from webservice.serving import metrics, request_log
from webservice.serving.request_log import Trace
from webservice.store.confirmation import NotConfirmed
from webservice.store.session_values import Session

log = logging.getLogger(__name__)

PATHS = ("/webservice.php", "/webservice")
#: Every method is answered with the envelope; GET and POST are the ones clients use. OPTIONS too:
#: a CORS preflight gets no CORS headers, so browsers keep other origins out.
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

#: Methods answered without running the operation: a CORS preflight, and HEAD, whose answer has
#: no body (a HEAD getchallenge would hand out a token nobody sees).
NOT_DISPATCHED = frozenset({"OPTIONS", "HEAD"})

blueprint = Blueprint("webservice", __name__)


def handle() -> Response:
    """The view (a request the lean path passed on, or one it never sees: lean_path.py)."""
    browser = Browser.of_flask()
    answer = respond(current_gateway(), browser.request, browser)
    assert answer is not None  # only the lean path is ever handed back a request
    return response_of(answer)


def response_of(answer: Answer) -> Response:
    """The view's response to ``answer`` (before the after-request hooks)."""
    response = envelope.response(answer.body)
    response.headers[request_log.REQUEST_ID_HEADER] = answer.request_id
    return response


@dataclass(frozen=True)
class Answer:
    """The envelope's bytes and the request id they are sent with."""

    body: bytes
    request_id: str


def respond(gateway: Gateway, req: Request, browser: Browser) -> Answer | None:
    """Answers a webservice.php request: the envelope, logged and counted. Outside Flask's
    request context (the lean path: ``browser`` says), answers None, before anything has
    happened, when the operation needs that context (Operation.uses_flask_request, or
    NeedsRequestContext)."""
    environ = req.environ
    trace = Trace(request_log.request_id(environ))
    result: Any = None
    error: WebServiceError | None = None
    if req.method in NOT_DISPATCHED:
        error = method_not_allowed(req.method)
    else:
        try:
            result = _dispatch(gateway, req, trace, browser)
        except NeedsRequestContext:
            return None
        except WebServiceError as raised:
            error = _untraced(raised)
        except NotConfirmed as raised:
            log.warning("not confirmed by the replicas: %s", raised)
            error = not_confirmed(raised.what)
        except RedisError as raised:
            log.warning("session store unavailable: %s", type(raised).__name__)
            error = service_unavailable()
        except RequestEntityTooLarge:
            error = request_too_large(gateway)
        except HTTPException as raised:
            error = WebServiceError(
                ErrorCode.INVALID_PARAMETER, f"Malformed request: {raised.description}"
            )
        except Exception:
            log.exception("operation failed (request %s)", trace.request_id)
            error = internal_error()
    if error is None:
        try:
            body, code = envelope.success_body(result), metrics.OK
        except Exception:  # a result JSON cannot carry (text that is not valid Unicode)
            log.exception("operation failed (request %s)", trace.request_id)
            error = internal_error()
    if error is not None:
        body, code = envelope.failure_body(error), error.code
    seconds = request_log.finish(trace, code, environ)
    metrics.observe_request(trace.operation, code, seconds)
    return Answer(body, trace.request_id)


def _untraced(error: WebServiceError) -> WebServiceError:
    """``error`` and the exceptions it was raised while handling, without their tracebacks.

    A traceback holds the frames it passed through, and a frame that keeps the exception (in a
    variable, such as ``error`` here, or ``except ... as`` while it raises the next one) closes
    a reference cycle. Every refused request would leave one (dozens of objects: its frames, its
    request) for the cyclic garbage collector, whose passes stall the worker. The envelope needs
    only the error's code and message; an unexpected failure is logged with its traceback
    elsewhere (``log.exception``)."""
    raised: BaseException | None = error
    while raised is not None:
        raised.__traceback__ = None
        raised = raised.__context__
    return error


def _dispatch(gateway: Gateway, req: Request, trace: Trace, browser: Browser) -> object:
    settings = gateway.settings
    # The endpoint's own bounds, whatever the host app allows its other views (Flask 3.1).
    req.max_content_length = settings["MAX_CONTENT_LENGTH"]
    req.max_form_parts = settings["MAX_FORM_PARTS"]
    parsed = parse_request(
        req,
        settings["MAX_FORM_PARTS"],
        settings["MAX_PARAMETER_NAME_LENGTH"],
        settings["MAX_PARAMETER_LENGTH"],
    )
    op = gateway.operations.get(parsed.operation) if parsed.operation else None
    if op is not None and op.uses_flask_request:
        browser.require_request_context()
    trace.requested = parsed.operation
    trace.address = parsed.client.address
    if op is None:
        raise unknown_operation()
    trace.operation = op.name
    profile = settings["WIRE_PROFILE"]

    def check_session() -> tuple[Session, bool]:
        found = gateway.sessions.lookup(parsed.session_id)
        ended = False
        if found == "unknown" and op.ends_sessions:
            # A retry of a revocation whose confirmation came too late (REDIS_WAIT_REPLICAS).
            recent = gateway.sessions.recently_ended(parsed.session_id)
            found, ended = (recent, True) if recent is not None else (found, False)
        if isinstance(found, str):
            raise session_refused(found, profile)
        acts_for(found)
        return found, ended

    def acts_for(session: Session) -> None:
        trace.user, trace.session = session.username, session.handle

    session = None
    ended = False
    deferred: SessionCheck | None = None
    if not op.needs_session:
        request_log.learn_user(trace, parsed.params.get("username"))
    elif not op.checks_own_session:
        session, ended = check_session()
    elif parsed.session_id is None:
        raise session_refused("missing", profile)
    else:
        deferred = check_session
    try:
        params = op.load_params(parsed.params)
    except WebServiceError:
        if deferred is not None:
            deferred()  # a dead session is refused before bad parameters, as for the others
        raise
    context = OperationContext(
        gateway, parsed.client, session, parsed.session_id, browser, ended, acts_for, deferred
    )
    return op.handler(context, params)


def request_too_large(gateway: Gateway | None = None) -> WebServiceError:
    limit = (gateway or current_gateway()).settings["MAX_CONTENT_LENGTH"]
    return WebServiceError(ErrorCode.REQUEST_TOO_LARGE, f"Request body exceeds {limit} bytes")


def answered_elsewhere(response: Response) -> None:
    """Logs and counts an answer to these paths that an app-wide error handler gave (a Redis
    failure while the web session was opened, before this view ran)."""
    try:
        code = json.loads(response.get_data())["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = f"HTTP_{response.status_code}"
    trace = Trace(request_log.request_id(request.environ))
    seconds = request_log.finish(trace, code, request.environ)
    response.headers[request_log.REQUEST_ID_HEADER] = trace.request_id
    metrics.observe_request(None, code, seconds)


#: The security headers of every answer (the envelope view never sets these itself: no checks).
#: ``default-src 'none'``: a JSON answer opened as a page can load and run nothing; ``no-store``:
#: answers hold session ids and tokens.
HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
)


def add_headers(response: Response) -> Response:
    add = response.headers.add
    for name, value in HEADERS:
        add(name, value)
    return response


for _path, _name in (("/webservice.php", "webservice_php"), ("/webservice", "webservice")):
    blueprint.add_url_rule(
        _path, _name, handle, methods=METHODS, provide_automatic_options=False
    )
# A blueprint's own hook: the hot path pays no check of which view answered.
blueprint.after_request(add_headers)


def init_app(app: Flask) -> None:
    """Serves the endpoint. A method no route of the app takes (TRACE, PROPFIND, ...) on its
    paths still gets the envelope (METHOD_NOT_ALLOWED), unless the app answers 405 itself."""
    app.register_blueprint(blueprint)
    if 405 not in app.error_handler_spec[None]:
        app.register_error_handler(405, _method_not_allowed)


def _method_not_allowed(error: HTTPException) -> Any:
    if request.path not in PATHS:
        return error
    return add_headers(envelope.failure(method_not_allowed(request.method)))
