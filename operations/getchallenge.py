"""``getchallenge``: a single-use token that a login proves knowledge of the access key with."""

from __future__ import annotations

from typing import Any

from operations.params import Params, String
from operations.registry import operation
from webservice.context import OperationContext
from webservice.errors import user_not_found


class GetChallengeParams(Params):
    username = String(required=True)


@operation("getchallenge", params=GetChallengeParams, method="GET", needs_session=False)
def getchallenge(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """Hands out a new challenge token for a user, valid once within CHALLENGE_TTL seconds."""
    challenge = context.gateway.challenges.issue(params["username"])
    if challenge is None:
        raise user_not_found()
    return {
        "token": challenge.token,
        "serverTime": challenge.server_time,
        "expireTime": challenge.expire_time,
    }
