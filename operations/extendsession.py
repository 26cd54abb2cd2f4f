"""``extendsession``: an API session for the page of a person logged in to the web UI."""

from __future__ import annotations

from typing import Any

from operations.login import session_result
from webservice.api.registry import operation
from webservice.store.audit import AuditEvent
from webservice.api.context import OperationContext
from webservice.auth.csrf import CSRF_HEADER, has_valid_csrf_header, origin_verdict
from webservice.api.errors import ErrorCode, WebServiceError, authentication_required
from webservice.auth.web_login import claimed_username, claims_login, extend_login, has_web_cookie


def cross_site_refused() -> WebServiceError:
    return WebServiceError(
        ErrorCode.ACCESS_DENIED,
        f"Cross-site request refused: send the {CSRF_HEADER} header from the gateway's pages",
    )


def authentication_failed() -> WebServiceError:
    return WebServiceError(ErrorCode.AUTHENTICATION_FAILURE, "Authentication Failed")


@operation("extendsession", needs_session=False)
def extendsession(context: OperationContext, params: dict[str, Any]) -> dict[str, str]:
    """Gives the web-UI login of this browser a new API session, linked to it.

    Needs the web session cookie and proof of same origin: an ``Origin`` that is the gateway's own
    (or trusted), or, without ``Origin``, the page's CSRF token in ``X-CSRFToken``. A foreign
    ``Origin`` is refused before anything else is looked at. The API session has its own id;
    logging out of it or of the web UI ends both. The audit entry goes in the round trip that adds
    the session, and is taken back if the web login turns out to have ended.
    """
    if not has_web_cookie():
        raise authentication_required()
    origin_ok = origin_verdict()
    if origin_ok is False:
        raise cross_site_refused()
    if not claims_login():
        raise authentication_failed()
    if origin_ok is None and not has_valid_csrf_header():
        raise cross_site_refused()
    entry = context.gateway.audit.pending(
        AuditEvent.of_client("extend", "api", context.client, user=claimed_username())
    )
    extended = extend_login(also=entry)
    if extended is None:
        entry.retract()
        raise authentication_failed()
    session_id, session = extended
    return session_result(context.gateway.settings, session_id, session.user_id)
