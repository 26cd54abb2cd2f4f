"""Linked logout under concurrency, proven against a real redis-server.

A web login and the API sessions that ``extendsession`` gives it are one session family
(architecture.md, "Sessions: one source of truth"); ending any member ends them all, atomically.
This module checks, on real Redis:

* the linked-logout guarantees one by one: web logout, ``logout`` of a linked API session, ending
  by handle (web ``/sessions/end`` and ``endsession``), and that logging out a standalone ``login``
  session touches nothing else;
* race 1: a web request in flight during a logout that saves its Flask-Session blob afterwards
  does not bring the login back (a request really held across the logout, and the pre-logout blob
  written back by hand);
* race 2: ``extendsession`` racing a logout never leaves a live API session of a dead web login
  (held before and after its Redis step, and a storm of threads against each kind of logout);
* a stress run: threads with their own browsers and API clients interleave every session
  operation; afterwards the invariants are checked over every family in Redis. Once in-process
  (Flask test clients) and once over HTTP against real gunicorn with two workers;
* the Redis round trips of ``extendsession``, a page view and the linked logouts.

``pytest -s`` prints the figures.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import requests
from argon2 import PasswordHasher
from flask import Flask, request, session

from tests.conftest import TEST_SETTINGS
from tests.integration.conftest import Tally, counting_client
from tests.wsclient import proof
from webservice.auth.web_login import SESSION_KEY as WEB_LOGIN_KEY
from webservice.standalone import create_app
from webservice.standalone.redis_server import RedisServer
from webservice.store.keys import RedisKeys
from webservice.store.sessions import SessionStore
from webservice.store.tokens import SessionId, handle_of
from webservice.store.users import User

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
COOKIE = "wsgate_session"
#: Argon2 at its cheapest: the tests log in to the web UI hundreds of times, and what they prove
#: does not depend on the cost of a password check (verification reads its parameters from the
#: stored hash, so only users added by these tests are affected).
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
#: Longest a test waits for a held request (it is released long before in a passing run).
HOLD_LIMIT = 10.0
HOLD_HEADER = "X-Test-Hold"

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
NOTICE = re.compile(r'<p class="notice" role="status">([^<]*)</p>')
HANDLE = re.compile(r'data-handle="([^"]+)"')


def family_of(session_id: str) -> str:
    return session_id.partition(".")[0]


def handle_for(session_id: str) -> str:
    """The public handle of an API session id (as listings show it)."""
    parsed = SessionId.parse(session_id)
    assert parsed is not None, session_id
    return handle_of(parsed.family_id, parsed.member)




# --- holding a request in flight ------------------------------------------------------------------


class Holds:
    """Lets a test hold one request at a chosen point while it does something else.

    ``before``: after Flask-Session has loaded the session (at request start) and CSRF is checked,
    before the view runs. ``after``: after the view, before Flask-Session saves the session
    (``after_request`` functions run before the save). A request opts in with ``X-Test-Hold``.
    """

    def __init__(self, app: Flask) -> None:
        self.reached = {"before": threading.Event(), "after": threading.Event()}
        self.release = {"before": threading.Event(), "after": threading.Event()}

        @app.before_request
        def hold_before() -> None:
            self._hold("before")

        @app.after_request
        def hold_after(response: Any) -> Any:
            if self._hold("after"):
                # Save the session as it was loaded, whatever SESSION_REFRESH_EACH_REQUEST says:
                # this is the late save under test.
                session.modified = True
            return response

    def _hold(self, point: str) -> bool:
        if request.headers.get(HOLD_HEADER) != point:
            return False
        self.reached[point].set()
        if not self.release[point].wait(HOLD_LIMIT):
            raise RuntimeError(f"a request held at {point!r} was never released")
        return True

    def run_held(
        self, point: str, send: Callable[[dict[str, str]], Any]
    ) -> tuple[Future, Callable[[], None]]:
        """Starts ``send(headers)`` on a thread and returns once it is held at ``point``."""
        self.reached[point].clear()
        self.release[point].clear()
        pool = ThreadPoolExecutor(max_workers=1)
        future = pool.submit(send, {HOLD_HEADER: point})
        pool.shutdown(wait=False)
        if not self.reached[point].wait(HOLD_LIMIT):
            raise AssertionError(f"the request never reached {point!r}: {future.result()}")

        def release() -> None:
            self.release[point].set()

        return future, release


# --- talking to the gateway: Flask test clients or real HTTP --------------------------------------


@dataclass
class Reply:
    status: int
    location: str | None
    text: str

    def json(self) -> dict:
        return json.loads(self.text)


def _path(location: str | None) -> str | None:
    return urlsplit(location).path if location else None


class FlaskTransport:
    """One Flask test client: one browser's cookie jar (or none, for an API client)."""

    origin = "http://localhost"

    def __init__(self, app: Flask, *, cookies: bool = True) -> None:
        self.client = app.test_client(use_cookies=cookies)

    def request(self, method: str, path: str, *, data=None, query=None, headers=None) -> Reply:
        response = self.client.open(
            path, method=method, data=data, query_string=query, headers=headers or {}
        )
        location = _path(response.headers.get("Location"))
        return Reply(response.status_code, location, response.get_data(as_text=True))

    def cookie(self) -> str | None:
        cookie = self.client.get_cookie(COOKIE)
        return cookie.value if cookie is not None else None

    def set_cookie(self, value: str) -> None:
        self.client.set_cookie(COOKIE, value)


class HttpTransport:
    """Real HTTP with one ``requests`` session (one cookie jar)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.origin = base_url
        self.http = requests.Session()

    def request(self, method: str, path: str, *, data=None, query=None, headers=None) -> Reply:
        response = self.http.request(
            method, self.base_url + path, data=data, params=query, headers=headers or {},
            allow_redirects=False, timeout=15,
        )  # fmt: skip
        return Reply(response.status_code, _path(response.headers.get("Location")), response.text)

    def cookie(self) -> str | None:
        return self.http.cookies.get(COOKIE)

    def set_cookie(self, value: str) -> None:
        self.http.cookies.set(COOKIE, value)


class Browser:
    """A person in the web UI: follows no redirects, keeps the page's CSRF token."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.csrf: str | None = None

    @property
    def sid(self) -> str | None:
        return self.transport.cookie()

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        reply = self.transport.request("GET", path, headers=headers)
        found = CSRF_META.search(reply.text)
        if found:
            self.csrf = found.group(1)
        return reply

    def post(self, path: str, **fields: str) -> Reply:
        reply = self.transport.request("POST", path, data={"csrf_token": self.csrf or "", **fields})
        assert reply.status != 400, f"POST {path} refused: {reply.text[:300]}"
        return reply

    def log_in(self, username: str, *, from_open_tab: bool = False) -> str:
        """Logs in from the login page (``from_open_tab``: a login page opened earlier, so the
        browser may already be logged in); answers the new web session's cookie value."""
        if not from_open_tab:
            page = self.get("/login")
            assert page.status == 200, f"the login page redirected to {page.location}"
        reply = self.post("/login", username=username, password=PASSWORD)
        assert (reply.status, reply.location) == (302, "/"), (reply.status, reply.text[:300])
        sid = self.sid
        assert sid
        return sid

    def page_status(self, path: str = "/") -> str:
        """``"ok"`` when the page shows, ``"login"`` when it sends the browser to log in."""
        reply = self.get(path)
        if reply.status == 200:
            return "ok"
        assert (reply.status, reply.location) == (302, "/login"), (path, reply)
        return "login"

    def log_out(self) -> None:
        reply = self.post("/logout")
        assert (reply.status, reply.location) == (302, "/login")

    def handles(self) -> list[str] | None:
        """The handles the sessions page lists; ``None`` when it sends the browser to log in."""
        reply = self.get("/sessions")
        if reply.status != 200:
            assert reply.location == "/login"
            return None
        return HANDLE.findall(reply.text)

    def notices(self, reply: Reply) -> list[str]:
        """Follows a redirect and answers the flashed messages the next page shows."""
        assert reply.status == 302 and reply.location
        return NOTICE.findall(self.get(reply.location).text)

    def extend(self, proof_by: str = "token", headers: dict[str, str] | None = None) -> dict:
        """``extendsession`` from this browser's page; same origin proven by token or Origin."""
        if proof_by == "token":
            same_origin = {"X-CSRFToken": self.csrf or ""}
        else:
            same_origin = {"Origin": self.transport.origin}
        reply = self.transport.request(
            "POST", "/webservice.php", data={"operation": "extendsession"},
            headers={**same_origin, **(headers or {})},
        )  # fmt: skip
        assert reply.status == 200
        return reply.json()

    def tab(self, transport: Any) -> Browser:
        """Another tab (its own client) carrying this browser's cookie and page token."""
        other = Browser(transport)
        assert self.sid
        other.transport.set_cookie(self.sid)
        other.csrf = self.csrf
        return other


class Api:
    """An API client of webservice.php (no cookies)."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def call(self, operation: str, method: str = "POST", **params: str) -> dict:
        fields = {"operation": operation, **params}
        if method == "GET":
            reply = self.transport.request("GET", "/webservice.php", query=fields)
        else:
            reply = self.transport.request("POST", "/webservice.php", data=fields)
        assert reply.status == 200
        return reply.json()

    def login(self, user: User) -> str:
        challenge = self.call("getchallenge", "GET", username=user.username)
        assert challenge["success"], challenge
        key_proof = proof(challenge["result"]["token"], user.access_key or "")
        answer = self.call("login", username=user.username, accessKey=key_proof)
        assert answer["success"], answer
        return answer["result"]["sessionName"]

    def works(self, session_id: str) -> bool:
        """Whether an operation that needs a session accepts ``session_id``."""
        answer = self.call("listtypes", "GET", sessionName=session_id)
        if answer["success"]:
            return True
        assert answer["error"]["code"] == "AUTHENTICATION_REQUIRED", answer
        return False

    def listing(self, session_id: str) -> list[dict]:
        answer = self.call("listsessions", "GET", sessionName=session_id)
        assert answer["success"], answer
        return answer["result"]


def code_of(answer: dict) -> str | None:
    return None if answer["success"] else answer["error"]["code"]


# --- looking into Redis from the side -------------------------------------------------------------


class Inspector:
    """Reads the store directly, on its own connections (nothing it does is counted)."""

    def __init__(self, app: Flask, redis_url: str) -> None:
        settings = app.extensions["wsgate"].settings
        self.keys = RedisKeys(settings["REDIS_KEY_PREFIX"])
        self.text = redis.Redis.from_url(redis_url, decode_responses=True)
        self.raw = redis.Redis.from_url(redis_url)
        self.session_interface: Any = app.session_interface
        self.serializer = self.session_interface.serializer
        self.store = SessionStore(
            self.text, self.keys,
            idle_timeout=settings["SESSION_IDLE_TIMEOUT"],
            absolute_timeout=settings["SESSION_ABSOLUTE_TIMEOUT"],
        )  # fmt: skip

    def close(self) -> None:
        self.text.close()
        self.raw.close()

    def web_key(self, sid: str) -> str:
        """The key of the Flask-Session record of cookie value ``sid`` (``P:web:...``), as the
        app's own session interface names it."""
        key = self.session_interface._get_store_id(sid)
        assert key.startswith(self.keys.web_session_prefix())
        return key

    def web_blob(self, sid: str) -> bytes | None:
        return self.raw.get(self.web_key(sid))

    def web_root(self, sid: str) -> SessionId | None:
        """The web login that the Flask-Session data of web session ``sid`` names, if any (bound
        to the session id: see webservice/auth/web_login.py)."""
        blob = self.web_blob(sid)
        link = self.serializer.decode(blob).get(WEB_LOGIN_KEY) if blob else None
        parsed = SessionId.parse(link["id"]) if link else None
        return SessionId(parsed.family_id, parsed.secret + sid) if parsed else None

    def web_family(self, sid: str) -> str | None:
        """The family the Flask-Session data of web session ``sid`` names, if any."""
        root = self.web_root(sid)
        return root.family_id if root else None

    def web_handle(self, sid: str) -> str | None:
        root = self.web_root(sid)
        return root.handle if root else None

    def family_exists(self, family: str) -> bool:
        return bool(self.text.exists(self.keys.family(family)))

    def family_record(self, family: str) -> dict[str, str]:
        return self.text.hgetall(self.keys.family(family))

    def live_families(self) -> set[str]:
        """Every family record in Redis (``P:{F}:f``), found by SCAN over the whole keyspace."""
        prefix = self.keys.prefix + ":{"
        return {
            key[len(prefix) : -len("}:f")]
            for key in self.text.scan_iter(match=self.keys.prefix + ":{*}:f", count=1000)
        }

    def validates(self, session_id: str) -> bool:
        return self.store.validate(session_id) is not None

    def web_member_live(self, family: str, web_sid: str) -> bool:
        """Whether the web member of ``family`` is live: its record and its browser session."""
        root = self.web_root(web_sid)
        return (
            root is not None
            and root.family_id == family
            and self.store.check(root, "web") is not None
        )


# --- fixtures -------------------------------------------------------------------------------------


#: Every simulated browser and client here sends from 127.0.0.1; the per-address limits have
#: their own tests (test_login_protection.py) and must not throttle this one.
ONE_ADDRESS_FOR_ALL = {"CHALLENGE_RATE_LIMIT": 1_000_000, "CHALLENGE_RATE_BURST": 1_000_000}


def build_app(redis_url: str, **clients: Any) -> Flask:
    app = create_app({**TEST_SETTINGS, **ONE_ADDRESS_FOR_ALL, "REDIS_URL": redis_url}, **clients)
    app.extensions["wsgate"].users.hasher = CHEAP_HASHER
    return app


@pytest.fixture
def linked_app(real_redis: redis.Redis, redis_server: RedisServer) -> Iterator[Flask]:
    """An app over the real redis-server (emptied first), with request holds installed."""
    app = build_app(redis_server.url)
    app.extensions["test-holds"] = Holds(app)
    yield app


@pytest.fixture
def holds(linked_app: Flask) -> Holds:
    return linked_app.extensions["test-holds"]


@pytest.fixture
def people(linked_app: Flask) -> dict[str, User]:
    users = linked_app.extensions["wsgate"].users
    return {name: users.add(name, PASSWORD) for name in ("alice", "bob")}


@pytest.fixture
def inspector(linked_app: Flask, redis_server: RedisServer) -> Iterator[Inspector]:
    spy = Inspector(linked_app, redis_server.url)
    yield spy
    spy.close()


@dataclass
class Scene:
    """A browser logged in as a user, two API sessions linked to it, and a standalone API login
    of the same user (its own family)."""

    app: Flask
    user: User
    browser: Browser
    api: Api
    sid: str
    family: str
    linked: list[str]
    standalone: str
    #: The web login of the browser (its family's root).
    web_root: SessionId


def make_scene(app: Flask, user: User, inspector: Inspector) -> Scene:
    browser = Browser(FlaskTransport(app))
    sid = browser.log_in(user.username)
    assert browser.page_status("/") == "ok"
    web_root = inspector.web_root(sid)
    assert web_root is not None
    family = web_root.family_id
    assert inspector.family_exists(family)
    linked = []
    for proof_by in ("token", "origin"):
        answer = browser.extend(proof_by)
        assert answer["success"], answer
        linked.append(answer["result"]["sessionName"])
    assert {family_of(session_id) for session_id in linked} == {family}
    assert len(set(linked)) == 2 and sid not in "".join(linked)
    api = Api(FlaskTransport(app, cookies=False))
    standalone = api.login(user)
    assert family_of(standalone) != family
    return Scene(app, user, browser, api, sid, family, linked, standalone, web_root)


# --- the ways to end a linked family --------------------------------------------------------------
# Each ends the scene's web family (web login + linked API sessions) from a different member or
# entry point. ``ends_standalone`` says whether it also ends the user's standalone API family.


def by_web_logout(scene: Scene) -> None:
    scene.browser.log_out()


def by_api_logout_of_linked(scene: Scene) -> None:
    answer = scene.api.call("logout", sessionName=scene.linked[0])
    assert answer == {"success": True, "result": {"message": "successfull"}, "moreinfo": None}


def by_web_end_of_linked_handle(scene: Scene) -> None:
    handle = handle_for(scene.linked[1])
    assert handle in (scene.browser.handles() or [])
    reply = scene.browser.post("/sessions/end", handle=handle)
    assert (reply.status, reply.location) == (302, "/login")


def by_api_endsession_of_web_handle(scene: Scene) -> None:
    handle = scene.web_root.handle
    assert handle in [view["handle"] for view in scene.api.listing(scene.standalone)]
    answer = scene.api.call("endsession", sessionName=scene.standalone, handle=handle)
    assert answer == {"success": True, "result": {"message": "ended"}, "moreinfo": None}


def by_api_endsession_of_linked_handle(scene: Scene) -> None:
    sibling = handle_for(scene.linked[1])
    answer = scene.api.call("endsession", sessionName=scene.linked[0], handle=sibling)
    assert answer == {"success": True, "result": {"message": "ended"}, "moreinfo": None}


def by_web_end_all(scene: Scene) -> None:
    reply = scene.browser.post("/sessions/end-all")
    assert (reply.status, reply.location) == (302, "/login")


def by_api_endallsessions(scene: Scene) -> None:
    answer = scene.api.call("endallsessions", sessionName=scene.standalone)
    assert answer["success"] and answer["result"]["ended"] >= 2, answer


LINKED_ENDS: dict[str, tuple[Callable[[Scene], None], bool]] = {
    "web logout": (by_web_logout, False),
    "API logout of a linked session": (by_api_logout_of_linked, False),
    "web /sessions/end, handle of a linked API session": (by_web_end_of_linked_handle, False),
    "API endsession, handle of the web session": (by_api_endsession_of_web_handle, False),
    "API endsession, handle of a sibling": (by_api_endsession_of_linked_handle, False),
    "web /sessions/end-all": (by_web_end_all, True),
    "API endallsessions": (by_api_endallsessions, True),
}


def assert_family_dead(scene: Scene, inspector: Inspector) -> None:
    """No record of the family is left and none of its members is accepted anywhere."""
    assert not inspector.family_exists(scene.family)
    for session_id in scene.linked:
        assert not scene.api.works(session_id), session_id
        assert not inspector.validates(session_id), session_id
    assert inspector.store.check(scene.web_root, "web") is None
    handles = {handle_for(s) for s in scene.linked} | {scene.web_root.handle}
    assert not handles & {view["handle"] for view in _listing_of_user(scene, inspector)}


def _listing_of_user(scene: Scene, inspector: Inspector) -> list[dict]:
    return [view.as_dict() for view in inspector.store.list_for_user(scene.user.id)]


def assert_cookie_refused(
    scene: Scene, inspector: Inspector, stale_blob: bytes | None = None
) -> None:
    """A browser holding the scene's cookie is logged out: ``extendsession`` answers
    AUTHENTICATION_FAILURE (by token and by Origin) and the pages send it to /login.

    With ``stale_blob``, the blob is written back before each probe (each probe that finds the
    family gone empties the session, which deletes the blob)."""

    def fresh_tab() -> Browser:
        if stale_blob is not None:
            inspector.raw.set(inspector.web_key(scene.sid), stale_blob)
        tab = Browser(FlaskTransport(scene.app))
        tab.transport.set_cookie(scene.sid)
        tab.csrf = scene.browser.csrf
        return tab

    for proof_by in ("token", "origin"):
        answer = fresh_tab().extend(proof_by)
        assert code_of(answer) == "AUTHENTICATION_FAILURE", (proof_by, answer)
    for path in ("/", "/sessions"):
        assert fresh_tab().page_status(path) == "login", path
    tab = fresh_tab()
    reply = tab.post("/sessions/end-others")
    assert (reply.status, reply.location) == (302, "/login")
    assert not inspector.family_exists(scene.family)


# --- the guarantees, one by one -------------------------------------------------------------------


def test_web_logout_ends_every_api_session_of_its_family(linked_app, people, inspector):
    scene = make_scene(linked_app, people["alice"], inspector)
    other = make_scene(linked_app, people["alice"], inspector)
    assert all(scene.api.works(s) for s in scene.linked)

    scene.browser.log_out()

    assert_family_dead(scene, inspector)
    assert scene.browser.page_status("/") == "login"
    # Nothing else of the user's is touched: her standalone login, her other browser and its links.
    assert scene.api.works(scene.standalone)
    assert other.browser.page_status("/") == "ok"
    assert all(other.api.works(s) for s in [*other.linked, other.standalone])


def test_api_logout_of_a_linked_session_ends_the_web_login_and_its_siblings(
    linked_app, people, inspector
):
    scene = make_scene(linked_app, people["alice"], inspector)
    other = make_scene(linked_app, people["alice"], inspector)

    answer = scene.api.call("logout", sessionName=scene.linked[0])
    assert answer == {"success": True, "result": {"message": "successfull"}, "moreinfo": None}

    # The next page load sends the browser to the login page, and its other link is dead too.
    assert scene.browser.page_status("/") == "login"
    refused = ("AUTHENTICATION_FAILURE", "AUTHENTICATION_REQUIRED")
    assert code_of(scene.browser.extend("origin")) in refused
    assert_family_dead(scene, inspector)
    assert scene.api.works(scene.standalone)
    assert other.browser.page_status("/") == "ok"
    assert all(other.api.works(s) for s in [*other.linked, other.standalone])


@pytest.mark.parametrize("way", [name for name in LINKED_ENDS if "handle" in name])
def test_ending_a_session_by_handle_ends_its_whole_family(linked_app, people, inspector, way):
    scene = make_scene(linked_app, people["alice"], inspector)
    bystander = make_scene(linked_app, people["alice"], inspector)
    end, _ = LINKED_ENDS[way]

    end(scene)

    assert_family_dead(scene, inspector)
    assert scene.browser.page_status("/") == "login"
    assert scene.api.works(scene.standalone)
    assert bystander.browser.page_status("/") == "ok"
    assert all(bystander.api.works(s) for s in [*bystander.linked, bystander.standalone])


def test_ending_a_standalone_session_by_handle_from_the_web_ends_only_it(
    linked_app, people, inspector
):
    scene = make_scene(linked_app, people["alice"], inspector)
    handle = handle_for(scene.standalone)
    assert handle in (scene.browser.handles() or [])

    reply = scene.browser.post("/sessions/end", handle=handle)

    assert (reply.status, reply.location) == (302, "/sessions")
    assert not scene.api.works(scene.standalone)
    assert scene.browser.page_status("/") == "ok"
    assert all(scene.api.works(s) for s in scene.linked)


def test_logging_out_a_standalone_login_session_touches_nothing_else(linked_app, people, inspector):
    scene = make_scene(linked_app, people["alice"], inspector)
    second = scene.api.login(people["alice"])
    bob = make_scene(linked_app, people["bob"], inspector)
    before = inspector.live_families()

    answer = scene.api.call("logout", sessionName=scene.standalone)

    assert answer == {"success": True, "result": {"message": "successfull"}, "moreinfo": None}
    assert not scene.api.works(scene.standalone)
    assert inspector.live_families() == before - {family_of(scene.standalone)}
    assert scene.browser.page_status("/") == "ok"
    assert all(scene.api.works(s) for s in [*scene.linked, second, *bob.linked, bob.standalone])
    assert bob.browser.page_status("/") == "ok"


def test_a_second_login_in_the_same_browser_leaves_no_api_session_linked_to_the_replaced_one(
    linked_app, people, inspector
):
    """Two tabs showed the login page; the person logs in from both. The second login replaces
    the browser's web session (new cookie, the old Flask-Session record deleted). An API session
    linked to the replaced web session must not outlive it, and logging out of the browser must
    end every API session that was handed to it."""
    scene = make_scene(linked_app, people["alice"], inspector)

    new_sid = scene.browser.log_in("alice", from_open_tab=True)

    assert new_sid != scene.sid and inspector.web_blob(scene.sid) is None
    new_family = inspector.web_family(new_sid)
    for session_id in scene.linked:
        if inspector.validates(session_id):
            # Still live: then it must be linked to the browser's current web login.
            assert family_of(session_id) == new_family, (
                "an API session linked to a replaced web login is still live, in a family whose "
                "web session no longer exists"
            )
    scene.browser.log_out()
    still_live = [s for s in scene.linked if inspector.validates(s)]
    assert still_live == [], "API sessions handed to this browser outlived its logout"


def test_a_login_from_a_page_opened_before_the_previous_login_ended_gets_a_new_session_id(
    linked_app, people, inspector
):
    """The login page was open in a tab while the browser's login ended elsewhere (here: an API
    logout of a linked session). Logging in from that tab must still give the browser a new
    session id (no fixation), and the page it lands on must work."""
    scene = make_scene(linked_app, people["alice"], inspector)
    by_api_logout_of_linked(scene)

    new_sid = scene.browser.log_in("alice", from_open_tab=True)

    assert new_sid != scene.sid, "the login kept the session id of the ended login"
    assert inspector.web_blob(scene.sid) is None
    assert inspector.web_family(new_sid) not in (None, scene.family)
    assert scene.browser.page_status("/") == "ok"
    assert scene.browser.extend("token")["success"]


# --- race 1: a web request in flight re-saves its session blob after the logout -------------------


@pytest.mark.parametrize("way", list(LINKED_ENDS))
def test_a_page_view_held_across_a_logout_cannot_bring_the_login_back(
    linked_app, holds, people, inspector, way
):
    """GET / is held after its view ran (logged in) and before Flask-Session saves the session;
    the family ends; then the held request finishes and writes the old session data back."""
    scene = make_scene(linked_app, people["alice"], inspector)
    end, ends_standalone = LINKED_ENDS[way]
    tab = scene.browser.tab(FlaskTransport(linked_app))

    in_flight, release = holds.run_held("after", lambda headers: tab.get("/", headers=headers))
    end(scene)
    assert not inspector.family_exists(scene.family)
    release()
    reply = in_flight.result(timeout=HOLD_LIMIT)

    assert reply.status == 200  # it was logged in when it ran
    # The late save really happened: the blob names the ended family again.
    assert inspector.web_family(scene.sid) == scene.family
    stale_blob = inspector.web_blob(scene.sid)
    assert_cookie_refused(scene, inspector, stale_blob)
    assert_family_dead(scene, inspector)
    assert scene.api.works(scene.standalone) is not ends_standalone


@pytest.mark.parametrize("way", list(LINKED_ENDS))
def test_the_pre_logout_session_blob_written_back_cannot_bring_the_login_back(
    linked_app, people, inspector, way
):
    """The deterministic form: read ``P:web:<sid>`` before the logout, log out, write it back."""
    scene = make_scene(linked_app, people["alice"], inspector)
    end, _ = LINKED_ENDS[way]
    blob = inspector.web_blob(scene.sid)
    assert blob is not None and inspector.web_family(scene.sid) == scene.family

    end(scene)
    inspector.raw.set(inspector.web_key(scene.sid), blob, ex=3600)

    assert_cookie_refused(scene, inspector, blob)
    assert_family_dead(scene, inspector)


# --- race 2: extendsession racing a logout --------------------------------------------------------


@pytest.mark.parametrize("point", ["before", "after"])
@pytest.mark.parametrize(
    "way",
    [
        "web logout",
        "API logout of a linked session",
        "API endsession, handle of the web session",
        "web /sessions/end-all",
    ],
)
def test_extendsession_held_across_a_logout_leaves_no_live_session(
    linked_app, holds, people, inspector, point, way
):
    """Held ``before`` its Redis step, extendsession must fail; held ``after`` it (the new id is
    made), the id it then hands out must be dead."""
    scene = make_scene(linked_app, people["alice"], inspector)
    end, _ = LINKED_ENDS[way]
    tab = scene.browser.tab(FlaskTransport(linked_app))
    blob_before = inspector.web_blob(scene.sid)

    in_flight, release = holds.run_held(point, lambda headers: tab.extend("token", headers=headers))
    end(scene)
    release()
    answer = in_flight.result(timeout=HOLD_LIMIT)

    if point == "before":
        assert code_of(answer) == "AUTHENTICATION_FAILURE", answer
    else:
        assert answer["success"], answer
        handed_out = answer["result"]["sessionName"]
        assert family_of(handed_out) == scene.family
        assert not scene.api.works(handed_out)
        assert not inspector.validates(handed_out)
        scene.linked.append(handed_out)
    if point == "after":
        # The held request saved the session after the logout: the late save happened.
        assert inspector.web_family(scene.sid) == scene.family
    assert_family_dead(scene, inspector)
    assert_cookie_refused(scene, inspector, blob_before)


STORM_WAYS = [
    "web logout",
    "API logout of a linked session",
    "web /sessions/end, handle of a linked API session",
    "API endsession, handle of the web session",
    "API endsession, handle of a sibling",
    "web /sessions/end-all",
    "API endallsessions",
]


def test_extendsession_storm_racing_each_kind_of_logout(linked_app, people, inspector):
    """Threads call extendsession as fast as they can with the same cookie while the family is
    ended. Every id handed out must be dead afterwards, and no call sent after the logout
    answered may succeed."""
    threads = 6
    rounds_per_way = 4
    rng = random.Random(20240611)
    figures = Counter()
    for round_number in range(rounds_per_way * len(STORM_WAYS)):
        way = STORM_WAYS[round_number % len(STORM_WAYS)]
        scene = make_scene(linked_app, people["alice"], inspector)
        tabs = [scene.browser.tab(FlaskTransport(linked_app)) for _ in range(threads)]
        start = threading.Barrier(threads + 1)
        logout_window = [float("inf"), float("inf")]  # when the logout was sent, answered
        handed_out: list[tuple[float, str]] = []
        refused: list[tuple[str, dict]] = []

        def storm(index: int) -> None:
            tab = tabs[index]
            proof_by = "origin" if index % 2 else "token"
            start.wait()
            for _ in range(500):
                sent = time.monotonic()
                answer = tab.extend(proof_by)
                if answer["success"]:
                    handed_out.append((sent, answer["result"]["sessionName"]))
                else:
                    refused.append((proof_by, answer))
                    return
            raise AssertionError("extendsession kept succeeding: the logout never took effect")

        with ThreadPoolExecutor(max_workers=threads) as pool:
            futures = [pool.submit(storm, index) for index in range(threads)]
            start.wait()
            time.sleep(rng.uniform(0, 0.004))
            logout_window[0] = time.monotonic()
            LINKED_ENDS[way][0](scene)
            logout_window[1] = time.monotonic()
            for future in futures:
                future.result(timeout=30)

        for proof_by, answer in refused:
            # The first refusal empties the session the tabs share, which also drops the CSRF
            # token that the page's header is checked against: a later token-proof call is
            # refused as cross-site. Either way it is refused.
            expected = ["AUTHENTICATION_FAILURE"]
            if proof_by == "token":
                expected.append("ACCESS_DENIED")
            assert code_of(answer) in expected, answer
            figures[f"refusals: {code_of(answer)}"] += 1
        late = [s for sent, s in handed_out if sent > logout_window[1]]
        assert late == [], "extendsession sent after the logout answered handed out a session"
        scene.linked.extend(s for _, s in handed_out)
        alive = [s for s in scene.linked if inspector.validates(s)]
        assert alive == [], f"{way}: {len(alive)} API sessions of an ended web login are live"
        assert not inspector.family_exists(scene.family)
        figures["rounds"] += 1
        figures["ids handed out"] += len(handed_out)
        figures["ids handed out by calls sent while the logout was in flight"] += sum(
            1 for sent, _ in handed_out if sent >= logout_window[0]
        )
    print("\nextendsession storm:", dict(figures))
    refusals = sum(n for name, n in figures.items() if name.startswith("refusals"))
    assert refusals == figures["rounds"] * threads


# --- the stress run -------------------------------------------------------------------------------


@dataclass
class Family:
    id: str
    user: str
    kind: str  # "web" or "api"
    started: float  # before the request that made it was sent
    created: float  # after its answer arrived
    web_sid: str | None = None
    web_root: SessionId | None = None


@dataclass
class EndOp:
    kind: str
    user: str
    started: float
    family: str | None = None  # the one family it targets
    all_of_user: bool = False  # every family of ``user`` (but ``keep``)
    keep: str | None = None
    finished: float = float("inf")
    executed: bool = False  # it ran (so its targets must be dead); unknown until it answers
    binding: bool = True  # False: it may end things, but the test does not require it to

    def could_end(self, family: Family) -> bool:
        if self.family == family.id:
            return True
        return (
            self.all_of_user and self.user == family.user and self.keep != family.id
            and family.started < self.finished
        )  # fmt: skip

    def must_have_ended(self, family: Family) -> bool:
        if not (self.executed and self.binding):
            return False
        if self.family == family.id:
            return True
        return (
            self.all_of_user and self.user == family.user and self.keep != family.id
            and family.created < self.started
        )  # fmt: skip


class Ledger:
    """What the threads did: every family and session id handed out, every ending, every death
    a thread saw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.families: dict[str, Family] = {}
        self.ids: dict[str, str] = {}  # session id -> "linked" | "standalone"
        self.ends: list[EndOp] = []
        self.deaths: list[tuple[str, float, str]] = []
        self.operations: Counter = Counter()
        self.violations: list[tuple[str, str]] = []

    def family(self, family: Family) -> None:
        with self.lock:
            assert family.id not in self.families
            self.families[family.id] = family

    def session(self, session_id: str, kind: str) -> None:
        with self.lock:
            self.ids[session_id] = kind

    def begin_end(self, **fields: Any) -> EndOp:
        op = EndOp(started=time.monotonic(), **fields)
        with self.lock:
            self.ends.append(op)
        return op

    def died(self, family: str, how: str) -> None:
        with self.lock:
            self.deaths.append((family, time.monotonic(), how))

    def violation(self, category: str, detail: str) -> None:
        with self.lock:
            self.violations.append((category, detail))


class Actor:
    """One thread: a browser and an API client of one user, choosing its next step at random
    among those that make sense in what it believes its state to be."""

    def __init__(self, index, user, browser, api, ledger, inspector, seed, relogin_weight):
        self.user = user
        self.browser = browser
        self.api = api
        self.ledger = ledger
        self.inspector = inspector
        self.rng = random.Random(seed * 1000 + index)
        self.relogin_weight = relogin_weight
        self.web: str | None = None  # the browser's web family, while it believes it is logged in
        self.linked: list[str] = []
        self.standalone: list[str] = []

    # -- choosing --

    def step(self) -> None:
        weights: dict[str, float] = {}
        if self.web is None:
            weights["web login"] = 8
        else:
            weights.update({
                "web login again from an open tab": self.relogin_weight,
                "page view": 10, "extendsession": 8, "web logout": 1.5,
                "web /sessions/end": 1.5, "web /sessions/end-others": 0.2,
                "web /sessions/end-all": 0.12,
            })  # fmt: skip
        if self.linked or self.standalone:
            weights.update({"API call": 10, "API endsession": 1.5, "API endallsessions": 0.12})
        if self.linked:
            weights["API logout (linked)"] = 1.5
        if self.standalone:
            weights["API logout (standalone)"] = 1.5
        if len(self.standalone) < 3:
            weights["API login"] = 3
        names = [name for name, weight in weights.items() if weight > 0]
        name = self.rng.choices(names, [weights[n] for n in names])[0]
        getattr(self, "op_" + re.sub(r"\W+", "_", name).strip("_").lower())()
        with self.ledger.lock:
            self.ledger.operations[name] += 1

    # -- bookkeeping --

    def forget(self, family: str | None) -> None:
        if family is None:
            return
        if self.web == family:
            self.web = None
        self.linked = [s for s in self.linked if family_of(s) != family]
        self.standalone = [s for s in self.standalone if family_of(s) != family]

    def forget_all(self, keep: str | None = None) -> None:
        for session_id in [*self.linked, *self.standalone]:
            if family_of(session_id) != keep:
                self.forget(family_of(session_id))
        if self.web != keep:
            self.web = None

    def saw_death(self, family: str, how: str) -> None:
        self.ledger.died(family, how)
        self.forget(family)

    def any_session(self) -> str:
        return self.rng.choice([*self.linked, *self.standalone])

    def _log_in(self, *, from_open_tab: bool) -> None:
        previous_sid = self.browser.sid
        started = time.monotonic()
        sid = self.browser.log_in(self.user.username, from_open_tab=from_open_tab)
        family = self.inspector.web_family(sid)
        assert family, "a web login left no family in its session"
        made = Family(
            family, self.user.username, "web", started, time.monotonic(), sid,
            self.inspector.web_root(sid),
        )  # fmt: skip
        self.ledger.family(made)
        self.web = family
        if sid == previous_sid:
            self.ledger.violation("a web login kept the browser's previous session id", sid)
        # Like a browser, land on the page the login redirects to (it carries the fresh token).
        if self.browser.page_status("/") == "login":
            self.saw_death(family, "the page after the login sent the browser to /login")

    # -- the steps --

    def op_web_login(self) -> None:
        self._log_in(from_open_tab=False)

    def op_web_login_again_from_an_open_tab(self) -> None:
        # Not required to end the old family, but allowed to.
        self.ledger.begin_end(
            kind="web re-login", user=self.user.username, family=self.web, binding=False
        )
        self.linked = []
        self._log_in(from_open_tab=True)

    def op_page_view(self) -> None:
        path = self.rng.choice(["/", "/sessions"])
        if self.browser.page_status(path) == "login":
            self.saw_death(self.web, f"GET {path} sent the browser to /login")

    def op_extendsession(self) -> None:
        answer = self.browser.extend(self.rng.choice(["token", "origin"]))
        if not answer["success"]:
            assert code_of(answer) == "AUTHENTICATION_FAILURE", answer
            self.saw_death(self.web, "extendsession refused")
            return
        session_id = answer["result"]["sessionName"]
        if family_of(session_id) != self.web:
            self.ledger.violation("extendsession linked to the wrong family", session_id)
        self.ledger.session(session_id, "linked")
        self.linked.append(session_id)

    def op_api_call(self) -> None:
        session_id = self.any_session()
        operation = self.rng.choice(["listtypes", "listsessions"])
        answer = self.api.call(operation, "GET", sessionName=session_id)
        if not answer["success"]:
            assert code_of(answer) == "AUTHENTICATION_REQUIRED", answer
            self.saw_death(family_of(session_id), f"{operation} refused")

    def op_api_login(self) -> None:
        started = time.monotonic()
        session_id = self.api.login(self.user)
        family = Family(family_of(session_id), self.user.username, "api", started, time.monotonic())
        self.ledger.family(family)
        self.ledger.session(session_id, "standalone")
        self.standalone.append(session_id)

    def _api_logout(self, session_id: str, kind: str) -> None:
        family = family_of(session_id)
        op = self.ledger.begin_end(kind=kind, user=self.user.username, family=family)
        answer = self.api.call("logout", sessionName=session_id)
        op.finished, op.executed = time.monotonic(), True  # refused only if it was already dead
        if not answer["success"]:
            assert code_of(answer) == "AUTHENTICATION_REQUIRED", answer
            self.ledger.died(family, "logout refused")
        self.forget(family)

    def op_api_logout_linked(self) -> None:
        self._api_logout(self.rng.choice(self.linked), "API logout (linked)")

    def op_api_logout_standalone(self) -> None:
        self._api_logout(self.rng.choice(self.standalone), "API logout (standalone)")

    def op_web_logout(self) -> None:
        op = self.ledger.begin_end(kind="web logout", user=self.user.username, family=self.web)
        self.browser.log_out()
        op.finished, op.executed = time.monotonic(), True  # if the login was dead, so is the family
        self.forget(self.web)

    def op_web_sessions_end(self) -> None:
        handles = self.browser.handles()
        if handles is None:
            self.saw_death(self.web, "GET /sessions sent the browser to /login")
            return
        if self.inspector.web_handle(self.browser.sid or "") not in handles:
            # Its family ended between the page's check of the login and the listing.
            self.saw_death(self.web, "GET /sessions did not list this browser")
            return
        handle = self.rng.choice(handles)
        target = handle.partition(":")[0]
        op = self.ledger.begin_end(kind="web /sessions/end", user=self.user.username, family=target)
        reply = self.browser.post("/sessions/end", handle=handle)
        op.finished = time.monotonic()
        if reply.location == "/sessions":
            op.executed = True
        else:
            assert reply.location == "/login", reply
            # Either it ended this browser's own family, or the browser's login was already dead.
            op.executed = any(n.startswith("You ended") for n in self.browser.notices(reply))
            if not op.executed:
                self.saw_death(self.web, "POST /sessions/end sent the browser to /login")
                return
            self.forget(self.web)
        self.forget(target)

    def op_web_sessions_end_others(self) -> None:
        keep = self.web
        op = self.ledger.begin_end(
            kind="web /sessions/end-others", user=self.user.username, all_of_user=True, keep=keep
        )
        reply = self.browser.post("/sessions/end-others")
        op.finished = time.monotonic()
        op.executed = reply.location == "/sessions"
        if op.executed:
            self.forget_all(keep=keep)
        else:
            assert reply.location == "/login", reply
            self.saw_death(self.web, "POST /sessions/end-others sent the browser to /login")

    def op_web_sessions_end_all(self) -> None:
        op = self.ledger.begin_end(
            kind="web /sessions/end-all", user=self.user.username, all_of_user=True
        )
        reply = self.browser.post("/sessions/end-all")
        op.finished = time.monotonic()
        op.executed = "Every session of yours has ended." in self.browser.notices(reply)
        if op.executed:
            self.forget_all()
        else:
            self.saw_death(self.web, "POST /sessions/end-all sent the browser to /login")

    def op_api_endsession(self) -> None:
        caller = self.any_session()
        answer = self.api.call("listsessions", "GET", sessionName=caller)
        if not answer["success"]:
            assert code_of(answer) == "AUTHENTICATION_REQUIRED", answer
            self.saw_death(family_of(caller), "listsessions refused")
            return
        handles = [view["handle"] for view in answer["result"]]
        if handle_for(caller) not in handles:
            # Its family ended between the check of the caller and the listing.
            self.saw_death(family_of(caller), "listsessions did not list the caller")
            return
        handle = self.rng.choice(handles)
        target = handle.partition(":")[0]
        op = self.ledger.begin_end(kind="API endsession", user=self.user.username, family=target)
        answer = self.api.call("endsession", sessionName=caller, handle=handle)
        op.finished = time.monotonic()
        code = code_of(answer)
        if code == "AUTHENTICATION_REQUIRED":
            self.saw_death(family_of(caller), "endsession refused the caller")
            return
        assert code in (None, "INVALID_PARAMETER"), answer  # INVALID_PARAMETER: already ended
        op.executed = True
        self.forget(target)

    def op_api_endallsessions(self) -> None:
        caller = self.any_session()
        op = self.ledger.begin_end(
            kind="API endallsessions", user=self.user.username, all_of_user=True
        )
        answer = self.api.call("endallsessions", sessionName=caller)
        op.finished = time.monotonic()
        if answer["success"]:
            op.executed = True
            self.forget_all()
        else:
            assert code_of(answer) == "AUTHENTICATION_REQUIRED", answer
            self.saw_death(family_of(caller), "endallsessions refused the caller")


@dataclass
class StressFigures:
    operations: Counter
    elapsed: float
    families: Counter = field(default_factory=Counter)
    violations: Counter = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)
    notes: Counter = field(default_factory=Counter)

    def print(self, title: str) -> None:
        print(f"\n{title}: {sum(self.operations.values())} operations in {self.elapsed:.1f} s")
        for name, count in sorted(self.operations.items(), key=lambda item: -item[1]):
            print(f"  {name:<36} {count:>6}")
        for name, count in self.families.items():
            print(f"  {name:<52} {count:>6}")
        for name, count in self.notes.items():
            print(f"  {name:<52} {count:>6}")
        print(f"  invariant violations: {sum(self.violations.values())}")
        for name, count in self.violations.items():
            print(f"    {name}: {count}  e.g. {self.samples[name][:2]}")


def run_stress(
    *, users: list[User], threads: int, operations: int, make_browser, make_api,
    inspector: Inspector, seed: int, relogin_weight: float = 0.4,
) -> StressFigures:  # fmt: skip
    ledger = Ledger()
    actors = [
        Actor(index, users[index % len(users)], make_browser(), make_api(), ledger, inspector, seed,
              relogin_weight)
        for index in range(threads)
    ]  # fmt: skip
    start = threading.Barrier(threads)
    failures: list[str] = []

    def work(index: int, actor: Actor) -> None:
        start.wait()
        try:
            for _ in range(operations // threads + (index < operations % threads)):
                actor.step()
        except BaseException:
            failures.append(traceback.format_exc())

    began = time.monotonic()
    workers = [threading.Thread(target=work, args=item) for item in enumerate(actors)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    elapsed = time.monotonic() - began
    assert not any(worker.is_alive() for worker in workers), "a stress thread hung"
    assert not failures, failures[0]
    figures = StressFigures(ledger.operations, elapsed)
    check_invariants(ledger, inspector, figures)
    return figures


def check_invariants(ledger: Ledger, spy: Inspector, figures: StressFigures) -> None:
    """No live member of a dead family, over every family record in Redis."""

    def violation(category: str, detail: str) -> None:
        figures.violations[category] += 1
        figures.samples.setdefault(category, []).append(detail)

    for category, detail in ledger.violations:
        violation(category, detail)
    live = spy.live_families()
    families = ledger.families
    ids_of: dict[str, list[str]] = {}
    for session_id in ledger.ids:
        ids_of.setdefault(family_of(session_id), []).append(session_id)

    for family_id in live - families.keys():
        violation("a family record nobody made", family_id)

    must_be_dead = {
        family.id
        for family in families.values()
        if any(op.must_have_ended(family) for op in ledger.ends)
    }
    could_be_dead = {
        family.id
        for family in families.values()
        if any(op.could_end(family) for op in ledger.ends)
    }
    ended_ids_refused = 0
    for family_id in must_be_dead:
        family = families[family_id]
        if family_id in live:
            violation("an ended family still has its record", family_id)
        if family.web_root and spy.store.check(family.web_root, "web") is not None:
            violation("the web member of an ended family validates", family_id)
        for session_id in ids_of.get(family_id, []):
            if spy.validates(session_id):
                violation("a session id of an ended family validates", session_id)
            else:
                ended_ids_refused += 1

    for family_id in live & families.keys():
        family = families[family_id]
        if family.kind != "web":
            continue
        record = spy.family_record(family_id)
        api_members = [
            name
            for name, value in record.items()
            if name.startswith("i:") and value.split("\x1f")[1] == "api"
        ]
        if spy.web_member_live(family_id, family.web_sid or ""):
            continue
        if api_members:
            violation("live API members in a family whose web session is gone", family_id)
        else:
            figures.notes["live web-only families whose web session is gone"] += 1

    for session_id, kind in ledger.ids.items():
        family_id = family_of(session_id)
        if kind != "linked" or family_id in must_be_dead or not spy.validates(session_id):
            continue
        family = families[family_id]
        if not spy.web_member_live(family_id, family.web_sid or ""):
            violation("an extended session validates but its web login is not live", session_id)

    for family_id, seen, how in ledger.deaths:
        family = families.get(family_id)
        if family is None or not any(
            op.started < seen and op.could_end(family) for op in ledger.ends
        ):
            violation("a session died with no ending that could explain it", f"{family_id}: {how}")
    for family_id in families.keys() - live - could_be_dead:
        violation("a family ended with no ending that could explain it", family_id)

    kinds = Counter(family.kind for family in families.values())
    id_kinds = Counter(ledger.ids.values())
    figures.families.update({
        "families created (web logins)": kinds["web"],
        "families created (API logins)": kinds["api"],
        "families ended": len(families.keys() - live),
        "families required to be ended": len(must_be_dead),
        "families live at the end": len(live),
        "API session ids handed out (extendsession)": id_kinds["linked"],
        "API session ids handed out (login)": id_kinds["standalone"],
        "ended API session ids checked, refused by validate": ended_ids_refused,
        "deaths seen by the threads (each explained)": len(ledger.deaths),
    })  # fmt: skip


STRESS_THREADS = 16
STRESS_OPERATIONS = 3000
HTTP_OPERATIONS = 1600


def test_stress_linked_sessions_in_process(linked_app, inspector):
    """16 threads, each with its own Flask test clients, 3000 operations on one app (one
    connection pool, as one gunicorn worker with threads would have)."""
    users = [linked_app.extensions["wsgate"].users.add(f"user{n}", PASSWORD) for n in range(4)]
    figures = run_stress(
        users=users, threads=STRESS_THREADS, operations=STRESS_OPERATIONS,
        make_browser=lambda: Browser(FlaskTransport(linked_app)),
        make_api=lambda: Api(FlaskTransport(linked_app, cookies=False)),
        inspector=inspector, seed=1,
    )  # fmt: skip
    figures.print("stress, in-process")
    assert sum(figures.operations.values()) == STRESS_OPERATIONS
    assert figures.families["families ended"] > 0
    assert figures.families["deaths seen by the threads (each explained)"] > 0
    assert sum(figures.violations.values()) == 0, dict(figures.violations)


@pytest.mark.e2e
def test_stress_linked_sessions_over_http_on_gunicorn(tmp_path):
    """The same run over real HTTP against gunicorn with two worker processes."""
    from tests.gunicorn_process import start_gunicorn, stop_gunicorn

    with RedisServer(tmp_path / "redis") as server:
        local = build_app(server.url)  # adds users, reads the store; serves nothing
        users = [local.extensions["wsgate"].users.add(f"user{n}", PASSWORD) for n in range(3)]
        spy = Inspector(local, server.url)
        process, base_url, _ = start_gunicorn(
            server.url,
            tmp_path / "gunicorn.log",
            workers=2,
            extra_env={
                **{f"WSGATE_{name}": str(value) for name, value in ONE_ADDRESS_FOR_ALL.items()},
                # The inspector reads the browsers' Flask-Session records.
                "WSGATE_WEB_SESSIONS": "redis",
            },
        )
        try:
            figures = run_stress(
                users=users, threads=8, operations=HTTP_OPERATIONS,
                make_browser=lambda: Browser(HttpTransport(base_url)),
                make_api=lambda: Api(HttpTransport(base_url)),
                inspector=spy, seed=2,
            )  # fmt: skip
        finally:
            stop_gunicorn(process)
            spy.close()
    figures.print("stress, HTTP on gunicorn (2 workers)")
    assert sum(figures.operations.values()) == HTTP_OPERATIONS
    assert sum(figures.violations.values()) == 0, dict(figures.violations)


# --- Redis round trips ----------------------------------------------------------------------------


#: The most round trips each may cost (gateway client, web-session client), as measured: a page
#: view and extendsession read and re-save the Flask-Session record around one script; a linked
#: logout is one check plus one pipeline that deletes the family; a web logout also reads the
#: session record, deletes it and saves the farewell message under a fresh session id.
ROUND_TRIP_BUDGET = {
    "extendsession": (1, 2),
    "GET / (logged in)": (1, 2),
    "API logout of an extended session": (1, 0),
    "web POST /logout": (2, 3),
    "API call with an extended session (listtypes)": (1, 0),
}
REPEATS = 5


def test_round_trips_of_linked_sessions(redis_server, real_redis):
    gateway_tally, web_tally = Tally(), Tally()
    app = build_app(
        redis_server.url,
        redis_client=counting_client(redis_server, gateway_tally, decode_responses=True),
        web_session_client=counting_client(redis_server, web_tally, decode_responses=False),
    )
    user = app.extensions["wsgate"].users.add("alice", PASSWORD)
    browser = Browser(FlaskTransport(app))
    api = Api(FlaskTransport(app, cookies=False))
    state: dict[str, str] = {}

    def extendsession() -> None:
        answer = browser.extend("token")
        assert answer["success"], answer
        state["linked"] = answer["result"]["sessionName"]

    def page_view() -> None:
        assert browser.page_status("/") == "ok"

    def api_call() -> None:
        assert api.works(state["linked"])

    def api_logout() -> None:
        answer = api.call("logout", sessionName=state["linked"])
        assert answer["success"], answer

    def web_logout() -> None:
        browser.log_out()

    def log_in_and_extend() -> None:
        browser.log_in(user.username)
        page_view()
        extendsession()

    # (name, set-up not counted, the measured step); each pass starts logged out.
    steps: list[tuple[str, Callable[[], None], Callable[[], None]]] = [
        ("extendsession", log_in_and_extend, extendsession),
        ("GET / (logged in)", lambda: None, page_view),
        ("API call with an extended session (listtypes)", lambda: None, api_call),
        ("API logout of an extended session", lambda: None, api_logout),
        ("web POST /logout", log_in_and_extend, web_logout),
    ]
    for _, setup, step in steps:  # warm up: connections open, scripts loaded
        setup()
        step()
    measured: dict[str, list[tuple[int, int]]] = {name: [] for name, _, _ in steps}
    for _ in range(REPEATS):
        for name, setup, step in steps:
            setup()
            gateway_tally.round_trips = web_tally.round_trips = 0
            step()
            measured[name].append((gateway_tally.round_trips, web_tally.round_trips))
        # The linked logouts really ended their families.
        assert browser.page_status("/") == "login"

    print(f"\n{'operation':<48} {'gateway':>8} {'web session':>12} {'total':>6}")
    for name, figures in measured.items():
        gateway, web = figures[0]
        print(f"{name:<48} {gateway:>8} {web:>12} {gateway + web:>6}")
    for name, figures in measured.items():
        assert len(set(figures)) == 1, f"{name}: round trips vary between runs: {figures}"
        gateway, web = figures[0]
        budget = ROUND_TRIP_BUDGET[name]
        assert gateway <= budget[0] and web <= budget[1], f"{name}: {figures[0]} > budget {budget}"
