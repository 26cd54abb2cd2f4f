"""``login``: trades a challenge token and the proof MD5(token + access key) for an API session."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from operations.params import Params, String
from operations.registry import operation
from webservice.challenges import find_proven_token, has_unexpired
from webservice.context import OperationContext
from webservice.errors import ErrorCode, WebServiceError, user_not_found
from webservice.tokens import SessionId
from webservice.users import webservice_user_id


class LoginParams(Params):
    username = String(required=True)
    accessKey = String(required=True)


def invalid_token() -> WebServiceError:
    return WebServiceError(ErrorCode.INVALID_AUTH_TOKEN, "Specified token is invalid or expired")


@operation("login", params=LoginParams, needs_session=False)
def login(context: OperationContext, params: dict[str, Any]) -> dict[str, str]:
    """Starts an API session for a user that proves its access key against a challenge token.

    The checks run in coreBOS's order: user, token, access key, proof, active.
    """
    gateway = context.gateway
    user, tokens = gateway.users.get_with_challenges(params["username"])
    if user is None:
        raise user_not_found()
    if not has_unexpired(tokens):
        raise invalid_token()
    if user.access_key is None:
        raise WebServiceError(ErrorCode.ACCESSKEY_UNDEFINED, "Access key for the user is undefined")
    token = find_proven_token(tokens, user.access_key, params["accessKey"])
    if token is None:
        raise WebServiceError(ErrorCode.INVALID_USER_CREDENTIALS, "Invalid username or password")
    if not user.active:
        raise WebServiceError(ErrorCode.AUTHENTICATION_REQUIRED, "Given user is inactive")
    session_id = gateway.sessions.open_from_challenge(token, user.id, user.username, context.client)
    if session_id is None:
        raise invalid_token()
    return session_result(gateway.settings, session_id, user.id)


def session_result(
    settings: Mapping[str, Any], session_id: SessionId, user_id: int
) -> dict[str, str]:
    """The four keys that ``login`` and ``extendsession`` answer with."""
    return {
        "sessionName": str(session_id),
        "userId": webservice_user_id(user_id),
        "version": settings["API_VERSION"],
        "vtigerVersion": settings["VTIGER_VERSION"],
    }
