"""Flask-Login on the host: its login and logout are the web login of a session family.

Connected through Flask-Login's own signals, for the app whose ``LoginManager`` it is:

- ``user_logged_in`` (``login_user``) and ``user_loaded_from_cookie`` (a "remember me" login)
  start a family rooted in this browser's login, for ``user.get_id()`` (a numeric id: the wire
  ``userId`` is ``19x<id>``) and ``user.username`` (else the id);
- ``user_logged_out`` (``logout_user``) ends it, with every API session ``extendsession`` gave
  (when the replicas do not confirm that in time, REDIS_WAIT_REPLICAS, ``logout_user`` raises
  NotConfirmed, a ``RedisError``, and the browser stays logged in: logging out again confirms);
- ``user_accessed`` (the first use of ``current_user`` in a request, before Flask-Login loads the
  user) checks the family: when it has ended (an API ``logout`` of a linked session, an ending by
  handle, end-all, a disabled user, a timeout), or the browser's session holds a Flask-Login user
  but no web login at all, Flask-Login's keys are dropped from the session and its "remember me"
  cookie is cleared, so ``current_user`` is anonymous and ``login_required`` views send the
  browser to the login page.

Flask-Login is imported only when the host has it.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g, request, session

from webservice import events
from webservice.auth.web_login import SESSION_KEY, WebLink
from webservice.store.confirmation import NotConfirmed

#: The session keys Flask-Login keeps for a logged-in browser (as its logout_user drops them).
_FLASK_LOGIN_KEYS = ("_user_id", "_fresh", "_id", "_remember_seconds")
#: Where this request keeps Flask-Login's keys as they were before a logout (``g``).
_FLASK_LOGIN_STATE = "_wsgate_flask_login_state"


def link_flask_login(app: Flask, link_of: Any) -> None:
    """Connects Flask-Login's signals of ``app``; ``link_of(app)`` is the app's :class:`WebLink`."""
    from flask_login import signals

    def logged_in(sender: Flask, user: Any, **extra: Any) -> None:
        link: WebLink = link_of(sender)
        user_id = _numeric_id(user)
        link.login(user_id, str(getattr(user, "username", None) or user_id))

    def logged_out(sender: Flask, user: Any = None, **extra: Any) -> None:
        try:
            link_of(sender).logout()
        except NotConfirmed:
            # Flask-Login has already dropped its keys: put them back, so that the browser is
            # still logged in as far as its session says and logging out again retries.
            session.update(g.get(_FLASK_LOGIN_STATE, {}))
            raise

    def accessed(sender: Flask, **extra: Any) -> None:
        if "_user_id" not in session:
            return
        setattr(g, _FLASK_LOGIN_STATE, {k: session[k] for k in _FLASK_LOGIN_KEYS if k in session})
        if SESSION_KEY in session and link_of(sender).current() is not None:
            return
        for key in _FLASK_LOGIN_KEYS:
            session.pop(key, None)
        session.pop(SESSION_KEY, None)
        cookie = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token")
        if cookie in request.cookies:
            session["_remember"] = "clear"

    events.connect(
        app,
        {
            signals.user_logged_in: logged_in,
            signals.user_loaded_from_cookie: logged_in,
            signals.user_logged_out: logged_out,
            signals.user_accessed: accessed,
        },
    )


def _numeric_id(user: Any) -> int:
    raw = user.get_id()
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValueError(
            f"wsgate needs a numeric user id (the wire userId is 19x<id>); get_id() gave {raw!r}"
        ) from None
