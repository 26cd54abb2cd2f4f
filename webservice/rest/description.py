"""The REST session API's part of ``/openapi.json`` (webservice/api/openapi.py builds the rest)."""

from __future__ import annotations

from typing import Any

from webservice.rest.problems import MEDIA_TYPE
from webservice.rest.views import LOGOUT_MESSAGE, PREFIX

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_BOTH = [{"bearerSession": []}, {"webSession": []}]
_UNSAFE_COOKIE = (
    " With the session cookie, the request needs a same-origin `Origin` or the page's "
    "`X-CSRFToken` header (403 otherwise); a bearer session needs neither."
)


def _problems(*statuses: int) -> dict[str, Any]:
    meanings = {
        400: "A bad query parameter.",
        401: "No live session: none sent, or the bearer session is not live "
        "(`WWW-Authenticate` says which).",
        403: "A cookie-authenticated request from another origin, or without the CSRF header.",
        405: "A method this path does not serve (`Allow` lists those it does).",
        413: "A request body larger than the endpoint's bound (no route here takes one).",
        429: "Refused by a rate limit of the host app (`Retry-After`).",
        503: "The session store is unreachable; nothing changed (`Retry-After`).",
    }
    return {
        str(status): {
            "description": meanings[status],
            "content": {MEDIA_TYPE: {"schema": _PROBLEM}},
        }
        for status in statuses
    }


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_LOGOUT = (
    "Ends every session family the request names (its bearer session's and its cookie's web "
    "login, each with every session linked to it), empties the browser's session and expires "
    "its cookies. Succeeds whether or not anything was live, so it can be retried. Needs no "
    "CSRF proof: it can only end the caller's own sessions."
)


def describe(cookie: str) -> dict[str, Any]:
    """``paths``, ``schemas`` and ``securitySchemes`` of the REST session API."""
    logout_body = {
        "type": "object",
        "properties": {"message": {"const": LOGOUT_MESSAGE}},
        "required": ["message"],
    }
    handle = {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "A session's public handle (`id` in the listing; never a credential).",
        "schema": {"type": "string"},
    }
    keep = {
        "name": "keep",
        "in": "query",
        "required": False,
        "description": "`current`: keep the caller's own family.",
        "schema": {"const": "current"},
    }
    return {
        "paths": {
            f"{PREFIX}/auth/logout": {
                "post": {
                    "summary": "Log out",
                    "description": _LOGOUT,
                    "security": [*_BOTH, {}],
                    "responses": {
                        "200": _ok("Logged out.", logout_body),
                        **_problems(405, 413, 429, 503),
                    },
                }
            },
            f"{PREFIX}/auth/session": {
                "delete": {
                    "summary": "Log out (no body)",
                    "description": _LOGOUT,
                    "security": [*_BOTH, {}],
                    "responses": {"204": _ok("Logged out."), **_problems(405, 413, 429, 503)},
                }
            },
            f"{PREFIX}/me/sessions": {
                "get": {
                    "summary": "List my sessions",
                    "description": "Every live session of the caller's user, web and API, "
                    "newest first.",
                    "security": _BOTH,
                    "responses": {
                        "200": _ok("The sessions.", {"$ref": "#/components/schemas/SessionList"}),
                        **_problems(401, 405, 429, 503),
                    },
                },
                "delete": {
                    "summary": "End all my sessions",
                    "description": "Ends every family of the caller's user, the caller's own "
                    "included unless `keep=current`." + _UNSAFE_COOKIE,
                    "security": _BOTH,
                    "parameters": [keep],
                    "responses": {
                        "204": _ok("Ended."),
                        **_problems(400, 401, 403, 405, 413, 429, 503),
                    },
                },
            },
            f"{PREFIX}/me/sessions/{{id}}": {
                "delete": {
                    "summary": "End one of my sessions",
                    "description": "Ends the family of the caller's session `id`, with every "
                    "session linked to it. Someone else's or an unknown id: 204 all the same, "
                    "and nothing happens." + _UNSAFE_COOKIE,
                    "security": _BOTH,
                    "parameters": [handle],
                    "responses": {
                        "204": _ok("Ended, or nothing to end."),
                        **_problems(401, 403, 405, 413, 429, 503),
                    },
                }
            },
        },
        "schemas": {
            "Problem": {
                "description": "RFC 9457 problem details (application/problem+json).",
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                },
                "required": ["type", "title", "status", "detail"],
            },
            "SessionList": {
                "type": "object",
                "properties": {
                    "data": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}}
                },
                "required": ["data"],
            },
            "Session": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": "Public handle."},
                    "kind": {"enum": ["web", "api"]},
                    "linked": {
                        "type": "boolean",
                        "description": "Shares its family with other sessions (ending one "
                        "ends all).",
                    },
                    "current": {"type": "boolean", "description": "The caller's own."},
                    "ipAddress": {"type": "string"},
                    "userAgent": {"type": "string"},
                    "createdAt": {"type": "string", "format": "date-time"},
                    "lastActivityAt": {"type": "string", "format": "date-time"},
                    "expiresAt": {
                        "type": "string",
                        "format": "date-time",
                        "description": "When it ends unless used again.",
                    },
                },
                "required": [
                    "id",
                    "kind",
                    "linked",
                    "current",
                    "ipAddress",
                    "userAgent",
                    "createdAt",
                    "lastActivityAt",
                    "expiresAt",
                ],
            },
        },
        "securitySchemes": {
            "bearerSession": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API session's id (login's sessionName).",
            },
            "webSession": {
                "type": "apiKey",
                "in": "cookie",
                "name": cookie,
                "description": "The app's session cookie: extendsession, and the REST session "
                "API (unsafe requests with a same-origin Origin or the X-CSRFToken header).",
            },
        },
    }
