"""The web UI: log in, see who you are, get an API session for an in-page script, see and end your
sessions, log out. Server-rendered; every form carries a CSRF token."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from functools import wraps
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError

from webservice.api.gateway import current_gateway
from webservice.auth.login import LoginRefused, Refusal
from webservice.auth.web_login import SESSION_KEY as WEB_LOGIN_KEY
from webservice.auth.web_login import client_info
from webservice.events import SessionEvent
from webservice.store.session_values import Session
from webservice.store.tokens import family_of
from webservice.store.users import webservice_user_id

blueprint = Blueprint("web", __name__, template_folder="templates", static_folder="static")

View = TypeVar("View", bound=Callable[..., Any])


def login_required(view: View) -> View:
    """Sends browsers that are not logged in to the login page."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        login = current_login()
        if login is None:
            return redirect(url_for("web.login"))
        return view(login, *args, **kwargs)

    return guarded  # type: ignore[return-value]


def current_login() -> Session | None:
    """This browser's live web login. A browser whose login has ended keeps nothing of it: its
    session data is cleared, so its cookie is dropped."""
    claimed = WEB_LOGIN_KEY in session
    login = current_gateway().web.current()
    if login is None and claimed:
        session.clear()
    return login


@blueprint.app_template_filter("when")
def format_time(milliseconds: int) -> str:
    moment = datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form: the one login flow (auth/login.py) with a password as the proof. Failed
    logins count toward the same limits as API logins; the user record and the counters are read
    in one round trip, before the password is checked."""
    if request.method == "GET":
        if current_login() is not None:
            return redirect(url_for("web.home"))
        return render_template("login.html")
    username = request.form.get("username", "").strip()
    gateway = current_gateway()
    try:
        gateway.logins.password_login(
            username,
            request.form.get("password", ""),
            client_info(),
            gateway.users,
            lambda user, also: gateway.web.login(user.id, user.username, also),
        )
    except LoginRefused as refused:
        if refused.answer == Refusal.LIMITED:
            wait = refused.retry_after or 1
            page = render_template("login.html", retry_after=wait, username=username)
            return page, 429, {"Retry-After": str(wait)}
        # The same words whether the user exists, is inactive or mistyped the password.
        error = "Invalid username or password"
        return render_template("login.html", error=error, username=username), 401
    return redirect(url_for("web.home"))


@blueprint.post("/logout")
def logout() -> Response:
    _leave("You are logged out, and so is every API session linked to this login.")
    return redirect(url_for("web.login"))


def _leave(farewell: str, ended: bool = False) -> None:
    """Logs this browser out (unless its login has ``ended`` already), keeping no trace of the
    login: the farewell is carried by a fresh session id."""
    web = current_gateway().web
    if ended:
        web.forget()
    else:
        web.logout()
    session.clear()
    flash(farewell)
    regenerate = getattr(current_app.session_interface, "regenerate", None)
    if regenerate is not None:  # server-side sessions (a signed cookie is simply rewritten)
        regenerate(session)


@blueprint.get("/")
@login_required
def home(login: Session) -> str:
    return render_template("home.html", login=login, user_id=webservice_user_id(login.user_id))


@blueprint.get("/sessions")
@login_required
def sessions(login: Session) -> str:
    views = current_gateway().sessions.list_for_user(login.user_id)
    # This browser's family first, its web session at the top; then the rest, newest first.
    views.sort(key=lambda view: (view.family_id != login.family_id, view.kind != "web"))
    return render_template("sessions.html", login=login, sessions=views)


def _end_event(login: Session, reason: str, detail: str = "") -> SessionEvent:
    """The sessions page's ending, announced (``end`` via web in the audit trail)."""
    return SessionEvent.of_client(
        "web", client_info(), user=login.username, handle=login.handle, reason=reason, detail=detail
    )


@blueprint.post("/sessions/end")
@login_required
def end_session(login: Session) -> Response:
    """Ends the login that ``handle`` names, with every session linked to it, if it is this
    user's (announced, reason ``endsession``, only when something was ended)."""
    gateway = current_gateway()
    handle = request.form.get("handle", "")
    family = family_of(handle)
    event = _end_event(login, "endsession", detail=f"by {login.handle}")
    if not gateway.endings.by_handle(login.user_id, handle, event):
        flash("That session had already ended.")
        return redirect(url_for("web.sessions"))
    if family == login.family_id:
        _leave("You ended this browser's session and everything linked to it.", ended=True)
        return redirect(url_for("web.login"))
    flash("Session ended, with every session linked to it.")
    return redirect(url_for("web.sessions"))


@blueprint.post("/sessions/end-others")
@login_required
def end_other_sessions(login: Session) -> Response:
    """Ends every other login of this user (``endallsessions``, detail ``others only``)."""
    event = _end_event(login, "endallsessions", detail="others only")
    ended = current_gateway().endings.all_of_user(login.user_id, event, keep_family=login.family_id)
    flash(f"Ended {ended} other login(s) and the sessions linked to them.")
    return redirect(url_for("web.sessions"))


@blueprint.post("/sessions/end-all")
@login_required
def end_all_sessions(login: Session) -> Response:
    """Ends every login of this user, this browser's included (``endallsessions``)."""
    current_gateway().endings.all_of_user(login.user_id, _end_event(login, "endallsessions"))
    _leave("Every session of yours has ended.", ended=True)
    return redirect(url_for("web.login"))


@blueprint.app_errorhandler(CSRFError)
def csrf_failed(error: CSRFError) -> tuple[str, int]:
    return render_template("error.html", title="Form expired", message=error.description), 400
