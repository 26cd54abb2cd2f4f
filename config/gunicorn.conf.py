"""gunicorn settings for wsgate: ``gunicorn -c config/gunicorn.conf.py wsgi:app``.

Each can be overridden by its environment variable. The app is not preloaded, so every worker
builds its own app and Redis client after the fork.
"""

import multiprocessing
import os

bind = os.environ.get("WSGATE_BIND", "127.0.0.1:8000")
#: The hot path is a short CPU burst around one Redis round trip: synchronous workers, about two
#: per core, keep both busy without thread switching.
workers = int(os.environ.get("WSGATE_WORKERS", multiprocessing.cpu_count() * 2))
worker_class = "sync"
timeout = int(os.environ.get("WSGATE_WORKER_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
#: Recycle workers now and then, with jitter so that they do not all restart at once.
max_requests = int(os.environ.get("WSGATE_MAX_REQUESTS", "20000"))
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
accesslog = os.environ.get("WSGATE_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("WSGATE_LOG_LEVEL", "info").lower()
