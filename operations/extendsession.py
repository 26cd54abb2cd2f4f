"""``extendsession``: an API session for the page of a person logged in to the web UI."""

from __future__ import annotations

from typing import Any

from operations.login import session_result
from operations.registry import operation
from webservice.context import OperationContext
from webservice.csrf import CSRF_HEADER, is_same_origin
from webservice.errors import ErrorCode, WebServiceError, authentication_required
from webservice.web_session import extend_login, has_web_cookie


@operation("extendsession", needs_session=False)
def extendsession(context: OperationContext, params: dict[str, Any]) -> dict[str, str]:
    """Gives the web-UI login of this browser a new API session, linked to it.

    Needs the web session cookie and proof of same origin (CSRF token header or Origin). The API
    session has its own id; logging out of it or of the web UI ends both.
    """
    if not has_web_cookie():
        raise authentication_required()
    if not is_same_origin():
        raise WebServiceError(
            ErrorCode.ACCESS_DENIED,
            f"Cross-site request refused: send the {CSRF_HEADER} header from the gateway's pages",
        )
    extended = extend_login()
    if extended is None:
        raise WebServiceError(ErrorCode.AUTHENTICATION_FAILURE, "Authentication Failed")
    session_id, session = extended
    return session_result(context.gateway.settings, session_id, session.user_id)
