"""The error codes of the wire contract and the exception that carries one to the envelope."""

from __future__ import annotations

from webservice.store.users import is_valid_username


class ErrorCode:
    """Codes clients compare against (protocol.md §5), plus the gateway's own few."""

    UNKNOWN_OPERATION = "UNKNOWN_OPERATION"
    AUTHENTICATION_REQUIRED = "AUTHENTICATION_REQUIRED"
    AUTHENTICATION_FAILURE = "AUTHENTICATION_FAILURE"
    INVALID_AUTH_TOKEN = "INVALID_AUTH_TOKEN"
    ACCESSKEY_UNDEFINED = "ACCESSKEY_UNDEFINED"
    INVALID_USER_CREDENTIALS = "INVALID_USER_CREDENTIALS"
    MANDATORY_FIELDS_MISSING = "MANDATORY_FIELDS_MISSING"
    INVALID_PARAMETER = "INVALID_PARAMETER"
    ACCESS_DENIED = "ACCESS_DENIED"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    # Beyond coreBOS: the session store cannot be reached; retry once Redis is back.
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    # Beyond coreBOS: the body or its parameters exceed the configured limits.
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    # Beyond coreBOS: a method other than GET and POST (and their aliases PUT, PATCH, DELETE).
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    # Beyond coreBOS: too many failed logins, or a getchallenge flood, from this client or for this
    # user; the message says how many seconds to wait.
    TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"
    # The vtiger profile's (WIRE_PROFILE = "vtiger"): a dead or unknown session, one past its
    # absolute timeout, one left idle. The coreBOS profile answers all three
    # AUTHENTICATION_REQUIRED.
    INVALID_SESSIONID = "INVALID_SESSIONID"
    SESSION_EXPIRED = "SESSION_EXPIRED"
    SESSION_LEFT_IDLE = "SESSION_LEFT_IDLE"


#: The answers a wire profile gives about a session it refuses (SessionStore.lookup's reasons).
WIRE_PROFILES: dict[str, dict[str, tuple[str, str]]] = {
    "corebos": {
        reason: (ErrorCode.AUTHENTICATION_REQUIRED, "Authentication required")
        for reason in ("missing", "unknown", "expired", "idle")
    },
    "vtiger": {
        # vtiger's own spelling, which its clients may compare against.
        "missing": (ErrorCode.AUTHENTICATION_REQUIRED, "Authencation required"),
        "unknown": (ErrorCode.INVALID_SESSIONID, "Session Identifier provided is Invalid"),
        "expired": (ErrorCode.SESSION_EXPIRED, "Session has life span over please login again"),
        "idle": (ErrorCode.SESSION_LEFT_IDLE, "Session has been invalidated to due lack activity"),
    },
}


def wire_profile(value: object) -> str:
    """``WIRE_PROFILE`` checked: raises ValueError for a profile that does not exist."""
    if value not in WIRE_PROFILES:
        raise ValueError(f"WIRE_PROFILE must be one of {sorted(WIRE_PROFILES)}, not {value!r}")
    return str(value)


def session_refused(reason: str, profile: str) -> WebServiceError:
    """The error for a session that is not live, as the wire profile words it; ``reason`` is
    ``missing``, ``unknown``, ``expired`` or ``idle``."""
    code, message = WIRE_PROFILES[profile][reason]
    return WebServiceError(code, message)


class WebServiceError(Exception):
    """Raised anywhere below the endpoint; becomes ``{"success": false, "error": {...}}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def authentication_required() -> WebServiceError:
    return WebServiceError(ErrorCode.AUTHENTICATION_REQUIRED, "Authentication required")


def unknown_operation() -> WebServiceError:
    return WebServiceError(ErrorCode.UNKNOWN_OPERATION, "Unknown operation requested")


def internal_error() -> WebServiceError:
    return WebServiceError(ErrorCode.INTERNAL_SERVER_ERROR, "Unknown Error while processing request")


def service_unavailable() -> WebServiceError:
    return WebServiceError(
        ErrorCode.SERVICE_UNAVAILABLE,
        "The session store is unreachable; try again shortly",
    )


def not_confirmed(what: str) -> WebServiceError:
    """A change the replicas did not confirm in time (REDIS_WAIT_REPLICAS): it is made, and a
    retry is safe. ``what``: ``Logout`` or ``Login``."""
    return WebServiceError(ErrorCode.SERVICE_UNAVAILABLE, f"{what} not confirmed; retry")


def user_not_found(username: object = None) -> WebServiceError:
    """coreBOS's answer for a name that is no user; getchallenge's names it, as coreBOS's does
    (only a name that could be a username: anything else is never looked up or repeated)."""
    message = "Given user cannot be found"
    if is_valid_username(username):
        message += f": {username}"
    return WebServiceError(ErrorCode.AUTHENTICATION_REQUIRED, message)


def too_many_requests(what: str, retry_after: int) -> WebServiceError:
    """``what`` is e.g. "failed logins"; ``retry_after`` whole seconds (at least 1)."""
    return WebServiceError(
        ErrorCode.TOO_MANY_REQUESTS, f"Too many {what}; retry in {max(1, retry_after)} seconds"
    )


def method_not_allowed(method: str) -> WebServiceError:
    return WebServiceError(
        ErrorCode.METHOD_NOT_ALLOWED,
        f"{method} is not served: use GET or POST (no CORS: other origins are not answered)",
    )
