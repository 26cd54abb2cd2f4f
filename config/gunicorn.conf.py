"""gunicorn settings for wsgate: ``gunicorn -c config/gunicorn.conf.py wsgi:app``.

Each can be overridden by its environment variable. The app is not preloaded, so every worker
builds its own app and Redis clients after the fork: no two workers share a Redis socket (and
redis-py's pools would drop connections inherited through a fork anyway, should someone preload).

Metrics: every worker counts into files under ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's
multiprocess mode), which ``/metrics`` adds up, folding the files of exited workers into one per
type as it goes (webservice/serving/metrics.py). Unset, this master makes a fresh directory of its
own and removes it when it exits; set, its old files are removed when the master starts (a
directory per master: two gunicorns must not share one).
"""

import functools
import glob
import logging
import multiprocessing
import os
import re
import shutil
import tempfile

from gunicorn.glogging import Logger

bind = os.environ.get("WSGATE_BIND", "127.0.0.1:8000")
#: The hot path is a short CPU burst around one Redis round trip: two workers per core (measured
#: with scripts/bench on 2 cores with sync workers: 2 workers 3241 req/s, 3 -> 3548, 4 -> 3824,
#: 6 -> 3190).
workers = int(os.environ.get("WSGATE_WORKERS", multiprocessing.cpu_count() * 2))
#: gevent workers: a connection that sends its request slowly, or nothing at all, holds a
#: greenlet, not the worker, so slow clients cannot stall the gateway (a sync worker is held for
#: the whole of a slow request: eight such connections stopped every worker). gunicorn parses a
#: request before the app sees it, so those connections cost no Redis connection either.
worker_class = "gevent"
#: Connections one worker holds at once; past this, new ones wait in the listen backlog.
worker_connections = int(os.environ.get("WSGATE_WORKER_CONNECTIONS", "1000"))
#: Explicit: the app, and so every Redis client, is made in each worker after the fork.
preload_app = False
timeout = int(os.environ.get("WSGATE_WORKER_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
#: Recycle workers now and then, with jitter so that they do not all restart at once. Rarely: a
#: worker answers about a thousand API calls a second, and a new one costs about 0.3 s of CPU to
#: import the gateway while its former connections crowd onto the other workers. At 20000 a
#: loaded worker restarted every 20 s, and those restarts were most of the gap between the
#: gateway's p99 and a bare Flask app's (README: Performance).
max_requests = int(os.environ.get("WSGATE_MAX_REQUESTS", "500000"))
max_requests_jitter = max_requests // 10
#: Header names with underscores are dropped (gunicorn's default since 22): a proxy may strip
#: ``X-Forwarded-For`` but pass ``X_Forwarded_For``. Set WSGATE_UNDERSCORE_HEADERS=1 to accept
#: ``corebos_authorization`` from clients that send it, when no proxy in front relies on dropping.
header_map = "dangerous" if os.environ.get("WSGATE_UNDERSCORE_HEADERS") == "1" else "drop"
#: coreBOS clients send everything by GET when they like; keep long query strings inside the
#: envelope's reach instead of gunicorn's own 414 page (8190 is gunicorn's largest).
limit_request_line = 8190
#: gunicorn 27's control socket defaults to one path per user, shared by every gunicorn on the
#: host; the gateway does not use it.
control_socket_disable = True
#: The gateway writes one structured line per webservice.php request (webservice/serving/request_log.py),
#: so gunicorn's own access log is off unless WSGATE_ACCESS_LOG names a file (or "-", stdout).
accesslog = os.environ.get("WSGATE_ACCESS_LOG") or None
#: gunicorn's default format, but the path without its query string (``%(U)s`` for ``%(r)s``):
#: clients that send everything by GET put session ids and login proofs in the query.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s"'
errorlog = "-"
loglevel = os.environ.get("WSGATE_LOG_LEVEL", "info").lower()

#: A session id as the gateway hands them out (webservice/store/tokens.py).
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}")
_QUERY = re.compile(r"\?\S*")
_INVALID_REQUEST = "Invalid request from ip="


class WithholdRequestText(logging.Filter):
    """Keeps what clients sent out of gunicorn's own lines: a request that gunicorn cannot parse
    is logged with its address and the kind of fault only (gunicorn would log the whole request
    line, query and live ``sessionName`` included), every query string is withheld, and anything
    shaped like a session id too."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(_INVALID_REQUEST):
            source, _, fault = message.partition(": ")
            kind = fault.split(":", 1)[0].split("'", 1)[0].strip()
            message = f"{source}: {kind} (the request's text is withheld: it may hold credentials)"
        message = _SESSION_ID.sub("<session id>", _QUERY.sub("?<query withheld>", message))
        record.msg, record.args = message, ()
        return True


class WithholdingLogger(Logger):
    """gunicorn's logger with :class:`WithholdRequestText` on its error log."""

    def setup(self, cfg):
        super().setup(cfg)
        if not any(isinstance(f, WithholdRequestText) for f in self.error_log.filters):
            self.error_log.addFilter(WithholdRequestText())


logger_class = WithholdingLogger

# --- Prometheus multiprocess mode ------------------------------------------------------------------
_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
#: "<pid>:<directory>" of a directory a master made for itself. This file is read again on a
#: reload (HUP): the master keeps its directory. A new master started by an upgrade (USR2)
#: inherits the variables but not the directory: it makes its own.
_OWN_METRICS_DIR = "WSGATE_OWN_METRICS_DIR"


def _own_metrics_dir():
    """The directory this process made for its metrics, else None."""
    pid, _, path = os.environ.get(_OWN_METRICS_DIR, "").partition(":")
    if pid == str(os.getpid()) and path and path == os.environ.get(_METRICS_DIR):
        return path
    return None


def _inherited_own_dir():
    """Whether the metrics directory is one another master made for itself."""
    path = os.environ.get(_OWN_METRICS_DIR, "").partition(":")[2]
    return bool(path) and path == os.environ.get(_METRICS_DIR) and _own_metrics_dir() is None


if not os.environ.get(_METRICS_DIR) or _inherited_own_dir():
    # Set before any worker imports prometheus-client, which reads it at import.
    _made = tempfile.mkdtemp(prefix="wsgate-metrics-")
    os.environ[_METRICS_DIR] = _made
    os.environ[_OWN_METRICS_DIR] = f"{os.getpid()}:{_made}"


def on_starting(server):
    """The master, after any daemonizing fork: a directory that was given loses the counts of an
    earlier run (they must not be added to this one's); a directory made here becomes this
    process's."""
    made = os.environ.get(_OWN_METRICS_DIR, "").partition(":")[2]
    if made and made == os.environ[_METRICS_DIR]:
        os.environ[_OWN_METRICS_DIR] = f"{os.getpid()}:{made}"
        return
    os.makedirs(os.environ[_METRICS_DIR], exist_ok=True)
    for path in glob.glob(os.path.join(os.environ[_METRICS_DIR], "*.db")):
        os.remove(path)


def post_worker_init(worker):
    """The worker has loaded the app: what it holds now stays for its life, so the garbage
    collector stops looking at it (``gc.freeze``). A full collection walked all of it, about
    70,000 objects, in 20-45 ms during which the worker answered nothing: that was the
    p99 of a loaded worker. Afterwards a full collection looks at what came since."""
    import gc

    gc.freeze()


#: Any positive sleep: a greenlet sleeping 0 may run again before the loop polls its sockets.
_NEXT_TURN_OF_THE_LOOP = 1e-6


@functools.cache
def _loop():
    """This worker's gevent loop, looked up once (half a µs a time otherwise). Only the request
    hooks ask, and they run in workers, never in the master whose memory a new worker inherits."""
    from gevent import get_hub

    return get_hub().loop


def pre_request(worker, req):
    """Notes the turn of the worker's loop the request starts in (see :func:`post_request`)."""
    req.wsgate_loop_turn = _loop().iteration


def post_request(worker, req, environ, resp):
    """An answered request lets the worker's other connections go first. A gevent worker
    switches greenlets only where one waits: a request whose next one is already there when
    its greenlet reads (a client that pipelines, or just a fast one) and that waits on nothing
    else (a malformed session id refused before Redis, or a Redis reply there at once) kept the
    worker while its other connections waited. Another connection was answered after all 500
    requests of a pipeline of such requests; and under load, with 4 connections per worker, a
    request waited behind up to 59 of the others' (scripts/bench, 2 workers: the gateway's p99
    13.2 ms, the reference's 4.6). Now after a few. A request that waited (the loop turned
    meanwhile) gave the others their turn already; one that did not sleeps to the next turn of
    the loop, which polls the sockets first (about 3.5 µs)."""
    loop = _loop()
    if loop.iteration == getattr(req, "wsgate_loop_turn", None):
        from gevent import sleep

        sleep(_NEXT_TURN_OF_THE_LOOP)


def child_exit(server, worker):
    """A worker ended (recycled, killed, crashed): its counts stay and are still added up; only
    its live gauges go."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    own = _own_metrics_dir()
    if own:
        shutil.rmtree(own, ignore_errors=True)
