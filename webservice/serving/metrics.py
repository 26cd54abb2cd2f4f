"""Prometheus metrics, served at ``/metrics`` (``METRICS_ENABLED``).

Under gunicorn every worker counts in files of its own under ``PROMETHEUS_MULTIPROC_DIR``
(prometheus-client's multiprocess mode, set up by config/gunicorn.conf.py), and whichever worker
answers ``/metrics`` adds up the files of all of them, the workers that have exited included: the
counts are those of the whole gunicorn master, across worker restarts. The files of exited workers
are folded into one per type at each scrape (:func:`fold_exited`), so recycled workers do not
make scrapes slower over time. Without that variable (the flask commands, tests, a bare ``flask
run``) the counts are this process's own.

What is counted (every name starts with ``wsgate_``):

``requests_total{operation, code}``
    webservice.php answers: the operation (a registered name, or ``unknown``) and ``ok`` or the
    error code of the envelope.
``request_duration_seconds{operation}``
    A histogram of the time from the request's arrival in the app to its answer.
``logins_total{via, outcome}``
    Logins through ``api`` (webservice.php) or ``web`` (a web login: the standalone UI's form, a
    host app's login): ``ok``; ``failed`` (a
    wrong key or password, an unknown or inactive user, a used or expired token); ``limited``
    (refused by a failure limit before any check).
``logouts_total{via}``
    Logouts: ``logout`` (api) and a web logout that ended a live login.
``session_revocations_total{via, reason}``
    Logins ended by their user from elsewhere, each with every session linked to it: ``reason`` is
    ``endsession`` (one, named by its handle) or ``endallsessions`` (all, or all others from the
    sessions page). Sessions ended by the ``flask sessions`` / ``users`` commands are in the audit
    trail only (those run outside the gateway's processes).
``session_extensions_total``
    API sessions given to a web login by ``extendsession``.

Logins, logouts, extensions and revocations are counted from the session events
(webservice.events), once their change is made.

With logout notifications on, each scrape also shows what the outbox holds, read from Redis
(webservice/notifications/metrics.py, added with :func:`add_source`).

Labels take only values from fixed sets (operation names come from the registry), so a client
cannot make the series grow.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

from webservice import events
from webservice.events import RoundTrip, SessionEvent

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The operation label of requests that name no registered operation.
UNKNOWN = "unknown"
OK = "ok"

REQUESTS = Counter(
    "wsgate_requests",
    "webservice.php requests, by operation and outcome (ok or the error code)",
    ["operation", "code"],
)
LATENCY = Histogram(
    "wsgate_request_duration_seconds",
    "Time to answer a webservice.php request, by operation",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
LOGINS = Counter(
    "wsgate_logins", "Logins, by way in (api, web) and outcome (ok, failed, limited)",
    ["via", "outcome"],
)  # fmt: skip
LOGOUTS = Counter("wsgate_logouts", "Logouts that ended a live login", ["via"])
REVOCATIONS = Counter(
    "wsgate_session_revocations",
    "Logins (with their linked sessions) ended by their user from elsewhere, by way and reason",
    ["via", "reason"],
)
EXTENSIONS = Counter(
    "wsgate_session_extensions", "API sessions given to web logins by extendsession"
)

# Label lookups cost more than the increments; the children are kept per label values.
_children: dict[tuple[Any, tuple[str, ...]], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once."""
    key = (metric, labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def observe_request(operation: str | None, code: str, seconds: float) -> None:
    """Counts one webservice.php answer: ``operation`` the registered name (None: unknown),
    ``code`` "ok" or the error code."""
    name = operation or UNKNOWN
    _child(REQUESTS, name, code).inc()
    _child(LATENCY, name).observe(seconds)


def count_login(via: str, outcome: str) -> None:
    _child(LOGINS, via, outcome).inc()


def count_logout(via: str) -> None:
    _child(LOGOUTS, via).inc()


def count_revocations(via: str, reason: str, ended: int = 1) -> None:
    if ended > 0:
        _child(REVOCATIONS, via, reason).inc(ended)


def count_events(app: Flask) -> None:
    """Counts the session events of ``app`` (webservice.events) once their change is made."""

    def login(sender: Any, event: SessionEvent, round_trip: RoundTrip, **extra: Any) -> None:
        round_trip.on_done(lambda: count_login(event.via, "ok"))

    def failed(sender: Any, event: SessionEvent, round_trip: RoundTrip, **extra: Any) -> None:
        outcome = "limited" if event.limited else "failed"
        round_trip.on_done(lambda: count_login(event.via, outcome))

    def extended(sender: Any, event: SessionEvent, round_trip: RoundTrip, **extra: Any) -> None:
        round_trip.on_done(EXTENSIONS.inc)

    def ended(sender: Any, event: SessionEvent, round_trip: RoundTrip, **extra: Any) -> None:
        if event.reason in events.LOGOUT_REASONS:
            round_trip.on_done(lambda: count_logout(event.via))
        elif event.reason in ("endsession", "endallsessions"):
            round_trip.on_done(lambda: count_revocations(event.via, event.reason, round_trip.count))

    events.connect(
        app,
        {
            events.login_succeeded: login,
            events.login_failed: failed,
            events.session_extended: extended,
            events.family_ended: ended,
        },
        after_the_fact=True,  # they count only once the change is made
    )


# --- exposition ----------------------------------------------------------------------------------


def multiprocess_mode() -> bool:
    """Whether this process counts in PROMETHEUS_MULTIPROC_DIR (decided when prometheus-client
    was imported)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def exposition() -> bytes:
    """The text format of every metric: the sum over all workers in multiprocess mode."""
    if not multiprocess_mode():
        return generate_latest(REGISTRY)
    path = os.environ[MULTIPROC_DIR_ENV]
    # One scrape at a time, so that none reads the files while another folds them together.
    with open(os.path.join(path, _LOCK_FILE), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            fold_exited(path)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path)
            return generate_latest(registry)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --- the files of workers that have exited ---------------------------------------------------------
_LOCK_FILE = ".scrape.lock"
#: The files prometheus-client writes per process (gauges are left alone: the gateway has none,
#: and a gauge of a dead process is not a sum).
_PER_PROCESS_FILE = re.compile(r"(counter|histogram|summary)_(\d+)\.db")


def fold_exited(path: str) -> None:
    """Adds the counts of the processes that have exited into one file per type (``counter_
    archive.db`` ...) and removes their files: the sums stay the same, but gunicorn's recycled
    workers (``max_requests``) no longer pile up files that every scrape has to read.

    The caller holds the scrape lock. The new totals are written aside and renamed into place,
    so a scrape sees either the old files or the new; only a process killed between that rename
    and the removal of the folded files would leave them to be counted twice.
    """
    exited: dict[str, list[str]] = {}
    for name in os.listdir(path):
        match = _PER_PROCESS_FILE.fullmatch(name)
        if match and not _alive(int(match.group(2))):
            exited.setdefault(match.group(1), []).append(os.path.join(path, name))
    for kind, files in exited.items():
        archive = os.path.join(path, f"{kind}_archive.db")
        totals: dict[str, float] = {}
        for source in ([archive] if os.path.exists(archive) else []) + files:
            for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(source):
                totals[key] = totals.get(key, 0.0) + value
        staging = archive + ".new"
        if os.path.exists(staging):
            os.remove(staging)
        merged = MmapedDict(staging)
        try:
            for key, value in totals.items():
                merged.write_value(key, value, 0.0)
        finally:
            merged.close()
        os.replace(staging, archive)
        for source in files:
            os.remove(source)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: ``app.extensions`` key of the app's other metric sources (:func:`add_source`).
_SOURCES = "wsgate.metric-sources"


def metrics_view() -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    text = exposition() + b"".join(source() for source in app.extensions.get(_SOURCES, ()))
    return Response(text, status=200, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_source(app: Flask, source: Callable[[], bytes]) -> None:
    """Adds ``source()``, more metrics in the text format, to every scrape of ``app``: metrics
    read from elsewhere at scrape time (the logout outbox in Redis), not counted here."""
    app.extensions.setdefault(_SOURCES, []).append(source)


def init_app(app: Flask) -> None:
    """Serves ``/metrics``."""
    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])
