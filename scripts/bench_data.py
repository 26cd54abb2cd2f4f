"""The data scripts/bench drives the gateway with: sessions (made through the login path, or
bulk-loaded with the gateway's own Lua script), dead session ids, web UI logins; and the
in-process, client-side count of Redis round trips. See scripts/bench_run.py."""

from __future__ import annotations

import http.cookiejar
import json
import re
import statistics
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

#: What a bulk-loaded session says about its client (shown in session listings).
LOADER_ADDRESS = "127.0.0.1"
LOADER_AGENT = "python-requests/2.32.3"


# --- the gateway's data -------------------------------------------------------------------------


def bulk_load(
    client: Any, gateway: Any, users: list[tuple[int, str]], count: int, *, batch: int = 1000
) -> list[str]:
    """Creates ``count`` live API sessions spread over ``users``; answers their session ids.

    Each is a one-member API family written by the gateway's own ``SessionStore.
    OPEN_FROM_CHALLENGE`` Lua script (the family layout, times from the Redis clock) from a
    pending challenge set just before it, and indexed in the user's family set, as ``login``
    does, but sent a thousand at a time in pipelines.
    """
    from webservice.store.session_values import ClientInfo
    from webservice.store.sessions import SessionStore
    from webservice.store.tokens import SessionId, new_family_id

    keys, store = gateway.keys, gateway.sessions
    script = SessionStore.OPEN_FROM_CHALLENGE
    script.load(client)
    packed = ClientInfo(LOADER_ADDRESS, LOADER_AGENT).packed("api")
    ids: list[str] = []
    for start in range(0, count, batch):
        expiry_estimate = int(time.time() * 1000) + store.absolute_ms
        pipe = client.pipeline(transaction=False)
        for index in range(start, min(count, start + batch)):
            user_id, username = users[index % len(users)]
            session_id = SessionId.new(new_family_id())
            pending = keys.pending_challenge(session_id.family_id)
            pipe.set(pending, username.lower(), px=60_000)
            script.queue(
                pipe,
                [pending, keys.family(session_id.family_id)],
                [
                    username, user_id, session_id.member, packed, store.idle_ms,
                    store.absolute_ms, store.keep_ms,
                ],  # fmt: skip
            )
            pipe.zadd(keys.user_families(user_id), {session_id.family_id: expiry_estimate})
            ids.append(str(session_id))
        answers = pipe.execute()
        if any(answer != 1 for answer in answers[1::3]):
            raise RuntimeError("the bulk loader could not create every family")
    return ids


def sessions_via_login(gateway: Any, users: list[tuple[int, str]], count: int) -> list[str]:
    """Live API sessions made the way ``login`` makes them (a challenge, then the login script),
    through the gateway's own ChallengeStore and SessionStore, one at a time."""
    from webservice.store.session_values import ClientInfo
    from webservice.store.tokens import SessionId

    client_info = ClientInfo(LOADER_ADDRESS, LOADER_AGENT)
    ids = []
    for index in range(count):
        user_id, username = users[index % len(users)]
        challenge = gateway.logins.challenge(username)
        session_id = SessionId.for_challenge(challenge.token)
        if not gateway.sessions.open_from_challenge(
            challenge.token, session_id, user_id, username, client_info
        ):
            raise RuntimeError("could not open a session from a fresh challenge")
        ids.append(str(session_id))
    return ids


def dead_session_ids(count: int) -> list[str]:
    """Well-formed session ids (the exact shape the gateway hands out) that name no live session."""
    from webservice.store.tokens import SessionId, new_family_id

    return [str(SessionId.new(new_family_id())) for _ in range(count)]


def web_login(base_url: str, username: str, password: str) -> tuple[str, str]:
    """Logs in through the web UI's form like a browser; answers (Cookie header, CSRF token of
    the page it lands on)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base_url}/login", timeout=10).read().decode()
    form_token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if not form_token:
        raise RuntimeError("no csrf_token in the login form")
    body = urllib.parse.urlencode(
        {"username": username, "password": password, "csrf_token": form_token.group(1)}
    ).encode()
    page = opener.open(f"{base_url}/login", body, timeout=10).read().decode()  # redirects to /
    page_token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    cookies = [cookie for cookie in jar if cookie.name == "wsgate_session"]
    if not page_token or not cookies:
        raise RuntimeError("the web login did not reach the home page")
    return f"{cookies[0].name}={cookies[0].value}", page_token.group(1)


def post_form(url: str, fields: dict[str, str], headers: dict[str, str] | None = None) -> dict:
    request = urllib.request.Request(
        url, urllib.parse.urlencode(fields).encode(), headers=headers or {}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def wait_http(url: str, process: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} before serving")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer at {url} within {timeout:.0f}s")
        time.sleep(0.1)


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def count_boots(log: Path | None) -> int:
    if log is None or not log.exists():
        return 0
    with open(log, "rb") as text:
        return sum(1 for line in text if b"Booting worker" in line)


# --- client-side round trips, in-process --------------------------------------------------------


def client_side_round_trips(
    redis_url: str, users: list[tuple[int, str, str]], web_user: tuple[str, str], secret_key: str
) -> dict[str, dict]:
    """Round trips and commands that redis-py sends for one request of each kind (average of 20),
    counted in-process on the gateway's two clients, through a Flask test client."""
    import redis
    from webservice.standalone import create_app
    from webservice.store.challenges import login_proof

    tally = Counter()

    class CountingConnection(redis.Connection):
        def send_packed_command(self, command, check_health=True):  # type: ignore[no-untyped-def]
            # Counted where they leave: redis-py and the gateway's wire.py pack differently.
            data = b"".join(command) if isinstance(command, list) else command
            tally["round_trips"] += 1
            tally["commands"] += _count_commands(data if isinstance(data, bytes) else data.encode())
            return super().send_packed_command(command, check_health)

    def counting_client(decode: bool) -> redis.Redis:
        pool = redis.ConnectionPool.from_url(
            redis_url, connection_class=CountingConnection, decode_responses=decode
        )
        return redis.Redis(connection_pool=pool)

    app = create_app(
        {"SECRET_KEY": secret_key, "SESSION_COOKIE_SECURE": False, "REDIS_URL": redis_url},
        redis_client=counting_client(True),
        web_session_client=counting_client(False),
    )
    client = app.test_client()
    _, username, access_key = users[0]
    repeats = 20
    results: dict[str, dict] = {}

    def measure(name: str, call: Callable[[], Any], check: Callable[[dict], bool]) -> None:
        if not check(call()):  # the first call may load Lua scripts: not counted
            raise RuntimeError(f"in-process {name} failed")
        tally.clear()
        for _ in range(repeats):
            answer = call()
            if not check(answer):
                raise RuntimeError(f"in-process {name} failed: {answer}")
        results[name] = {
            "round_trips": tally["round_trips"] / repeats,
            "commands_sent": tally["commands"] / repeats,
        }

    def ws_get(**params: str) -> dict:
        return client.get("/webservice.php", query_string=params).get_json()

    def ws_post(headers: dict[str, str] | None = None, **params: str) -> dict:
        return client.post("/webservice.php", data=params, headers=headers or {}).get_json()

    def login() -> str:
        token = ws_get(operation="getchallenge", username=username)["result"]["token"]
        answer = ws_post(
            operation="login", username=username, accessKey=login_proof(token, access_key)
        )
        return answer["result"]["sessionName"]

    def ok(answer: dict) -> bool:
        return answer.get("success") is True

    session = login()
    tokens: list[str] = []
    measure(
        "getchallenge",
        lambda: ws_get(operation="getchallenge", username=username),
        lambda a: ok(a) and not tokens.append(a["result"]["token"]),
    )
    measure(
        "login",
        lambda: ws_post(
            operation="login", username=username, accessKey=login_proof(tokens.pop(), access_key)
        ),
        ok,
    )
    measure("listtypes", lambda: ws_get(operation="listtypes", sessionName=session), ok)
    dead = dead_session_ids(1)[0]
    measure(
        "dead",
        lambda: ws_get(operation="listtypes", sessionName=dead),
        lambda a: a.get("error", {}).get("code") == "AUTHENTICATION_REQUIRED",
    )
    to_end = [login() for _ in range(repeats + 2)]
    measure("logout", lambda: ws_post(operation="logout", sessionName=to_end.pop()), ok)

    # The web UI login, then extendsession from its page.
    page_token = _log_in_through_the_form(client, web_user)
    measure(
        "extendsession", lambda: ws_post({"X-CSRFToken": page_token}, operation="extendsession"), ok
    )
    return results


def _count_commands(data: bytes) -> int:
    """How many commands one write to Redis holds (RESP arrays of bulk strings)."""
    count, at = 0, 0
    while at < len(data):
        end = data.index(b"\r\n", at)
        parts, at = int(data[at + 1 : end]), end + 2
        for _ in range(parts):
            end = data.index(b"\r\n", at)
            at = end + 2 + int(data[at + 1 : end]) + 2
        count += 1
    return count


def wsgi_call(app: Any, environ: dict[str, Any], start_response: Any) -> bytes:
    """Calls a WSGI app once; answers the body, having closed the answer if it has ``close``
    (PEP 3333: the gateway's lean path answers a plain list, Flask a closable iterable)."""
    answer = app(environ, start_response)
    try:
        return b"".join(answer)
    finally:
        close = getattr(answer, "close", None)
        if close is not None:
            close()


def wsgi_loop(redis_url: str, secret_key: str, session_id: str, seconds: float) -> int:
    """Calls the gateway's WSGI app with listtypes on ``session_id`` for ``seconds``, in this
    process: what ``--profile`` samples without gunicorn and HTTP. Answers the number of calls."""
    from webservice.standalone import create_app
    from werkzeug.test import EnvironBuilder

    app = create_app(
        {"SECRET_KEY": secret_key, "SESSION_COOKIE_SECURE": False, "REDIS_URL": redis_url}
    )
    base = EnvironBuilder(
        path="/webservice.php",
        query_string={"operation": "listtypes", "sessionName": session_id},
        environ_base={"REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": LOADER_AGENT},
    ).get_environ()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        if status != "200 OK":
            raise RuntimeError(f"listtypes answered {status}")

    calls = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        body = wsgi_call(app, dict(base), start_response)
        if not body.startswith(b'{"success":true'):
            raise RuntimeError(f"listtypes answered {body[:200]!r}")
        calls += 1
    return calls


# --- CPU per request of the WSGI apps, in-process -----------------------------------------------


def wsgi_cpu_per_request(
    redis_url: str,
    secret_key: str,
    api_user: tuple[str, str],
    web_user: tuple[str, str],
    session_ids: list[str],
    dead_id: str,
    *,
    rounds: int,
    requests: int,
    challenge_rate: int = 0,
) -> dict[str, Any]:
    """CPU time this process spends per request calling each WSGI app directly (no gunicorn, no
    HTTP socket; the real Redis), for every workload of the bench, in interleaved rounds: what
    the gateway's own Python work costs next to the reference's, counted in CPU time and so
    hardly moved by other load on the machine. Answers, per workload, the median over rounds of
    CPU and wall microseconds per request.

    ``api_user`` (username, access key) logs in (getchallenge + login alternating: per request,
    the client's reading of the token and its MD5 included, a few µs); ``web_user`` (username,
    password) logs in to the web UI once, and extendsession runs with its cookie and page token;
    ``session_ids`` (at least ``rounds * requests`` live ones) are logged out, one per request.
    The gateway is configured as the one the bench serves: the family caps of the config, and
    getchallenge's rate limit at ``challenge_rate`` (``--challenge-rate``; 0: off).
    """
    from webservice.standalone import create_app
    from webservice.store.challenges import login_proof
    from werkzeug.test import EnvironBuilder

    import bench_reference

    gateway = create_app(
        {
            "SECRET_KEY": secret_key,
            "SESSION_COOKIE_SECURE": False,
            "REDIS_URL": redis_url,
            # As the served gateway's (--challenge-rate), else off: every request here comes
            # from one address, and the config's rate would refuse most getchallenges.
            "CHALLENGE_RATE_LIMIT": challenge_rate,
            "CHALLENGE_RATE_BURST": challenge_rate,
        }
    )

    def environ(
        path: str, query: dict[str, str] | None = None, method: str = "GET", **headers: str
    ) -> dict[str, Any]:
        builder = EnvironBuilder(
            path=path,
            method=method,
            query_string=query,
            environ_base={"REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": LOADER_AGENT, **headers},
        )
        return builder.get_environ()

    status: list[str] = []

    def start_response(code: str, headers: Any, exc_info: Any = None) -> None:
        status.append(code)

    def call(app: Any, base: dict[str, Any]) -> bytes:
        return wsgi_call(app, dict(base), start_response)

    def ws(query: dict[str, str], method: str = "GET", **headers: str) -> dict[str, Any]:
        return environ("/webservice.php", query, method, **headers)

    username, access_key = api_user
    challenge = ws({"operation": "getchallenge", "username": username})
    login_base = ws({"operation": "login", "username": username, "accessKey": "x"})

    def login_pair() -> bytes:
        answer = call(gateway, challenge)
        token = json.loads(answer)["result"]["token"]
        proof = login_proof(token, access_key)
        query = urllib.parse.urlencode(
            {"operation": "login", "username": username, "accessKey": proof}
        )
        return call(gateway, {**login_base, "QUERY_STRING": query})

    to_log_out = iter(session_ids)
    logout_base = ws({"operation": "logout", "sessionName": session_ids[0]})

    def logout() -> bytes:
        query = urllib.parse.urlencode({"operation": "logout", "sessionName": next(to_log_out)})
        return call(gateway, {**logout_base, "QUERY_STRING": query})

    cookie, page_token = _web_login_in_process(gateway, web_user)
    extend = ws(
        {"operation": "extendsession"},
        "POST",
        HTTP_COOKIE=cookie,
        HTTP_X_CSRFTOKEN=page_token,
        HTTP_ORIGIN="http://localhost",  # a browser's, as wrk sends it (EnvironBuilder's host)
    )

    def fixed(app: Any, base: dict[str, Any]) -> Callable[[], bytes]:
        return lambda: call(app, base)

    live = session_ids[-1]
    #: name: (one request, how many requests it is, what its answer holds).
    cases: dict[str, tuple[Callable[[], bytes], int, str]] = {
        "reference": (fixed(bench_reference.app, environ("/reference")), 1, '{"success":true'),
        "login": (login_pair, 2, '{"success":true'),
        "listtypes": (
            fixed(gateway, ws({"operation": "listtypes", "sessionName": live})),
            1,
            '{"success":true',
        ),
        "extendsession": (fixed(gateway, extend), 1, '{"success":true'),
        "logout": (logout, 1, '{"success":true'),
        "dead": (
            fixed(gateway, ws({"operation": "listtypes", "sessionName": dead_id})),
            1,
            '"AUTHENTICATION_REQUIRED"',
        ),
    }
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    wall: dict[str, list[float]] = {name: [] for name in cases}
    for name, (one, _per_call, expected) in cases.items():
        body = one().decode()  # warm: Lua scripts loaded, caches filled
        if expected not in body:
            raise RuntimeError(f"in-process {name} answered {body[:200]}")
    for _ in range(rounds):
        for name, (one, per_call, _expected) in cases.items():
            calls = max(1, requests // per_call)
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            for _ in range(calls):
                one()
            done = calls * per_call
            cpu[name].append((time.process_time() - cpu_start) * 1e6 / done)
            wall[name].append((time.perf_counter() - wall_start) * 1e6 / done)
    if any(code != "200 OK" for code in status):
        raise RuntimeError("an in-process WSGI call did not answer 200")
    return {
        "rounds": rounds,
        "requests_per_round": requests,
        "cpu_us": {name: round(statistics.median(values), 1) for name, values in cpu.items()},
        "wall_us": {name: round(statistics.median(values), 1) for name, values in wall.items()},
    }


def _web_login_in_process(app: Any, web_user: tuple[str, str]) -> tuple[str, str]:
    """Logs ``web_user`` in through the web UI's form with a test client; answers (Cookie
    header, the CSRF token of the page it lands on)."""
    client = app.test_client()
    page_token = _log_in_through_the_form(client, web_user)
    cookies = "; ".join(f"{c.key}={c.value}" for c in client._cookies.values())
    return cookies, page_token


def _log_in_through_the_form(client: Any, web_user: tuple[str, str]) -> str:
    """Logs ``web_user`` in through the web UI's form with the test client ``client``; answers
    the CSRF token of the page it lands on."""
    page = client.get("/login").get_data(as_text=True)
    form_token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post(
        "/login", data={"username": web_user[0], "password": web_user[1], "csrf_token": form_token}
    )
    page = client.get("/").get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
