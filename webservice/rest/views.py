"""The REST session API: log out, list my sessions, end them (``/v1``).

============================  ================================================================
``POST /v1/auth/logout``      200 ``{"message": "Logged out successfully"}``
``DELETE /v1/auth/session``   204
``GET /v1/me/sessions``       200 ``{"data": [session, ...]}``, newest first
``DELETE /v1/me/sessions``    204: ends every session of the caller (``?keep=current``: but its
                              own family)
``DELETE /v1/me/sessions/ID`` 204: ends the family of the caller's session ``ID`` (a public
                              handle); someone else's or an unknown one: 204, nothing happens
============================  ================================================================

The two logouts end every family the request names (its bearer session's and its cookie's web
login), clear the browser's session (the CSRF token lives in it) and its cookies, and succeed
whether or not anything was live: a retried logout is a logout. They need no CSRF proof (they
can only end the caller's own sessions). The other unsafe requests, when the session cookie
authenticates them, need a same-origin ``Origin`` or the page's token in ``X-CSRFToken``
(extendsession's rule). Every ending is announced (``family_ended``), so the audit trail writes
it in the ending's own round trip.

Each path takes every method and answers the ones it does not serve itself (405 with ``Allow``;
``OPTIONS``: 204 with ``Allow`` and no CORS headers, so other origins stay out); unknown paths
under ``/v1/auth`` and ``/v1/me`` are 404. So every answer here is this blueprint's: problem
details and the security headers, even for a host whose own errors look different.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, request, session
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from webservice.api.gateway import Gateway, current_gateway
from webservice.auth import csrf
from webservice.auth.web_login import client_info
from webservice.events import SessionEvent
from webservice.rest.caller import Caller, require_caller, sessions_named
from webservice.rest.problems import Problem, problem_response
from webservice.store.confirmation import NotConfirmed
from webservice.store.audit import rfc3339
from webservice.store.session_values import SessionView
from webservice.store.tokens import family_of

log = logging.getLogger(__name__)

PREFIX = "/v1"
LOGOUT_MESSAGE = "Logged out successfully"
#: Every method a route is registered for; the ones a path does not serve get a 405 problem.
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: On every answer: nothing in it may load or run as a page, be framed, or be cached.
HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
)
#: The "remember me" cookie of Flask-Login, cleared by a logout when the browser has one.
_REMEMBER_COOKIE = ("REMEMBER_COOKIE_NAME", "remember_token")

blueprint = Blueprint("wsgate_rest", __name__, url_prefix=PREFIX)
Handler = Callable[[Gateway], Response]
#: The methods each view serves, by endpoint (for the ``Allow`` header).
ALLOWED: dict[str, str] = {}


def route(path: str, handlers: dict[str, Handler]) -> None:
    """Serves ``path``: each method in ``handlers``, 405 (or OPTIONS' 204) for the others."""
    allowed = ", ".join(sorted({*handlers, *(["HEAD"] if "GET" in handlers else []), "OPTIONS"}))
    endpoint = path.strip("/").replace("/", "_").replace("<", "").replace(">", "")
    ALLOWED[f"{blueprint.name}.{endpoint}"] = allowed

    def view(**kwargs: Any) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        if method == "OPTIONS":
            response = _no_content()
            response.headers["Allow"] = allowed
            return response
        handler = handlers.get(method)
        if handler is None:
            raise Problem(
                405,
                f"{request.method} is not allowed here.",
                {"Allow": allowed},
            )
        gateway = current_gateway()
        _refuse_large_body(gateway)
        return handler(gateway, **kwargs)

    blueprint.add_url_rule(
        path, endpoint, view, methods=ALL_METHODS, provide_automatic_options=False
    )


def _refuse_large_body(gateway: Gateway) -> None:
    """No route here reads a body; one larger than the endpoint's bound is refused unread."""
    limit = gateway.settings["MAX_CONTENT_LENGTH"]
    if (request.content_length or 0) > limit:
        raise Problem(413, f"Request body exceeds {limit} bytes.")


# --- logout ----------------------------------------------------------------------------------


def logout(gateway: Gateway) -> Response:
    _end_named_sessions(gateway)
    return _clearing_cookies(_json({"message": LOGOUT_MESSAGE}))


def delete_session(gateway: Gateway) -> Response:
    _end_named_sessions(gateway)
    return _clearing_cookies(_no_content())


def _end_named_sessions(gateway: Gateway) -> None:
    event = SessionEvent.of_client("rest", client_info(), reason="logout")
    for named in sessions_named(gateway):
        gateway.endings.family(named, event)
    gateway.web.forget()
    _log_out_of_flask_login()


def _log_out_of_flask_login() -> None:
    """On a host with Flask-Login, its own logout too (its ``user_logged_out`` receivers hear of
    it; the family has ended already)."""
    if getattr(current_app, "login_manager", None) is None:
        return
    from flask_login import logout_user

    logout_user()


def _clearing_cookies(response: Response) -> Response:
    """Expires the session cookie (emptied and marked modified, the app's session interface
    deletes it as it saves) and Flask-Login's "remember me" cookie, if the browser sent one."""
    session.clear()
    session.modified = True
    app = current_app
    remember = app.config.get(*_REMEMBER_COOKIE)
    if remember in request.cookies:
        response.delete_cookie(
            remember,
            path=app.config.get("REMEMBER_COOKIE_PATH", "/"),
            domain=app.config.get("REMEMBER_COOKIE_DOMAIN"),
        )
    return response


def _no_content() -> Response:
    response = Response(status=204)
    del response.headers["Content-Type"]
    return response


# --- my sessions -------------------------------------------------------------------------------


def list_sessions(gateway: Gateway) -> Response:
    caller = require_caller(gateway)
    views = gateway.sessions.list_for_user(caller.session.user_id)
    data = [_described(view, view.handle == caller.session.handle) for view in views]
    return _json({"data": data})


def end_all_sessions(gateway: Gateway) -> Response:
    keep = request.args.get("keep")
    if keep not in (None, "current"):
        raise Problem(400, "keep takes one value: 'current' (keep the caller's own sessions).")
    caller = _unsafe_caller(gateway)
    event = SessionEvent.of_client(
        "rest",
        client_info(),
        user=caller.session.username,
        handle=caller.session.handle,
        reason="endallsessions",
        detail="others only" if keep else "",
    )
    kept = caller.session.family_id if keep else None
    gateway.endings.all_of_user(caller.session.user_id, event, keep_family=kept)
    response = _no_content()
    return response if keep else _ended_own(gateway, caller, response)


def end_session(gateway: Gateway, handle: str) -> Response:
    caller = _unsafe_caller(gateway)
    event = SessionEvent.of_client(
        "rest",
        client_info(),
        user=caller.session.username,
        reason="endsession",
        detail=f"by {caller.session.handle}",
    )
    ended = gateway.endings.by_handle(caller.session.user_id, handle, event)
    response = _no_content()
    own = ended and family_of(handle) == caller.session.family_id
    return _ended_own(gateway, caller, response) if own else response


def _unsafe_caller(gateway: Gateway) -> Caller:
    """The caller of a request that ends sessions: with the cookie, only from the app's own
    pages (a foreign ``Origin`` is refused outright; without one, the CSRF header is needed)."""
    caller = require_caller(gateway)
    if caller.by_cookie:
        settings = gateway.settings
        verdict = csrf.origin_verdict(settings["PUBLIC_ORIGINS"], settings["TRUSTED_ORIGINS"])
        if verdict is False or (verdict is None and not csrf.has_valid_csrf_header()):
            raise Problem(
                403,
                f"Cross-site request refused: send the {csrf.CSRF_HEADER} header from the "
                "app's pages, or use a bearer session.",
            )
    return caller


def _ended_own(gateway: Gateway, caller: Caller, response: Response) -> Response:
    """The caller's own family has ended: a browser forgets its login."""
    if not caller.by_cookie:
        return response
    gateway.web.forget()
    return _clearing_cookies(response)


def _described(view: SessionView, current: bool) -> dict[str, Any]:
    return {
        "id": view.handle,
        "kind": view.kind,
        "linked": view.linked,
        "current": current,
        "ipAddress": view.address,
        "userAgent": view.user_agent,
        "createdAt": rfc3339(view.created),
        "lastActivityAt": rfc3339(view.last_used),
        "expiresAt": rfc3339(view.expires),
    }


def _json(document: Any) -> Response:
    return Response(json.dumps(document), mimetype="application/json")


# --- errors and headers ------------------------------------------------------------------------


def not_found(gateway: Gateway, **_: Any) -> Response:
    raise Problem(404, f"No such resource: {request.path}")


@blueprint.errorhandler(Problem)
def _problem(error: Problem) -> Response:
    return error.response()


@blueprint.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    return problem_response(error.code or 500, error.description or "")


@blueprint.errorhandler(RedisError)
def _redis_error(error: RedisError) -> Response:
    if isinstance(error, NotConfirmed):
        # Made on the master; its replicas did not confirm it in time (REDIS_WAIT_REPLICAS).
        log.warning("not confirmed by the replicas: %s", error)
        return problem_response(503, f"{error.what} not confirmed; retry.", {"Retry-After": "1"})
    log.warning("session store unavailable: %s", type(error).__name__)
    detail = "The session store is unreachable. Nothing is lost; try again shortly."
    return problem_response(503, detail, {"Retry-After": "1"})


def method_not_allowed(error: HTTPException) -> Response:
    """A method no route of the app takes at all (TRACE, QUERY, ...) on one of these paths: it
    fails in routing, before the blueprint is known, so the app's 405 handler asks this."""
    endpoint = ""
    try:
        endpoint, _ = current_app.url_map.bind_to_environ(request.environ).match(method="OPTIONS")
    except HTTPException:
        pass
    headers = {"Allow": ALLOWED[endpoint]} if endpoint in ALLOWED else {}
    return add_headers(problem_response(405, f"{request.method} is not allowed here.", headers))


@blueprint.after_request
def add_headers(response: Response) -> Response:
    headers = response.headers
    for name, value in HEADERS:
        if name not in headers:
            headers[name] = value
    return response


route("/auth/logout", {"POST": logout})
route("/auth/session", {"DELETE": delete_session})
route("/me/sessions", {"GET": list_sessions, "DELETE": end_all_sessions})
route("/me/sessions/<handle>", {"DELETE": end_session})
for _unknown in ("/auth/<path:rest>", "/me/<path:rest>"):
    route(_unknown, {method: not_found for method in ALL_METHODS if method != "OPTIONS"})
