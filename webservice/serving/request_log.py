"""One structured line per webservice.php request, and its request id.

The line is a JSON object, written by the logger ``webservice.requests`` (to standard output,
unless logging is configured otherwise; ``WSGATE_LOG_LEVEL=WARNING`` silences it)::

    {"time": "2025-01-31T12:00:00.123Z", "request_id": "3f0c…", "operation": "listtypes",
     "code": "ok", "duration_ms": 1.42, "user": "alice", "session": "<family>:<member8>",
     "address": "203.0.113.7"}

``operation``
    The operation as requested (lower case, at most 64 characters; what an unknown one was called
    helps to find a misconfigured client); empty when the request named none.
``code``
    ``ok``, or the error code of the envelope.
``duration_ms``
    From the request's arrival in the app to its answer.
``user``, ``session``
    The username and the public handle (store/tokens.py) of the session, when known: the
    session the request authenticated with, the one ``login`` or ``extendsession`` started; for
    ``getchallenge`` and a failed ``login``, the name asked for (left empty unless it is a valid
    username, as in the audit trail). A handle names a session; it is not a credential.
``address``
    The client's address (behind proxies: see ``TRUSTED_PROXIES``).

Never a secret: no session id (``sessionName``, the ``corebos-authorization`` header), access
key, challenge token, password or cookie is written.

The request id is the client's ``X-Request-Id`` when it is sane (1 to 128 characters of
``A-Z a-z 0-9 . _ ~ : / + = @ -``), else a new random one; the answer carries it back in
``X-Request-Id``, and the log line of an operation that fails unexpectedly names it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Any

from flask import Flask, Response, request

from webservice.store.users import is_valid_username

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._~:/+=@-]{1,128}").fullmatch
#: Set in the WSGI environ by :class:`StartClock` (the arrival time) and by :func:`finish`.
STARTED = "wsgate.started"
_LOGGED = "wsgate.logged"
MAX_OPERATION_CHARS = 64

log = logging.getLogger("webservice.requests")
#: How json.dumps (ensure_ascii) writes a text: quoted, escaped, in C.
_quote = json.encoder.encode_basestring_ascii


class Trace:
    """What the endpoint learns about a request while answering it."""

    __slots__ = ("request_id", "requested", "operation", "user", "session", "address")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        #: The operation as the request named it.
        self.requested = ""
        #: The registered operation's name, once found.
        self.operation: str | None = None
        self.user = ""
        self.session = ""
        self.address: str | None = None


def request_id(environ: dict[str, Any]) -> str:
    """The client's X-Request-Id when sane, else a new one (128 random bits, hex)."""
    given = environ.get(_REQUEST_ID_ENVIRON)
    if given and _SANE_REQUEST_ID(given):
        return given
    return os.urandom(16).hex()


def learn_user(trace: Trace, username: Any) -> None:
    if not trace.user and is_valid_username(username):
        trace.user = username


def finish(trace: Trace, code: str, environ: dict[str, Any]) -> float:
    """Writes the line; answers the duration in seconds. The caller sends ``trace.request_id``
    back in the answer's X-Request-Id."""
    now = time.perf_counter()
    seconds = now - environ.get(STARTED, now)
    environ[_LOGGED] = True
    if log.isEnabledFor(logging.INFO):
        address = environ.get("REMOTE_ADDR") if trace.address is None else trace.address
        _write(line_of(trace, code, seconds, address))
    return seconds


def line_of(trace: Trace, code: str, seconds: float, address: str | None) -> str:
    """The line: what ``json.dumps`` with compact separators writes for the object of the
    module's notes, built as one f-string, each text escaped by the json module's own function
    (as json.dumps does, ``ensure_ascii``). Every request writes one: built this way it costs
    1.7 µs, against 3.9-4.9 for a dict given to json's encoder (time stamp included)."""
    return (
        f'{{"time":"{_timestamp(time.time())}","request_id":{_quote(trace.request_id)},'
        f'"operation":{_quote(trace.requested[:MAX_OPERATION_CHARS])},"code":{_quote(code)},'
        f'"duration_ms":{round(seconds * 1000, 3)!r},"user":{_quote(trace.user)},'
        f'"session":{_quote(trace.session)},'
        f'"address":{"null" if address is None else _quote(address)}}}'
    )


_second: tuple[int, str] = (-1, "")


def _timestamp(wall: float) -> str:
    """ISO 8601 in UTC with milliseconds; the part down to the second is made once a second."""
    global _second
    second, text = _second
    if second != int(wall):
        second = int(wall)
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = (second, text)
    return f"{text}.{int(wall * 1000) % 1000:03d}Z"


class StartClock:
    """WSGI middleware that notes when a request arrived (the start of its ``duration_ms``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ[STARTED] = time.perf_counter()
        return self.app(environ, start_response)


def init_app(app: Flask, paths: tuple[str, ...], fallback: Any) -> None:
    """Times every request, and gives the webservice.php answers that did not come from its view
    (a Redis failure while the web session was opened, for one) their line too: ``fallback``
    is called with the response of any request to ``paths`` that :func:`finish` did not see."""
    app.wsgi_app = StartClock(app.wsgi_app)  # type: ignore[method-assign]
    _configure_logger()

    def log_unseen(response: Response) -> Response:
        if _LOGGED not in request.environ and request.path in paths:
            fallback(response)
        return response

    app.after_request(log_unseen)


_configured = False
#: The handler this module installs (when logging was not configured for its logger already).
_own_handler: logging.StreamHandler | None = None


def _configure_logger() -> None:
    """Once per process: the bare JSON line to standard output, not through the root logger's
    format, unless logging was configured for this logger already."""
    global _configured, _own_handler
    if _configured:
        return
    _configured = True
    if not log.handlers:
        _own_handler = logging.StreamHandler(sys.stdout)
        _own_handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(_own_handler)
        log.propagate = False


def _write(line: str) -> None:
    """Logs ``line`` at INFO (the caller checked the level). While the logger has only the
    handler installed here, the line goes straight to its stream, as the handler would write it:
    building a LogRecord and passing it through the handler took half of the line's cost."""
    handlers = log.handlers
    own = _own_handler
    if (
        own is not None
        and len(handlers) == 1
        and handlers[0] is own
        and own.level <= logging.INFO
        and not (log.filters or own.filters)
    ):
        with own.lock:  # type: ignore[union-attr]
            own.stream.write(line + "\n")
            own.stream.flush()
        return
    log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, line, None, None))
