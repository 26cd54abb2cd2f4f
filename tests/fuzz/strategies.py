"""Hypothesis strategies for requests to webservice.php and to the web UI.

They mix arbitrary input (methods, raw query strings, bodies of any type, odd headers and cookies)
with the shapes that are valid (known operations in any case, real usernames, live session ids,
valid login proofs, the web login's cookie and CSRF token: :class:`~tests.fuzz.world.Live`
placeholders), so that the fuzzers reach past the first checks into every operation.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_from_bytes, urlencode

from hypothesis import strategies as st

from tests.fuzz.world import COOKIE, OWN_ORIGIN, Live

OPERATIONS = ["getchallenge", "login", "logout", "extendsession", "listtypes", "listsessions",
              "endsession", "endallsessions"]
ENDPOINT_PATHS = ["/webservice.php", "/webservice"]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "CONNECT",
           "PROPFIND"]
SESSION_HEADERS = ["corebos-authorization", "corebos_authorization", "COREBOS-AUTHORIZATION"]
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=UTF-8",
    "application/x-www-form-urlencoded; charset=latin-1",
    "APPLICATION/X-WWW-FORM-URLENCODED",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=xyz",
    "multipart/mixed; boundary=xyz",
    "application/json",
    "application/json; charset=utf-16",
    "text/plain",
    "text/xml",
    "application/octet-stream",
    "",
    ";;;",
    "application/x-www-form-urlencoded; charset=\"\"",
]

#: Text a header can carry (latin-1 without control characters; servers refuse the rest).
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=60,
)
short_text = st.text(max_size=24)
#: Strings that are not valid Unicode: lone UTF-16 surrogates, which only JSON can carry
#: (``\ud800`` escapes); UTF-8 cannot encode them, so they break whatever hashes, stores or logs
#: them unchecked.
not_unicode = st.one_of(
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3),
    st.sampled_from(["\ud800", "alice\udfff", "\udbff\udbff", "0" * 31 + "\udc80"]),
)
#: Any bytes, percent-encoded: what a query string can carry that is not UTF-8.
any_bytes_query = st.binary(max_size=24).map(
    lambda raw: "operation=login&username=" + quote_from_bytes(raw) + "&accessKey=" + quote_from_bytes(raw[::-1])
)
odd_values = st.sampled_from([
    "", " ", "null", "NULL", " null ", "None", "0", "1", "-1", "true", "false", "[]", "{}",
    "19x1", "%", "%zz", "&", "=", "+", "\x00", "é", "\ud7ff", "alice\x00", "a" * 300,
    "../../etc/passwd", "<script>alert(1)</script>", "'; DROP TABLE users; --", "${jndi:x}",
    "{\"a\": [1, 2, {\"b\": null}]}", "1e309", "NaN", "2024-02-30T25:61:00",
])
#: Values just over and under the parameter length limit (64 KiB by default).
long_values = st.sampled_from([65536, 65537, 70000]).map(lambda n: "v" * n)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each drawn with its relative weight."""
    indexes = [index for index, (weight, _) in enumerate(choices) for _ in range(weight)]
    return st.sampled_from(indexes).flatmap(lambda index: choices[index][1])


def placeholders(*kinds: str) -> st.SearchStrategy[Live]:
    return st.builds(Live, st.sampled_from(kinds), st.integers(0, 5))


def any_case(name: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda flips: "".join(c.upper() if up else c for c, up in zip(name, flips))
    )


operation_names = weighted(
    (6, st.sampled_from(OPERATIONS)),
    (2, st.sampled_from(OPERATIONS).flatmap(any_case)),
    (1, st.sampled_from(OPERATIONS).map(lambda name: f" {name} ")),
    (1, st.sampled_from(["", "nosuch", "getchallenge\x00", "log in", "webservice", "__init__",
                         "handle", "probe", "LOGIN;logout"])),
    (1, short_text),
)
usernames = weighted(
    (4, st.sampled_from(["alice", "alice", "bob", "carol", "dave", "nobody"])),
    (1, st.sampled_from(["ALICE", "alice ", "a" * 65, "admin'--", "al/ice", "@", ""])),
    (1, short_text),
)
session_ids = weighted(
    (5, placeholders("api")),
    (2, placeholders("dead", "shaped", "cookie", "csrf")),
    (1, odd_values),
    (1, short_text),
)
proofs = weighted(
    (4, placeholders("proof")),
    (1, placeholders("stale-proof", "key", "broken-proof")),
    (1, st.from_regex(r"[0-9a-f]{32}", fullmatch=True)),
    (1, st.from_regex(r"[0-9A-F]{32}", fullmatch=True)),
    (1, odd_values),
)
handles = st.one_of(placeholders("handle"), odd_values, st.from_regex(r"[A-Za-z0-9_-]{22}:[A-Za-z0-9_-]{8}", fullmatch=True))
values = st.one_of(short_text, odd_values, placeholders("api", "proof", "handle", "csrf"),
                   st.integers().map(str), long_values)
param_names = st.one_of(
    st.sampled_from(["operation", "sessionName", "username", "accessKey", "handle", "text",
                     "sessionname", "OPERATION", "SessionName", "csrf_token", "elementType",
                     "query", "element", "id", "", "n" * 257]),
    short_text,
)

NEEDS_SESSION = {"logout", "listtypes", "listsessions", "endsession", "endallsessions"}


@st.composite
def parameters(draw: st.DrawFn) -> dict[str, Any]:
    """The parameters of one request: an operation, often with the parameters it takes (the
    known ones, each maybe there), and some others."""
    operation = draw(operation_names)
    params: dict[str, Any] = draw(st.dictionaries(param_names, values, max_size=3))
    name = operation.strip().lower()
    if draw(st.integers(0, 3)) > 0:  # usually what the operation takes
        if name in ("getchallenge", "login"):
            params["username"] = draw(usernames)
        if name == "login":
            params["accessKey"] = draw(proofs)
        if name in NEEDS_SESSION:
            params["sessionName"] = draw(session_ids)
        if name == "endsession":
            params["handle"] = draw(handles)
    params.update(draw(st.fixed_dictionaries({}, optional={
        "sessionName": session_ids,
        "username": usernames,
        "accessKey": proofs,
        "handle": handles,
    })) if draw(st.integers(0, 3)) == 0 else {})
    params["operation"] = operation
    return params


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | short_text
    | placeholders("api", "proof") | not_unicode,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(short_text | not_unicode, children, max_size=3),
    max_leaves=8,
)


@dataclass
class FuzzRequest:
    """One generated request; its placeholders are resolved by World.resolve."""

    method: str
    path: str
    query: list[tuple[Any, Any]] = field(default_factory=list)
    raw_query: str = ""
    body_kind: str = "none"
    body: Any = None
    content_type: str | None = None
    headers: list[tuple[str, Any]] = field(default_factory=list)
    cookies: list[tuple[str, Any]] = field(default_factory=list)
    raw_cookie: str | None = None
    remote_addr: str = "127.0.0.1"

    def call(self, client: Any) -> Any:
        """Sends the (resolved) request with Werkzeug's test client."""
        # Strings that are not Unicode travel as the bytes Python would give them (surrogatepass):
        # not UTF-8, as an attacker may send.
        query = urlencode([(str(k), str(v)) for k, v in self.query], errors="surrogatepass")
        if self.raw_query:
            query = f"{query}&{self.raw_query}" if query else self.raw_query
        headers = [(name, str(value)) for name, value in self.headers]
        cookie = self.raw_cookie
        if cookie is None and self.cookies:
            cookie = "; ".join(f"{name}={value}" for name, value in self.cookies)
        if cookie is not None:
            headers.append(("Cookie", cookie))
        kwargs: dict[str, Any] = {}
        if self.body_kind == "form":
            pairs = [(str(k), str(v)) for k, v in self.body]
            kwargs["data"] = urlencode(pairs, errors="surrogatepass").encode()
        elif self.body_kind == "multipart":
            fields, files = self.body
            data: dict[str, Any] = {_utf8(str(k)): _utf8(str(v)) for k, v in fields}
            for name, (content, filename) in files.items():
                data[name] = (io.BytesIO(content), filename)
            kwargs["data"] = data
            kwargs["content_type"] = "multipart/form-data"
        elif self.body_kind == "json":
            kwargs["data"] = json.dumps(self.body).encode()
        elif self.body_kind == "raw":
            kwargs["data"] = self.body
        if self.body_kind != "multipart" and self.content_type is not None:
            kwargs["content_type"] = self.content_type
        return client.open(
            self.path,
            method=self.method,
            query_string=query,
            headers=headers,
            environ_base={"REMOTE_ADDR": self.remote_addr},
            **kwargs,
        )


def _utf8(text: str) -> str:
    """``text`` with what UTF-8 cannot encode replaced (the multipart encoder is strict)."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _pairs(params: dict[str, Any]) -> list[tuple[Any, Any]]:
    return list(params.items())


@st.composite
def endpoint_requests(draw: st.DrawFn) -> FuzzRequest:
    """Requests to webservice.php, from nearly valid to anything."""
    method = draw(weighted(
        (8, st.sampled_from(["GET", "POST"])),
        (2, st.sampled_from(METHODS)),
        (1, st.from_regex(r"[A-Za-z]{1,8}", fullmatch=True)),
    ))
    params = draw(parameters())
    if draw(st.booleans()):
        return _clean(draw, params)
    # Each parameter goes to the query string or the body; a few are sent twice.
    in_query = {name: draw(st.booleans()) for name in params}
    query = [(name, value) for name, value in params.items() if in_query[name]]
    body_params = [(name, value) for name, value in params.items() if not in_query[name]]
    if draw(st.booleans()) and params:
        name = draw(st.sampled_from(sorted(params, key=str)))
        query.append((name, draw(values)))
    raw_query = draw(weighted(
        (6, st.just("")),
        (1, short_text.map(lambda t: quote(t, safe="&=%"))),
        (1, short_text),
        (1, st.sampled_from(["&", "&&", "=", "%", "&operation", "a=%zz", "a=%00", "=x"])),
        (1, any_bytes_query),
    ))
    body_kind = draw(st.sampled_from(["none", "form", "form", "form", "multipart", "json", "json",
                                      "raw"]))
    content_type: str | None = None
    body: Any = None
    if body_kind == "form":
        body = body_params
        content_type = draw(st.sampled_from(CONTENT_TYPES[:4]) | st.sampled_from(CONTENT_TYPES))
    elif body_kind == "multipart":
        files = draw(st.dictionaries(st.sampled_from(["file", "operation", "sessionName"]),
                                     st.tuples(st.binary(max_size=40), short_text), max_size=1))
        body = (body_params, files)
    elif body_kind == "json":
        if draw(st.booleans()):
            body = {str(k): v for k, v in body_params}
            body.update(draw(st.dictionaries(short_text | not_unicode, json_values, max_size=2)))
            if body and draw(st.integers(0, 3)) == 0:  # a known field that is not Unicode
                body[draw(st.sampled_from(sorted(body)))] = draw(not_unicode)
        else:
            body = draw(json_values)
        content_type = draw(st.sampled_from(["application/json", "text/plain", "", None,
                                             "application/json; charset=utf-8"]))
    elif body_kind == "raw":
        body = draw(st.one_of(st.binary(max_size=80), short_text.map(lambda t: t.encode()),
                              st.sampled_from([b"{", b"[1,2]", b'"x"', b"null", b"\xff\xfe",
                                               b"operation=login&" * 3, b"--xyz\r\n\r\n",
                                               b'{"operation": "listtypes"' + b"]" * 5,
                                               b"[" * 5000 + b"]" * 5000])))
        content_type = draw(st.sampled_from(CONTENT_TYPES) | st.none())
    headers: list[tuple[str, Any]] = []
    if draw(st.booleans()):
        headers.append((draw(st.sampled_from(SESSION_HEADERS)),
                        draw(weighted((4, session_ids.filter(_header_safe)), (1, header_text)))))
    if draw(st.booleans()):
        headers.append(("X-CSRFToken", draw(placeholders("csrf") | header_text)))
    if draw(st.booleans()):
        headers.append(("Origin", draw(st.sampled_from([OWN_ORIGIN, "https://evil.example",
                                                        "null", ""]) | header_text)))
    if draw(st.booleans()):
        headers.append(("User-Agent", draw(header_text | st.just("u" * 5000))))
    if draw(st.booleans()):
        headers.append((draw(st.sampled_from(["X-Forwarded-For", "Host", "Accept", "Referer",
                                              "Accept-Encoding", "X-Requested-With"])),
                        draw(header_text)))
    cookies: list[tuple[str, Any]] = []
    raw_cookie = None
    if draw(st.booleans()):
        cookies.append((COOKIE, draw(placeholders("cookie", "cookie", "dead-cookie")
                                     | header_text.filter(lambda t: ";" not in t))))
    if draw(st.booleans()):
        raw_cookie = draw(header_text)
    return FuzzRequest(
        method=method,
        path=draw(st.sampled_from(ENDPOINT_PATHS)),
        query=query,
        raw_query=raw_query,
        body_kind=body_kind,
        body=body,
        content_type=content_type,
        headers=[(name, value) for name, value in headers if _header_ok(name, value)],
        cookies=cookies,
        raw_cookie=raw_cookie,
        remote_addr=draw(st.sampled_from(["127.0.0.1", "10.1.2.3", "::1", "2001:db8::7"])),
    )


def _clean(draw: st.DrawFn, params: dict[str, Any]) -> FuzzRequest:
    """A request as a client library sends it: every parameter in one place, proper headers."""
    carrier = draw(st.sampled_from(["query", "form", "form", "multipart", "json"]))
    headers: list[tuple[str, Any]] = [("User-Agent", "fuzz client")]
    if draw(st.booleans()):
        headers.append(("corebos-authorization", draw(placeholders("api") | st.just(""))))
    if params.get("operation") == "extendsession" or draw(st.integers(0, 9)) == 0:
        headers.append(("X-CSRFToken", draw(placeholders("csrf") | short_text.filter(_header_safe))))
        cookies = [(COOKIE, draw(placeholders("cookie", "cookie", "dead-cookie")))]
    else:
        cookies = []
    request = FuzzRequest(
        method="GET" if carrier == "query" else "POST",
        path=draw(st.sampled_from(ENDPOINT_PATHS)),
        headers=headers,
        cookies=cookies,
    )
    if carrier == "query":
        request.query = _pairs(params)
    elif carrier == "form":
        request.body_kind, request.body = "form", _pairs(params)
        request.content_type = draw(st.sampled_from(CONTENT_TYPES[:2]))
    elif carrier == "multipart":
        request.body_kind, request.body = "multipart", (_pairs(params), {})
    else:
        request.body_kind, request.body = "json", {str(k): v for k, v in params.items()}
        request.content_type = "application/json"
    return request


#: The web UI's pages and forms with the method each is meant for.
PAGES = [("GET", "/"), ("GET", "/login"), ("GET", "/sessions"), ("POST", "/login"),
         ("POST", "/logout"), ("POST", "/sessions/end"), ("POST", "/sessions/end-others"),
         ("POST", "/sessions/end-all")]
WEB_PATHS = ["/", "/login", "/logout", "/sessions", "/sessions/end", "/sessions/end-others",
             "/sessions/end-all", "/static/style.css", "/static/api-access.js",
             "/static/../app.py", "/static/%2e%2e/app.py", "/static/", "/openapi.json",
             "//login", "/login/", "/LOGIN", "/sessions/", "/webservice.php/x", "/favicon.ico"]


@st.composite
def web_requests(draw: st.DrawFn) -> FuzzRequest:
    """Requests to the web UI's pages and forms."""
    clean = draw(st.booleans())
    if clean:
        method, path = draw(st.sampled_from(PAGES))
    else:
        method = draw(weighted((4, st.sampled_from(["GET", "POST"])), (1, st.sampled_from(METHODS))))
        path = draw(weighted((4, st.sampled_from([path for _, path in PAGES])),
                             (2, st.sampled_from(WEB_PATHS)),
                             (1, short_text.map(lambda t: "/" + quote(t)))))
    fields = {
        "csrf_token": weighted((4, placeholders("csrf")), (1, placeholders("cookie")),
                               (1, odd_values), (1, short_text)),
        "username": weighted((3, st.just("carol")), (1, st.sampled_from(["alice", "carol ",
                                                                          "nobody"])),
                             (1, usernames)),
        "password": weighted((3, placeholders("password")), (1, odd_values), (1, short_text)),
        "handle": handles,
    }
    if clean:
        form = draw(st.fixed_dictionaries({"csrf_token": fields["csrf_token"]}, optional={
            name: strategy for name, strategy in fields.items() if name != "csrf_token"}))
    else:
        form = draw(st.fixed_dictionaries({}, optional=fields))
        form.update(draw(st.dictionaries(param_names, values, max_size=3)))
    if clean and method == "POST":
        body_kind = "form"
    else:
        body_kind = draw(st.sampled_from(["none", "form", "form", "multipart", "raw"]))
    body: Any = None
    content_type = None
    if body_kind == "form":
        body = list(form.items())
        content_type = draw(st.sampled_from(CONTENT_TYPES[:2]) | st.sampled_from(CONTENT_TYPES))
    elif body_kind == "multipart":
        body = (list(form.items()), {})
    elif body_kind == "raw":
        body = draw(st.binary(max_size=80))
        content_type = draw(st.sampled_from(CONTENT_TYPES) | st.none())
    headers: list[tuple[str, Any]] = []
    if draw(st.booleans()):
        headers.append(("Origin", draw(st.sampled_from([OWN_ORIGIN, "https://evil.example"])
                                       | header_text)))
    if draw(st.booleans()):
        headers.append(("Referer", draw(st.sampled_from([OWN_ORIGIN + "/login", "x"])
                                        | header_text)))
    if draw(st.booleans()):
        headers.append(("X-CSRFToken", draw(placeholders("csrf") | header_text)))
    if draw(st.booleans()):
        headers.append(("User-Agent", draw(header_text)))
    if draw(st.booleans()):
        headers.append(("Accept-Language", draw(header_text)))
    cookies: list[tuple[str, Any]] = []
    raw_cookie = None
    choice = draw(st.sampled_from(["live", "live", "live", "none", "dead", "junk", "raw"]))
    if choice == "live":
        cookies.append((COOKIE, Live("cookie")))
    elif choice == "dead":
        cookies.append((COOKIE, Live("dead-cookie")))
    elif choice == "junk":
        cookies.append((COOKIE, draw(header_text.filter(lambda t: ";" not in t))))
    elif choice == "raw":
        raw_cookie = draw(header_text)
    return FuzzRequest(
        method=method,
        path=path,
        query=list(draw(st.dictionaries(param_names, values, max_size=2)).items()),
        body_kind=body_kind,
        body=body,
        content_type=content_type,
        headers=[(name, value) for name, value in headers if _header_ok(name, value)],
        cookies=cookies,
        raw_cookie=raw_cookie,
    )


def _header_safe(value: Any) -> bool:
    return isinstance(value, Live) or (
        isinstance(value, str) and all(0x20 <= ord(c) <= 0xFF and c != "\x7f" for c in value)
    )


def _header_ok(name: str, value: Any) -> bool:
    return _header_safe(value)
