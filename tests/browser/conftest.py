"""Real Chromium (Debian's ``chromium``, headless, driven by Playwright) against real gunicorn with
2 workers over a real redis-server.

Chromium is not optional here: without it every browser test fails with a message saying how to
install it (``scripts/test`` installs it when it runs as root with apt-get). The browser tier never
skips, so CI cannot pass without having really driven a browser.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gunicorn_process import start_gunicorn, stop_gunicorn
from tests.wsclient import WebServiceClient, http_transport
from webservice.api.gateway import current_gateway
from webservice.standalone import create_app
from webservice.standalone.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"

#: Debian's package installs it here; WSGATE_CHROMIUM names another Chromium build.
DEFAULT_CHROMIUM = "/usr/bin/chromium"

#: Headless, no network of its own (updates, sync, QUIC), a throw-away profile (Playwright's launch
#: makes a fresh user-data dir for every browser it starts).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

SECRET_KEY = "browser-tests-secret-key"

#: Playwright waits this long (ms) for a page or an element before failing a step.
STEP_TIMEOUT_MS = 10_000


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives a real headless Chromium (tests/browser)")


def chromium_path() -> str:
    """The Chromium binary to drive, or a test failure that says how to get one."""
    chosen = os.environ.get("WSGATE_CHROMIUM")
    if chosen:
        if os.access(chosen, os.X_OK):
            return chosen
        pytest.fail(f"WSGATE_CHROMIUM is {chosen}, which is not an executable file", pytrace=False)
    found = DEFAULT_CHROMIUM if os.access(DEFAULT_CHROMIUM, os.X_OK) else shutil.which("chromium")
    if found:
        return found
    pytest.fail(
        f"the browser tests need Chromium, and there is none at {DEFAULT_CHROMIUM} or on PATH. "
        "Install Debian's package (`apt-get install chromium`; scripts/test does it when it runs "
        "as root), or set WSGATE_CHROMIUM to a Chromium binary.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the whole browser tier; each test gets its own context."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "browser tests need Playwright for Python: install the test extras "
            "(pip install -e '.[test]', which scripts/test does)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass(frozen=True)
class Gateway:
    base_url: str
    redis_url: str
    secret_key: str


@pytest.fixture(scope="session")
def live_gateway(tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    """gunicorn (config/gunicorn.conf.py, 2 workers) over its own redis-server, for the browser
    tier; plain HTTP on loopback, so the session cookie is not marked Secure."""
    workdir = tmp_path_factory.mktemp("browser")
    with RedisServer(workdir / "redis") as redis_server:
        process, base_url, _ = start_gunicorn(
            redis_server.url, workdir / "gunicorn.log", extra_env={"WSGATE_SECRET_KEY": SECRET_KEY}
        )
        try:
            yield Gateway(base_url, redis_server.url, SECRET_KEY)
        finally:
            stop_gunicorn(process)


@dataclass(frozen=True)
class WebUser:
    username: str
    password: str
    user_id: str
    access_key: str


_user_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def admin_app(live_gateway: Gateway):
    """An app of our own over the gateway's Redis, to add users in-process (a ``flask users add``
    subprocess per test would cost seconds on a busy machine)."""
    return create_app({"REDIS_URL": live_gateway.redis_url, "SECRET_KEY": live_gateway.secret_key})


@pytest.fixture
def web_user(admin_app) -> WebUser:
    """A fresh user with a web password (and an API access key)."""
    username = f"browser{next(_user_numbers)}"
    password = secrets.token_urlsafe(12)
    with admin_app.app_context():
        user = current_gateway().users.add(username, password)
    return WebUser(username, password, user.webservice_id, user.access_key)


@pytest.fixture
def api(live_gateway: Gateway) -> WebServiceClient:
    """A coreBOS web service client over real HTTP (requests) to the same gateway."""
    return WebServiceClient(http_transport(live_gateway.base_url))


def _new_page(chromium, live_gateway: Gateway, **options):
    context = chromium.new_context(base_url=live_gateway.base_url, **options)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    context.set_default_navigation_timeout(STEP_TIMEOUT_MS)
    return context, context.new_page()


@pytest.fixture
def page(chromium, live_gateway: Gateway):
    """A page in a fresh browser context (no cookies), desktop-sized."""
    context, page = _new_page(chromium, live_gateway, viewport=DESKTOP)
    yield page
    context.close()


@pytest.fixture
def phone_page(chromium, live_gateway: Gateway):
    """A page in a fresh context that behaves like a phone (meta viewport, touch, 390x844)."""
    phone = {"viewport": PHONE, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
    context, page = _new_page(chromium, live_gateway, **phone)
    yield page
    context.close()


@pytest.fixture
def screenshot():
    """Saves a full-page screenshot under test-output/screenshots/ (for people to look at)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed browser test leaves a screenshot of where its page was."""
    report = yield
    if report.when == "call" and report.failed:
        for name in ("page", "phone_page"):
            page = getattr(item, "funcargs", {}).get(name)
            if page is None or page.is_closed():
                continue
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            test_name = re.sub(r"[^\w.-]+", "_", item.name)
            path = SCREENSHOTS / f"FAILED-{test_name}-{name}.png"
            try:
                page.screenshot(path=str(path), full_page=True)
                report.sections.append(("browser", f"screenshot of the failed page: {path}"))
            except Exception as error:  # the page may be what broke
                report.sections.append(("browser", f"no screenshot: {error}"))
    return report
