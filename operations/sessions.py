"""Session self-service for API clients: list my sessions, end one by its handle, end them all.

A handle (``listsessions``) names a session publicly; it is never a credential. Ending a session
ends its whole family: a web login and the API sessions linked to it end together. Every ending is
in the audit trail, written in the round trip that ends the sessions.
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
)


@operation("listsessions", method="GET")
def listsessions(context: OperationContext, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Lists the caller's live sessions, web and API, newest first; the caller's is marked current."""
    caller = context.require_session()
    return [
        {**view.as_dict(), "current": view.handle == caller.handle}
        for view in context.gateway.sessions.list_for_user(caller.user_id)
    ]


class EndSessionParams(Params):
    handle = String(required=True)


@operation("endsession", params=EndSessionParams)
def endsession(context: OperationContext, params: dict[str, Any]) -> dict[str, str]:
    """Ends one of the caller's sessions, named by its handle, with every session linked to it."""
    caller = context.require_session()
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


@operation("endallsessions")
def endallsessions(context: OperationContext, params: dict[str, Any]) -> dict[str, int]:
    """Ends every session of the caller, the caller's own included."""
    caller = context.require_session()
    event = SessionEvent.of_client(
        "api", context.client, user=caller.username, handle=caller.handle, reason="endallsessions"
    )
    return {"ended": context.gateway.endings.all_of_user(caller.user_id, event)}
