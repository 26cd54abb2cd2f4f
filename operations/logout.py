"""``logout``: ends a session and every session linked to it."""

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


class LogoutParams(Params):
    sessionName = String()


@operation("logout", params=LogoutParams)
def logout(context: OperationContext, params: dict[str, Any]) -> dict[str, str]:
    """Ends the session named by sessionName (else the caller's) and its whole family.

    A caller authenticated by the header may name another session of the same user. The audit
    entry goes in the round trip that ends the family.
    """
    caller = context.require_session()
    session = caller
    target = params.get("sessionName")
    if target is not None and target != context.session_id:
        named = context.gateway.sessions.lookup(target)
        if isinstance(named, str):
            raise session_refused(named, context.gateway.settings["WIRE_PROFILE"])
        if named.user_id != caller.user_id:
            raise WebServiceError(ErrorCode.ACCESS_DENIED, "That session belongs to another user")
        session = named
    by = f"by {caller.handle}" if session.handle != caller.handle else ""
    context.gateway.endings.family(
        session, SessionEvent.of_client("api", context.client, reason="logout", detail=by)
    )
    # The misspelling is what clients compare against.
    return {"message": "successfull"}
