"""Helpers shared by the host tests: envelope assertions, page parsing, and the host app under
real gunicorn (tests/host/test_host_gunicorn.py, tests/browser/test_host_browser.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.gunicorn_process import (
    ROOT,
    TEST_GUNICORN_ARGS,
    _wait_until_serving,
    stop_gunicorn,
)
from tests.wsclient import proof
from webservice.standalone.redis_server import free_port

__all__ = [
    "proof", "success", "error_code", "meta_csrf_token", "form_csrf_token", "RESULT_KEYS",
    "HOST_APP", "TIMEOUT", "LiveHost", "serve_host", "call", "is_live",
]  # fmt: skip

#: The host app for gunicorn (tests/host/wsgi_host.py).
HOST_APP = "tests.host.wsgi_host:app"
#: Seconds for one HTTP request to the host.
TIMEOUT = 10

#: What login and extendsession answer with.
RESULT_KEYS = {"sessionName", "userId", "version", "vtigerVersion"}
_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
_FORM = re.compile(r'name="csrf_token" value="([^"]+)"')


def success(envelope: Any, what: str) -> Any:
    """The result of a successful envelope, else a failure naming ``what`` and the envelope."""
    assert isinstance(envelope, dict), f"{what}: not a JSON envelope: {envelope!r}"
    assert envelope.get("success") is True, f"{what}: expected success, got {envelope!r}"
    return envelope["result"]


def error_code(envelope: Any, what: str) -> str:
    """The error code of a failed envelope, else a failure naming ``what`` and the envelope."""
    assert isinstance(envelope, dict), f"{what}: not a JSON envelope: {envelope!r}"
    assert envelope.get("success") is False, f"{what}: expected an error, got {envelope!r}"
    return envelope["error"]["code"]


def meta_csrf_token(html: str) -> str:
    match = _META.search(html)
    assert match, f"no <meta name=csrf-token> in the page:\n{html[:500]}"
    return match.group(1)


def form_csrf_token(html: str) -> str:
    match = _FORM.search(html)
    assert match, f"no csrf_token field in the form:\n{html[:500]}"
    return match.group(1)


@dataclass
class LiveHost:
    base_url: str
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def serve_host(redis_url: str, log_path: Path, session_kind: str = "cookie", csrf: bool = False) -> Iterator[LiveHost]:
    """gunicorn (config/gunicorn.conf.py, 2 workers) serving the host app over ``redis_url``,
    with session kind ``session_kind`` and, with ``csrf``, Flask-WTF's CSRFProtect. Started like
    tests/gunicorn_process.start_gunicorn does for wsgi:app, with the host app instead."""
    port = free_port()
    env = {
        **os.environ,
        "HOST_REDIS_URL": redis_url,
        "HOST_SESSION": session_kind,
        "HOST_CSRF": "1" if csrf else "0",
        "WSGATE_BIND": f"127.0.0.1:{port}",
        "WSGATE_WORKERS": "2",
        "WSGATE_ACCESS_LOG": "-",
        "GUNICORN_CMD_ARGS": TEST_GUNICORN_ARGS,
    }
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", HOST_APP],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    _wait_until_serving(base_url, process, log_path)
    try:
        yield LiveHost(base_url, log_path)
    finally:
        stop_gunicorn(process)


def call(host: LiveHost, http: requests.Session, operation: str, method: str = "POST",
         headers: dict[str, str] | None = None, **params: str) -> dict[str, Any]:  # fmt: skip
    """One webservice.php call over HTTP; asserts the HTTP 200 JSON envelope."""
    url = f"{host.base_url}/webservice.php"
    data = {"operation": operation, **params}
    if method == "GET":
        response = http.get(url, params=data, headers=headers, timeout=TIMEOUT)
    else:
        response = http.post(url, data=data, headers=headers, timeout=TIMEOUT)
    assert response.status_code == 200, (
        f"{operation}: HTTP {response.status_code} {response.text[:300]}\n--- gunicorn log ---\n{host.log_tail()}"
    )
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    return response.json()


def is_live(host: LiveHost, session_name: str) -> bool:
    """Whether listtypes accepts ``session_name``, from a client without cookies; a refusal must
    be AUTHENTICATION_REQUIRED."""
    envelope = call(host, requests.Session(), "listtypes", "GET", sessionName=session_name)
    if envelope["success"]:
        return True
    assert error_code(envelope, "listtypes") == "AUTHENTICATION_REQUIRED", envelope
    return False
