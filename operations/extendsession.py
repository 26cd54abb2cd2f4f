"""``extendsession``: an API session for the page of a person logged in to the web app."""

from __future__ import annotations

from typing import Any

from operations.login import session_result
from webservice.plugin import (
    CSRF_HEADER,
    ErrorCode,
    OperationContext,
    WebServiceError,
    authentication_required,
    has_valid_csrf_header,
    operation,
    origin_verdict,
)


def cross_site_refused() -> WebServiceError:
    return WebServiceError(
        ErrorCode.ACCESS_DENIED,
        f"Cross-site request refused: send the {CSRF_HEADER} header from the gateway's pages",
    )


def authentication_failed() -> WebServiceError:
    return WebServiceError(ErrorCode.AUTHENTICATION_FAILURE, "Authentication Failed")


@operation("extendsession", needs_session=False, uses_flask_request=False)
def extendsession(context: OperationContext, params: dict[str, Any]) -> dict[str, str]:
    """Gives the web login of this browser a new API session, linked to it.

    Needs the app's session cookie and proof of same origin: an ``Origin`` that is the app's own
    (or trusted), or, without ``Origin``, the page's CSRF token in ``X-CSRFToken``. A foreign
    ``Origin`` is refused before anything else is looked at. The API session has its own id;
    logging out of it or of the web login ends both. The audit entry goes in the round trip that
    adds the session, and is taken back if the web login turns out to have ended.
    """
    web, browser = context.gateway.web, context.browser
    if not web.has_cookie(browser):
        raise authentication_required()
    settings = context.gateway.settings
    origin_ok = origin_verdict(
        settings["PUBLIC_ORIGINS"], settings["TRUSTED_ORIGINS"], browser.request
    )
    if origin_ok is False:
        raise cross_site_refused()
    if origin_ok is None:
        # Then the page's token is the proof: Flask-WTF checks it, in Flask's request context
        # (without one, the request is handed to Flask's path here, before anything happened).
        browser.require_request_context()
    if web.claimed_id(browser) is None:
        raise authentication_failed()
    if origin_ok is None and not has_valid_csrf_header(browser):
        raise cross_site_refused()
    extended = web.extend(browser)
    if extended is None:
        raise authentication_failed()
    session_id, session = extended
    context.acts_for(session)
    return session_result(context.gateway.settings, str(session_id), session.user_id)
