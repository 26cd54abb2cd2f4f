"""``login``: trades a challenge token and the proof MD5(token + access key) for an API session."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webservice.plugin import (
    ErrorCode,
    LoginRefused,
    OperationContext,
    Params,
    Refusal,
    Session,
    String,
    WebServiceError,
    operation,
    too_many_requests,
    user_not_found,
    webservice_user_id,
)


class LoginParams(Params):
    username = String(required=True)
    accessKey = String(required=True)


#: What the client is told for each refusal (coreBOS's codes and messages).
_ANSWERS = {
    Refusal.NOT_FOUND: user_not_found,
    Refusal.NO_LIVE_TOKEN: lambda: WebServiceError(
        ErrorCode.INVALID_AUTH_TOKEN, "Specified token is invalid or expired"
    ),
    Refusal.NO_ACCESS_KEY: lambda: WebServiceError(
        ErrorCode.ACCESSKEY_UNDEFINED, "Access key for the user is undefined"
    ),
    Refusal.INACTIVE: lambda: WebServiceError(
        ErrorCode.AUTHENTICATION_REQUIRED, "Given user is inactive"
    ),
    Refusal.BAD_CREDENTIALS: lambda: WebServiceError(
        ErrorCode.INVALID_USER_CREDENTIALS, "Invalid username or password"
    ),
}


@operation("login", params=LoginParams, needs_session=False, uses_flask_request=False)
def login(context: OperationContext, params: dict[str, Any]) -> dict[str, str]:
    """Starts an API session for a user that proves its access key against a challenge token.

    Two round trips whatever happens (see webservice/auth/login.py).
    """
    try:
        session_id, user = context.gateway.logins.api_login(
            params["username"], params["accessKey"], context.client
        )
    except LoginRefused as refused:
        if refused.answer == Refusal.LIMITED:
            raise too_many_requests("failed logins", refused.retry_after or 1) from None
        raise _ANSWERS[refused.answer]() from None
    context.acts_for(Session(user.id, user.username, session_id.family_id, session_id.member))
    return session_result(context.gateway.settings, str(session_id), user.id)


def session_result(settings: Mapping[str, Any], session_name: str, user_id: int) -> dict[str, str]:
    """The four keys that ``login`` and ``extendsession`` answer with."""
    return {
        "sessionName": session_name,
        "userId": webservice_user_id(user_id),
        "version": settings["API_VERSION"],
        "vtigerVersion": settings["VTIGER_VERSION"],
    }
