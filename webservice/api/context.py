"""What an operation handler is given besides its parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from webservice.auth.browser import Browser
from webservice.services import Services
from webservice.store.sessions import ClientInfo, Session


def _unheard(session: Session) -> None:
    """Where :attr:`OperationContext.started` goes when nobody listens."""


@dataclass(frozen=True)
class OperationContext:
    """The gateway's services, the caller, and (for operations that need one) its live session."""

    gateway: Services
    client: ClientInfo
    #: The validated session; ``None`` for operations that run without one.
    session: Session | None
    #: The session id as the request named it (header or ``sessionName``), unvalidated.
    session_id: str | None
    #: The request and the browser's session data (the host's web login): what an operation
    #: declared ``uses_flask_request=False`` reads instead of Flask's ``request`` and
    #: ``session``, which the lean path does not set up (auth/browser.py).
    browser: Browser
    #: For an operation that ``ends_sessions``: ``session`` is no longer live, a revocation ended
    #: it moments ago (within REDIS_WAIT_RETRY_GRACE) and the replicas have now confirmed that.
    #: The request is the retry of a revocation whose confirmation came too late: answer what
    #: the first try would have, and act for nobody.
    session_ended: bool = False
    #: An operation that starts a session (``login``, ``extendsession``) names it here: the
    #: request log then writes its user and handle (never its id).
    started: Callable[[Session], None] = _unheard

    def require_session(self) -> Session:
        if self.session is None:
            raise RuntimeError("this operation was registered with needs_session=False")
        return self.session
