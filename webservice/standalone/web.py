"""The web UI: log in, see who you are, get an API session for an in-page script, see and end your
sessions, log out. Server-rendered; every form carries a CSRF token."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError

from webservice.serving import metrics
from webservice.store.audit import AuditEvent, PendingEntry
from webservice.gateway import current_gateway
from webservice.api.request_parsing import client_info
from webservice.store.sessions import Session
from webservice.store.users import is_valid_username, webservice_user_id
from webservice.auth.web_login import current_login, end_login, start_login

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


@blueprint.app_template_filter("when")
def format_time(milliseconds: int) -> str:
    moment = datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form. Failed logins count toward the same limits as API logins (limits.py); the
    user record and the counters are read in one round trip, before the password is checked."""
    if request.method == "GET":
        if current_login() is not None:
            return redirect(url_for("web.home"))
        return render_template("login.html")
    gateway = current_gateway()
    username = request.form.get("username", "").strip()
    client = client_info(request)
    attempt = gateway.login_limits.attempt(username, client.address)
    record = gateway.users.read_for_login(username, also=attempt.queue_read)
    attempt.read(record.extra)
    wait = attempt.retry_after
    if wait is not None:
        metrics.count_login("web", "limited")
        page = render_template("login.html", retry_after=wait, username=username)
        return page, 429, {"Retry-After": str(wait)}
    trail = gateway.audit
    reason = gateway.users.password_failure(record.user, request.form.get("password", ""))
    if reason is not None:
        if not is_valid_username(username):
            reason = "invalid_username"
        event = AuditEvent.of_client(
            "login_failed",
            "web",
            client,
            user=username,
            reason=reason,
            detail="limit reached" if attempt.reaches_limit else "",
        )
        attempt.count_failure(also=trail.pending(event))
        metrics.count_login("web", "failed")
        # The same words whether the user exists, is inactive or mistyped the password.
        return render_template("login.html", error="Invalid username or password", username=username), 401
    user = record.user
    assert user is not None
    start_login(
        user.id,
        user.username,
        also=trail.pending(
            AuditEvent.of_client("login", "web", client, user=user.username),
            attempt.queue_success,
        ),
        replaced=trail.pending(
            AuditEvent.of_client("end", "web", client, reason="web_relogin")
        ),
    )
    metrics.count_login("web", "ok")
    return redirect(url_for("web.home"))


@blueprint.post("/logout")
def logout() -> Response:
    entry = current_gateway().audit.pending(
        AuditEvent.of_client("logout", "web", client_info(request))
    )
    was_logged_in = current_login() is not None
    end_login("You are logged out, and so is every API session linked to this login.", also=entry)
    if was_logged_in:
        metrics.count_logout("web")
    return redirect(url_for("web.login"))


@blueprint.get("/")
@login_required
def home(login: Session) -> str:
    return render_template(
        "home.html", login=login, user_id=webservice_user_id(login.user_id)
    )


@blueprint.get("/sessions")
@login_required
def sessions(login: Session) -> str:
    views = current_gateway().sessions.list_for_user(login.user_id)
    # This browser's family first, its web session at the top; then the rest, newest first.
    views.sort(key=lambda view: (view.family_id != login.family_id, view.kind != "web"))
    return render_template("sessions.html", login=login, sessions=views)


def _end_entry(login: Session, handle: str, reason: str, detail: str = "") -> PendingEntry:
    """The sessions page's audit entry (``end`` via web), queued with the ending it records."""
    return current_gateway().audit.pending(
        AuditEvent.of_client(
            "end",
            "web",
            client_info(request),
            user=login.username,
            handle=handle,
            reason=reason,
            detail=detail,
        )
    )


@blueprint.post("/sessions/end")
@login_required
def end_session(login: Session) -> Response:
    """Ends the login that ``handle`` names, with every session linked to it, if it is this
    user's. The audit entry (``end``, reason ``endsession``) rides in the round trip that ends
    it, and is written only when something was ended."""
    gateway = current_gateway()
    handle = request.form.get("handle", "")
    family = handle.partition(":")[0]
    entry = _end_entry(login, handle, "endsession", detail=f"by {login.handle}")
    if not gateway.sessions.end_by_handle(login.user_id, handle, also=entry):
        flash("That session had already ended.")
        return redirect(url_for("web.sessions"))
    metrics.count_revocations("web", "endsession")
    if family == login.family_id:
        end_login("You ended this browser's session and everything linked to it.")
        return redirect(url_for("web.login"))
    flash("Session ended, with every session linked to it.")
    return redirect(url_for("web.sessions"))


@blueprint.post("/sessions/end-others")
@login_required
def end_other_sessions(login: Session) -> Response:
    """Ends every other login of this user. Audited as ``end`` / ``endallsessions`` with the
    handle of this browser's session, which stays (detail ``others only``)."""
    gateway = current_gateway()
    entry = _end_entry(login, login.handle, "endallsessions", detail="others only")
    ended = gateway.sessions.end_all_for_user(
        login.user_id, keep_family=login.family_id, also=entry
    )
    metrics.count_revocations("web", "endallsessions", ended)
    flash(f"Ended {ended} other login(s) and the sessions linked to them.")
    return redirect(url_for("web.sessions"))


@blueprint.post("/sessions/end-all")
@login_required
def end_all_sessions(login: Session) -> Response:
    """Ends every login of this user, this browser's included. Audited as ``end`` /
    ``endallsessions`` with the handle of this browser's session."""
    gateway = current_gateway()
    entry = _end_entry(login, login.handle, "endallsessions")
    ended = gateway.sessions.end_all_for_user(login.user_id, also=entry)
    metrics.count_revocations("web", "endallsessions", ended)
    end_login("Every session of yours has ended.")
    return redirect(url_for("web.login"))


@blueprint.app_errorhandler(CSRFError)
def csrf_failed(error: CSRFError) -> tuple[str, int]:
    return render_template("error.html", title="Form expired", message=error.description), 400
