"""Who is calling the REST session API: an API session named by ``Authorization: Bearer
<sessionName>``, or the browser's web login named by the app's session cookie.

A bearer token wins over the cookie: a request that carries one is judged by it alone (a page
cannot make a browser send it cross-site, so it needs no CSRF proof). Both are checked in one
round trip, which also marks the session used, as every authenticated call does.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import request

from webservice.api.gateway import Gateway
from webservice.rest.problems import Problem
from webservice.store.session_values import Session

REALM = 'Bearer realm="wsgate"'


@dataclass(frozen=True)
class Caller:
    session: Session
    #: Authenticated by the session cookie (a web login), not by a bearer token.
    by_cookie: bool


def _authorization() -> tuple[bool, str]:
    """Whether the request has an ``Authorization`` header, and its bearer token ("" if the
    header is of another scheme or empty)."""
    header = request.headers.get("Authorization")
    if header is None:
        return False, ""
    scheme, _, token = header.strip().partition(" ")
    return True, token.strip() if scheme.lower() == "bearer" else ""


def bearer_token() -> str | None:
    """The token of ``Authorization: Bearer <token>``; ``None`` without the header.

    Raises a 401 problem for another scheme or an empty token (RFC 6750 ``invalid_request``).
    """
    present, token = _authorization()
    if not present:
        return None
    if not token:
        raise Problem(
            401,
            "The Authorization header must be 'Bearer <sessionName>'.",
            {"WWW-Authenticate": f'{REALM}, error="invalid_request"'},
        )
    return token


def authenticate(gateway: Gateway) -> Caller | None:
    """The caller, or ``None`` when the request names no session at all.

    Raises a 401 problem when a bearer token is given but names no live API session.
    """
    token = bearer_token()
    if token is not None:
        session = gateway.sessions.validate(token)
        if session is None:
            raise Problem(
                401,
                "The bearer session is not live: it is unknown, expired or logged out.",
                {"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
            )
        return Caller(session, by_cookie=False)
    if gateway.web.has_cookie():
        login = gateway.web.current()
        if login is not None:
            return Caller(login, by_cookie=True)
    return None


def require_caller(gateway: Gateway) -> Caller:
    caller = authenticate(gateway)
    if caller is None:
        raise Problem(
            401,
            "Log in first: send 'Authorization: Bearer <sessionName>' or the session cookie.",
            {"WWW-Authenticate": REALM},
        )
    return caller


def sessions_named(gateway: Gateway) -> list[Session]:
    """Every live session the request names, bearer and cookie both (for logout, which ends them
    all and never fails): a dead, malformed or absent one is simply not there."""
    named: list[Session] = []
    _present, token = _authorization()
    if token:
        session = gateway.sessions.validate(token)
        if session is not None:
            named.append(session)
        else:
            # The retry of a logout that its replicas did not confirm in time (REDIS_WAIT_REPLICAS)
            # succeeds only once they do (else NotConfirmed). The cookie's: WebLink.current.
            gateway.sessions.recently_ended(token)
    if gateway.web.has_cookie():
        login = gateway.web.current()
        if login is not None and all(s.family_id != login.family_id for s in named):
            named.append(login)
    return named
