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


@operation(
    "logout",
    params=LogoutParams,
    ends_sessions=True,
    checks_own_session=True,
    uses_flask_request=False,
)
def logout(context: OperationContext, params: dict[str, Any]) -> dict[str, str]:
    """Ends the session named by sessionName (else the caller's) and its whole family.

    A caller authenticated by the header may name another session of the same user. The audit
    entry goes in the round trip that ends the family; the caller's own family ends in the round
    trip that checks the session, where that can be done (Endings.own_family). A retry of a logout
    whose confirmation came too late (REDIS_WAIT_REPLICAS) is told it succeeded, once the replicas
    confirm it.
    """
    profile = context.gateway.settings["WIRE_PROFILE"]
    target = params.get("sessionName")
    names_another = target is not None and target != context.session_id
    event = SessionEvent.of_client("api", context.client, reason="logout")
    if not names_another:
        ended = context.gateway.endings.own_family(context.session_id, event)
        if isinstance(ended, str):
            raise session_refused(ended, profile)
        if ended is not None:
            context.acts_for(ended)
            return LOGGED_OUT
    context = context.checked()
    caller = context.require_session()
    if context.session_ended:
        if names_another:
            raise session_refused("unknown", profile)
        return LOGGED_OUT
    session = caller
    if names_another:
        named = context.gateway.sessions.lookup(target)
        if named == "unknown":
            recent = context.gateway.sessions.recently_ended(target)
            if recent is not None and recent.user_id == caller.user_id:
                return LOGGED_OUT
        if isinstance(named, str):
            raise session_refused(named, profile)
        if named.user_id != caller.user_id:
            raise WebServiceError(ErrorCode.ACCESS_DENIED, "That session belongs to another user")
        session = named
    by = f"by {caller.handle}" if session.handle != caller.handle else ""
    context.gateway.endings.family(session, event.but(detail=by))
    return LOGGED_OUT


#: The misspelling is what clients compare against.
LOGGED_OUT = {"message": "successfull"}
