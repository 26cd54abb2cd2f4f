"""Security headers: a strict CSP and friends on web pages, no-store and default-src 'none' on the
endpoint, nosniff everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.support import envelope, login
from webservice.standalone.security_headers import DATA_CSP, PAGE_CSP

TEMPLATES = Path(__file__).resolve().parents[2] / "webservice" / "templates"


def directives(policy: str) -> dict[str, str]:
    parsed = {}
    for part in policy.split(";"):
        name, _, value = part.strip().partition(" ")
        assert name not in parsed, f"{name} given twice"
        parsed[name] = value
    return parsed


def assert_page_headers(response) -> None:
    headers = response.headers
    policy = directives(headers["Content-Security-Policy"])
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert policy["form-action"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert "unsafe" not in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cache-Control"] == "no-store"


def assert_endpoint_headers(response) -> None:
    headers = response.headers
    assert directives(headers["Content-Security-Policy"])["default-src"] == "'none'"
    assert headers["Content-Security-Policy"] == DATA_CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"


@pytest.fixture
def web_user(gateway):
    return gateway.users.add("carol", "a password that is long enough")


def web_login(client):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={
        "csrf_token": token, "username": "carol", "password": "a password that is long enough"})
    assert response.status_code == 302
    return token


def test_login_page(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert_page_headers(response)


def test_pages_when_logged_in(client, web_user):
    token = web_login(client)
    for path in ("/", "/sessions"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_page_headers(response)
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert_page_headers(response)


def test_redirects_and_error_pages(client):
    assert_page_headers(client.get("/"))  # the redirect to /login
    missing = client.get("/no/such/page")
    assert missing.status_code == 404
    assert_page_headers(missing)
    refused = client.post("/logout")  # no CSRF token: the 400 page
    assert refused.status_code == 400
    assert_page_headers(refused)


def test_failed_web_login_page(client, web_user):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"csrf_token": token, "username": "carol",
                                           "password": "wrong"})
    assert response.status_code == 401
    assert_page_headers(response)


@pytest.mark.parametrize("path", ["/webservice.php", "/webservice"])
def test_endpoint(client, alice, path):
    for response in (
        client.get(path, query_string={"operation": "getchallenge", "username": "alice"}),
        client.post(path, data={"operation": "nosuch"}),
        client.open(path, method="PUT"),
        client.open(path, method="OPTIONS"),
        client.open(path, method="BREW"),
    ):
        envelope(response)
        assert_endpoint_headers(response)
        assert "X-Frame-Options" not in response.headers or response.headers["X-Frame-Options"]


def test_endpoint_success_answers_are_not_stored(client, alice):
    session_id = login(client, "alice", alice.access_key)
    response = client.get("/webservice.php", query_string={
        "operation": "listtypes", "sessionName": session_id})
    assert envelope(response)["success"] is True
    assert_endpoint_headers(response)


def test_static_files_and_the_openapi_document(client):
    for path in ("/static/api-access.js", "/static/style.css", "/openapi.json"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"] == DATA_CSP
        response.close()


def test_the_pages_have_no_inline_script_or_style():
    """What makes the strict policy possible: every script and style is a file of /static."""
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag, (template.name, tag)
        bodies = re.findall(r"<script\b[^>]*>(.*?)</script>", text, re.S)
        assert all(not body.strip() for body in bodies), template.name
        assert "<style" not in text, template.name
        assert not re.search(r"\sstyle=", text), template.name
        assert not re.search(r"\son[a-z]+=", text), template.name  # onclick= and the like
        assert "javascript:" not in text, template.name


def test_a_view_keeps_a_header_it_set_itself(app):
    @app.get("/custom-policy")
    def custom():
        return "ok", 200, {"Content-Security-Policy": "default-src 'none'", "Cache-Control": "max-age=5"}

    response = app.test_client().get("/custom-policy")
    assert response.headers["Content-Security-Policy"] == "default-src 'none'"
    assert response.headers["Cache-Control"] == "max-age=5"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_page_policy_constant():
    assert directives(PAGE_CSP)["connect-src"] == "'self'"
