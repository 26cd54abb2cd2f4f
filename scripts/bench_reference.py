"""The reference app of scripts/bench: the least a Flask app over Redis can do per request.

One endpoint, ``GET /reference``: a single Redis ``GET`` and a small JSON answer in the gateway's
envelope shape. scripts/bench serves it with the gateway's own gunicorn settings
(``gunicorn -c config/gunicorn.conf.py --pythonpath scripts bench_reference:app``) and the project's
Redis client factory, so the gateway's requests per second divided by this app's says what the
gateway's own work costs on top of Flask, gunicorn and one Redis round trip.

Beside it, ``GET /reference/two-round-trips`` reads the same key a second time, as the gateway
sends a command (webservice/store/direct.py): the least a request that needs two round trips (a
login, a logout) can cost here, the floor of those workloads' ratios.

Environment: WSGATE_REDIS_URL (required).
"""

from __future__ import annotations

import json
import os

from flask import Flask, Response

from webservice.store.client import connect
from webservice.store.direct import line_of

#: The key the endpoint reads; scripts/bench sets it before the run.
REFERENCE_KEY = "bench:reference"

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

app = Flask(__name__)
# Made when a worker imports this module, after gunicorn's fork (the config does not preload).
redis_client = connect(
    {
        "REDIS_URL": os.environ["WSGATE_REDIS_URL"],
        "REDIS_CLUSTER": False,
        "REDIS_CONNECT_TIMEOUT": 1.0,
        "REDIS_SOCKET_TIMEOUT": 2.0,
    }
)


@app.get("/reference")
def reference() -> Response:
    value = redis_client.get(REFERENCE_KEY)
    return Response(
        _encode({"success": True, "result": {"value": value}}),
        status=200,
        mimetype="application/json",
    )


#: The gateway's way of sending a command (what its round trips cost, not redis-py's).
_line = line_of(redis_client)


@app.get("/reference/two-round-trips")
def two_round_trips() -> Response:
    value = redis_client.get(REFERENCE_KEY)
    if _line.call("GET", REFERENCE_KEY) != value:
        raise RuntimeError("the two reads disagree")
    return Response(
        _encode({"success": True, "result": {"value": value}}),
        status=200,
        mimetype="application/json",
    )
