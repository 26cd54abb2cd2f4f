"""``getchallenge``: a single-use token that a login proves knowledge of the access key with."""

from __future__ import annotations

from typing import Any

from webservice.plugin import (
    LoginRefused,
    OperationContext,
    Params,
    String,
    operation,
    too_many_requests,
    user_not_found,
)


class GetChallengeParams(Params):
    username = String(required=True)


@operation(
    "getchallenge",
    params=GetChallengeParams,
    method="GET",
    needs_session=False,
    uses_flask_request=False,
)
def getchallenge(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """Hands out a new challenge token for a user, valid once within CHALLENGE_TTL seconds.

    Limited per client address (CHALLENGE_RATE_LIMIT per second). Under HIDE_UNKNOWN_USERS a name
    that is no user gets a decoy token, answered exactly like a real one.
    """
    try:
        challenge = context.gateway.logins.challenge(params["username"], context.client.address)
    except LoginRefused as refused:  # LIMITED: the address's rate
        raise too_many_requests("challenge requests", refused.retry_after or 1) from None
    if challenge is None:
        raise user_not_found(params["username"])
    return {
        "token": challenge.token,
        "serverTime": challenge.server_time,
        "expireTime": challenge.expire_time,
    }
