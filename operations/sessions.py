"""Session self-service for API clients: list my sessions, end one by its handle, end them all.

A handle (``listsessions``) names a session publicly; it is never a credential. Ending a session
ends its whole family: a web login and the API sessions linked to it end together. Every ending is
in the audit trail, written in the round trip that ends the sessions. A retry of an ending whose
confirmation came too late (REDIS_WAIT_REPLICAS) is told it succeeded, and ends nothing more.
"""

from __future__ import annotations

from typing import Any

from webservice.plugin import (
    ErrorCode,
    OperationContext,
    Params,
    SessionEvent,
    String,
    WebServiceError,
    operation,
    session_refused,
)


@operation("listsessions", method="GET", uses_flask_request=False)
def listsessions(context: OperationContext, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Lists the caller's live sessions, web and API, newest first; the caller's is marked current."""
    caller = context.require_session()
    return [
        {**view.as_dict(), "current": view.handle == caller.handle}
        for view in context.gateway.sessions.list_for_user(caller.user_id)
    ]


class EndSessionParams(Params):
    handle = String(required=True)


@operation(
    "endsession", params=EndSessionParams, ends_sessions=True, uses_flask_request=False
)
def endsession(context: OperationContext, params: dict[str, Any]) -> dict[str, str]:
    """Ends one of the caller's sessions, named by its handle, with every session linked to it."""
    caller = context.require_session()
    if context.session_ended and params["handle"].partition(":")[0] != caller.family_id:
        # The caller's own family ended, and this is no retry of ending it.
        raise session_refused("unknown", context.gateway.settings["WIRE_PROFILE"])
    event = SessionEvent.of_client(
        "api",
        context.client,
        user=caller.username,
        reason="endsession",
        detail=f"by {caller.handle}",
    )
    if not context.gateway.endings.by_handle(caller.user_id, params["handle"], event):
        raise WebServiceError(
            ErrorCode.INVALID_PARAMETER, "Invalid parameter handle: no live session of yours has it"
        )
    return {"message": "ended"}


@operation("endallsessions", ends_sessions=True, uses_flask_request=False)
def endallsessions(context: OperationContext, params: dict[str, Any]) -> dict[str, int]:
    """Ends every session of the caller, the caller's own included."""
    caller = context.require_session()
    if context.session_ended:
        # A retry: the first try ended them all (and a revoked session ends nothing more).
        return {"ended": 0}
    event = SessionEvent.of_client(
        "api", context.client, user=caller.username, handle=caller.handle, reason="endallsessions"
    )
    return {"ended": context.gateway.endings.all_of_user(caller.user_id, event)}
