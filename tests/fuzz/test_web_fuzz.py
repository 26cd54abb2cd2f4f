"""The web UI under arbitrary input: never a 5xx, never a traceback in the log, and Redis changes
only as a page view, a login or a logout may change it."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import EXAMPLES, report
from tests.fuzz.strategies import FuzzRequest, web_requests
from tests.fuzz.world import (
    COOKIE,
    PASSWORD,
    WEB,
    Live,
    World,
    assert_clean_logs,
    diff,
    snapshot,
    unexplained,
)
from webservice.store.tokens import hash_secret


@pytest.fixture(scope="module")
def world():
    world = World()
    with world.capturing_logs():
        yield world


def new_web_sessions(response) -> set[str]:
    """The web-session keys that the answer's Set-Cookie headers name."""
    keys = set()
    for header in response.headers.getlist("Set-Cookie"):
        cookie = SimpleCookie()
        cookie.load(header)
        if COOKIE in cookie and cookie[COOKIE].value:
            keys.add(f"wsgate:web:{hash_secret(cookie[COOKIE].value)}")
    return keys


def run_case(world: World, request: FuzzRequest, reset_limits: bool) -> None:
    counts = report("web UI fuzz")
    world.refresh(reset_limits)
    resolved = world.resolve(request)
    may_log_in = Live("cookie") in [value for _, value in request.cookies] or (
        request.body_kind in ("form", "multipart")
        and Live("password") in [value for _, value in (
            request.body if request.body_kind == "form" else request.body[0])]
    )
    world.recorder.ran.clear()
    world.logs.take()
    before = snapshot(world.raw_redis)
    response = resolved.call(world.client)
    records = world.logs.take()
    after = snapshot(world.raw_redis)

    assert response.status_code < 500, (response.status_code, response.get_data()[:500])
    assert_clean_logs(records)
    page = response.get_data(as_text=True)
    assert "Traceback" not in page
    assert PASSWORD not in page
    changes = diff(before, after)
    # Web sessions may only appear under the id the answer hands the browser.
    made = {key for key in changes.added if WEB.match(key)}
    assert made <= new_web_sessions(response), (made, response.headers.getlist("Set-Cookie"))
    problems = unexplained(changes, list(world.recorder.ran), False, web=True,
                           web_login=may_log_in)
    assert not problems, "unexplained changes in Redis:\n" + "\n".join(problems)
    counts["cases"] += 1
    counts[f"HTTP {response.status_code}"] += 1
    counts[f"{resolved.method} {resolved.path} {response.status_code}"[:60]] += 1
    if changes:
        counts["changed Redis"] += 1


@settings(max_examples=max(20, EXAMPLES // 2))
@given(request=web_requests(), reset_limits=st.booleans())
@example(
    request=FuzzRequest("POST", "/login", body_kind="form", body=[
        ("csrf_token", Live("csrf")), ("username", "carol"), ("password", Live("password"))],
        content_type="application/x-www-form-urlencoded", cookies=[(COOKIE, Live("cookie"))]),
    reset_limits=True,
)
@example(
    request=FuzzRequest("POST", "/logout", body_kind="form", body=[("csrf_token", Live("csrf"))],
                        content_type="application/x-www-form-urlencoded",
                        cookies=[(COOKIE, Live("cookie"))]),
    reset_limits=False,
)
@example(
    request=FuzzRequest("POST", "/sessions/end", body_kind="form", body=[
        ("csrf_token", Live("csrf")), ("handle", Live("handle", 1))],
        content_type="application/x-www-form-urlencoded", cookies=[(COOKIE, Live("cookie"))]),
    reset_limits=False,
)
@example(
    request=FuzzRequest("GET", "/sessions", cookies=[(COOKIE, Live("cookie"))]),
    reset_limits=False,
)
def test_web_pages_never_fail(world, request, reset_limits):
    run_case(world, request, reset_limits)
