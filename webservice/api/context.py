"""What an operation handler is given besides its parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from webservice.auth.browser import Browser
from webservice.services import Services
from webservice.store.session_values import ClientInfo, Session


def _unheard(session: Session) -> None:
    """Where :attr:`OperationContext.acts_for` goes when nobody listens."""


#: The endpoint's check of the caller's session: the live session and whether a revocation
#: ended it moments ago (:attr:`OperationContext.session_ended`); raises the refusal otherwise.
SessionCheck = Callable[[], tuple[Session, bool]]


@dataclass(frozen=True)
class OperationContext:
    """The gateway's services, the caller, and (for operations that need one) its live session."""

    gateway: Services
    client: ClientInfo
    #: The validated session; ``None`` for operations that run without one, and until
    #: :meth:`checked` for one that ``checks_own_session``.
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
    #: The session the request acts for, when the endpoint did not check it: an operation that
    #: starts one (``login``, ``extendsession``) or checks the caller's in a change of its own
    #: (``logout``) names it here; the request log then writes its user and handle (never its id).
    acts_for: Callable[[Session], None] = _unheard
    #: For an operation that ``checks_own_session``: the endpoint's check, run by :meth:`checked`.
    check_session: SessionCheck | None = None

    def require_session(self) -> Session:
        if self.session is None:
            raise RuntimeError(
                "this operation was registered with needs_session=False (or checks_own_session:"
                " call checked() first)"
            )
        return self.session

    def checked(self) -> OperationContext:
        """This context with the caller's session checked, as the endpoint checks it before
        other operations (raises its refusal)."""
        if self.check_session is None:
            return self
        session, ended = self.check_session()
        return replace(self, session=session, session_ended=ended, check_session=None)
