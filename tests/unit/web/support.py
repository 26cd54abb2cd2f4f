"""Helpers for the unit tests of the web UI and the linked sessions: an app over fakeredis, a
browser (a Flask test client that logs in through the forms), API calls, Redis snapshots.

Argon2 is slow on purpose (a fraction of a second per hash or check). Users made here get a
password hash with the cheapest Argon2 parameters instead: the directory's ``verify`` reads the
parameters from the hash, so checking it takes microseconds and the login path stays the real one.
"""

from __future__ import annotations

import hashlib
import html
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import fakeredis
import msgspec
from argon2 import PasswordHasher
from flask import Flask
from flask import request as flask_request

from tests.conftest import TEST_SETTINGS
from tests.unit.support import BOOKKEEPING, envelope, error, result
from webservice.api.gateway import EXTENSION_KEY, Gateway
from webservice.auth.web_login import SESSION_KEY as WEB_LOGIN_KEY
from webservice.standalone import create_app
from webservice.store.tokens import SessionId
from webservice.store.users import User

ENDPOINT = "/webservice.php"
PASSWORD = "correct horse battery staple"
#: What the test client's requests look like to the gateway when nothing else is said.
OWN_ORIGIN = "http://localhost"
BROWSER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0"
API_AGENT = "coreBOS-client/2.1 (unit test)"

_META_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@lru_cache(maxsize=None)
def cheap_hash(password: str) -> str:
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(password)


def md5_proof(token: str, access_key: str) -> str:
    """The coreBOS login proof, written out independently of the product's helpers."""
    return hashlib.md5((token + access_key).encode("utf-8")).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


# --- The wire contract -------------------------------------------------------------------------


# The envelope checks of the whole unit tier, under the names these tests use.
ok = result
failed = error


# --- The app -----------------------------------------------------------------------------------


@dataclass
class Env:
    """An app over a fresh fakeredis, with clients of that Redis answering str and bytes."""

    app: Flask
    redis: fakeredis.FakeRedis
    raw: fakeredis.FakeRedis

    @property
    def gateway(self) -> Gateway:
        return self.app.extensions[EXTENSION_KEY]

    @property
    def cookie_name(self) -> str:
        return self.app.config["SESSION_COOKIE_NAME"]

    def add_user(self, username: str, password: str | None = PASSWORD, active: bool = True) -> User:
        """A user with an access key and (unless ``None``) a password, checked cheaply."""
        users = self.gateway.users
        users.add(username)
        if password is not None:
            self.redis.hset(self.gateway.keys.user(username), "pw", cheap_hash(password))
        if not active:
            users.set_active(username, False)
        user = users.get(username)
        assert user is not None
        return user

    def browser(self, user_agent: str = BROWSER_AGENT, address: str = "127.0.0.1") -> Browser:
        client = self.app.test_client()
        client.environ_base.update({"HTTP_USER_AGENT": user_agent, "REMOTE_ADDR": address})
        return Browser(self, client)

    def api(self, user_agent: str = API_AGENT, address: str = "127.0.0.1") -> Any:
        """A client without cookies, as an external API client is."""
        client = self.app.test_client(use_cookies=False)
        client.environ_base.update({"HTTP_USER_AGENT": user_agent, "REMOTE_ADDR": address})
        return client

    # --- webservice.php as an API client sees it ------------------------------------------------

    def call(self, client: Any, operation: str, method: str = "POST", **params: Any) -> dict:
        params = {"operation": operation, **params}
        if method == "GET":
            return envelope(client.get(ENDPOINT, query_string=params))
        return envelope(client.post(ENDPOINT, data=params))

    def api_login(self, user: User, client: Any = None) -> str:
        """Logs in with getchallenge + login and answers the sessionName."""
        client = client or self.api()
        token = ok(self.call(client, "getchallenge", "GET", username=user.username))["token"]
        answer = self.call(
            client, "login", username=user.username, accessKey=md5_proof(token, user.access_key)
        )
        return ok(answer)["sessionName"]

    def alive(self, session_name: str) -> bool:
        """Whether an API session still works (listtypes needs one)."""
        body = self.call(self.api(), "listtypes", "GET", sessionName=session_name)
        if not body["success"]:
            failed(body, "AUTHENTICATION_REQUIRED", "Authentication required")
        return body["success"]

    # --- Redis ---------------------------------------------------------------------------------

    def web_key(self, sid: str) -> str:
        """The Redis key of the Flask-Session blob of the browser whose cookie is ``sid``."""
        return self.app.session_interface._get_store_id(sid)  # type: ignore[attr-defined]

    def family_key(self, family_id: str) -> str:
        return self.gateway.keys.family(family_id)

    def family(self, family_id: str) -> dict[str, str]:
        return self.redis.hgetall(self.family_key(family_id))

    def families(self) -> set[str]:
        """Ids of every family record in Redis."""
        pattern = re.compile(r".*:\{([A-Za-z0-9_-]{22})\}:f")
        found = set()
        for key in self.redis.scan_iter(count=1000):
            match = pattern.fullmatch(key)
            if match:
                found.add(match.group(1))
        return found

    def age_member(self, family_id: str, member: str, seconds_idle: float | None = None) -> None:
        """Makes a member look unused for longer than the idle timeout (its ``l:`` field)."""
        idle = self.gateway.settings["SESSION_IDLE_TIMEOUT"] if seconds_idle is None else seconds_idle
        key = self.family_key(family_id)
        assert self.redis.hexists(key, f"l:{member}"), (key, member)
        self.redis.hset(key, f"l:{member}", now_ms() - int(idle * 1000) - 5000)

    def snapshot(self, ignore_last_use: bool = False, bookkeeping: bool = False) -> dict[bytes, Any]:
        """Every key with its type and value (not its TTL), read as bytes.

        ``ignore_last_use`` leaves out the families' last-use times, which every request of a
        logged-in browser or API client refreshes. The audit trail and the limit counters, which
        every attempt writes on purpose, are left out unless ``bookkeeping`` is set.
        """
        data: dict[bytes, Any] = {}
        for key in sorted(self.raw.scan_iter(count=1000)):
            if not bookkeeping and BOOKKEEPING.match(key.decode()):
                continue
            kind = self.raw.type(key)
            if kind == b"string":
                value: Any = self.raw.get(key)
            elif kind == b"hash":
                value = self.raw.hgetall(key)
                if ignore_last_use:
                    value = {k: v for k, v in value.items() if not k.startswith(b"l:")}
            elif kind == b"zset":
                value = self.raw.zrange(key, 0, -1)
            elif kind == b"set":
                value = sorted(self.raw.smembers(key))
            elif kind == b"stream":
                value = [part for _id, entry in self.raw.xrange(key) for pair in entry.items() for part in pair]
            else:
                value = repr(kind)
            data[key] = (kind, value)
        return data

    def all_bytes(self) -> bytes:
        """Every key, field, member and value in Redis, in one blob to search in."""
        parts: list[bytes] = []
        for key, (kind, value) in self.snapshot(bookkeeping=True).items():
            parts.append(key)
            if isinstance(value, dict):
                for name, item in value.items():
                    parts += [name, item]
            elif isinstance(value, list):
                parts += value
            elif isinstance(value, bytes):
                parts.append(value)
        return b"\n".join(parts)


def make_env(settings: dict[str, Any] | None = None, without: tuple[str, ...] = ()) -> Env:
    """An app with the test settings and ``settings``; ``without`` names test settings to leave
    at their defaults."""
    base = {name: value for name, value in TEST_SETTINGS.items() if name not in without}
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeRedis(server=server, decode_responses=True)
    raw = fakeredis.FakeRedis(server=server)
    app = create_app(
        {**base, **(settings or {})},
        redis_client=redis,
        web_session_client=fakeredis.FakeRedis(server=server),
    )
    # Unknown users and users without a password are checked against a stand-in hash, made with
    # the directory's own (slow) parameters; a cheap one keeps these tests fast.
    app.extensions[EXTENSION_KEY].users.__dict__["_dummy_hash"] = cheap_hash("nobody knows this")
    return Env(app, redis, raw)


# --- A browser ---------------------------------------------------------------------------------


@dataclass
class Browser:
    """A Flask test client with cookies, used the way a person uses the web UI."""

    env: Env
    client: Any
    last_page: str = field(default="", repr=False)

    @property
    def cookie(self) -> str | None:
        cookie = self.client.get_cookie(self.env.cookie_name)
        return cookie.value if cookie is not None else None

    def set_cookie(self, value: str) -> None:
        self.client.set_cookie(self.env.cookie_name, value)

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.client.get(path, **kwargs)
        if response.status_code == 200 and response.mimetype == "text/html":
            self.last_page = response.get_data(as_text=True)
        return response

    def csrf_token(self) -> str:
        """The CSRF token of this browser's session, as its pages carry it."""
        response = self.get("/login")
        if response.status_code == 302:  # logged in: the login page sends us home
            response = self.get("/")
        assert response.status_code == 200, response.status_code
        match = _META_TOKEN.search(response.get_data(as_text=True))
        assert match, "no csrf-token meta tag"
        return match.group(1)

    def post(self, path: str, token: str | None = "auto", **data: Any) -> Any:
        """POSTs a form; ``token``: "auto" (the page's own), ``None`` (none) or a given value."""
        if token == "auto":
            token = self.csrf_token()
        if token is not None:
            data["csrf_token"] = token
        response = self.client.post(path, data=data)
        if response.mimetype == "text/html":
            self.last_page = response.get_data(as_text=True)
        return response

    def login(self, username: str, password: str = PASSWORD) -> Any:
        response = self.post("/login", username=username, password=password)
        assert response.status_code == 302 and response.location == "/", (
            response.status_code,
            response.get_data(as_text=True)[:500],
        )
        return response

    def logged_in(self) -> bool:
        response = self.get("/")
        if response.status_code == 302:
            assert response.location == "/login", response.location
            return False
        assert response.status_code == 200, response.status_code
        return True

    @property
    def web_login(self) -> SessionId:
        """The web login of this browser, read from its session data: the Flask-Session blob in
        Redis (the default), or the signed cookie itself (``WEB_SESSIONS="cookie"``)."""
        if self.env.app.config["WEB_SESSIONS"] == "cookie":
            app = self.env.app
            with app.test_request_context(headers={"Cookie": f"{self.env.cookie_name}={self.cookie}"}):
                data = app.session_interface.open_session(app, flask_request)
            assert data is not None and WEB_LOGIN_KEY in data, "no web login in the cookie"
            parsed = SessionId.parse(data[WEB_LOGIN_KEY]["id"])
            assert parsed is not None
            return parsed
        blob = self.env.raw.get(self.env.web_key(self.cookie))
        assert blob is not None, "no web session in Redis"
        parsed = SessionId.parse(msgspec.msgpack.decode(blob)[WEB_LOGIN_KEY]["id"])
        assert parsed is not None
        # Bound to the session id (auth/web_login.py).
        return SessionId(parsed.family_id, parsed.secret + self.cookie)

    @property
    def family_id(self) -> str:
        """The family of this browser's login."""
        return self.web_login.family_id

    @property
    def member(self) -> str:
        """The family member that this browser's login is (the hash of its secret)."""
        return self.web_login.member

    def extend(self, headers: dict[str, str] | None = None, with_token: bool = True) -> dict:
        """``extendsession`` from this browser's page: cookie, plus the X-CSRFToken header."""
        headers = dict(headers or {})
        if with_token and "X-CSRFToken" not in headers:
            headers["X-CSRFToken"] = self.csrf_token()
        return envelope(
            self.client.post(ENDPOINT, data={"operation": "extendsession"}, headers=headers)
        )

    def extended_session(self) -> str:
        return ok(self.extend())["sessionName"]


def family_of(session_name: str) -> str:
    parsed = SessionId.parse(session_name)
    assert parsed is not None, session_name
    return parsed.family_id


def member_of(session_name: str) -> str:
    parsed = SessionId.parse(session_name)
    assert parsed is not None, session_name
    return parsed.member


def set_cookie_headers(response: Any, name: str) -> list[str]:
    return [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{name}=")]


def cookie_attributes(header: str) -> tuple[str, dict[str, str]]:
    """(value, {lower-case attribute: value}) of one Set-Cookie header."""
    first, *rest = [part.strip() for part in header.split(";")]
    value = first.partition("=")[2]
    attributes = {}
    for part in rest:
        name, _, item = part.partition("=")
        attributes[name.lower()] = item
    return value, attributes


def session_items(page: str) -> list[dict[str, str]]:
    """The sessions listed on the sessions page: handle, css class, the text of each part, and
    ``html``: the item's markup, unescaped (attributes such as a title included)."""
    items = []
    for match in re.finditer(
        r'<li class="(session[^"]*)" data-handle="([^"]+)">(.*?)</li>', page, re.S
    ):
        css, handle, inner = match.groups()

        def text(part: str, inner: str = inner) -> str:
            found = re.search(rf'<div class="{part}"[^>]*>(.*?)</div>', inner, re.S)
            return re.sub(r"<[^>]+>", " ", found.group(1)) if found else ""

        items.append(
            {
                "handle": handle,
                "class": css,
                "what": " ".join(text("what").split()),
                "when": " ".join(text("when").split()),
                "who": " ".join(text("who").split()),
                "html": html.unescape(inner),
            }
        )
    return items
