"""A gunicorn worker under config/gunicorn.conf.py hides what it loaded from the garbage
collector (``gc.freeze`` in ``post_worker_init``): a full collection used to walk all of it,
about 70,000 objects in the gateway, in 20-45 ms during which the worker answered nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import requests

from tests.gunicorn_process import ROOT, stop_gunicorn
from webservice.standalone.redis_server import free_port

#: A WSGI app that answers what its worker's garbage collector sees.
PROBE_APP = textwrap.dedent(
    """
    import gc, json

    def app(environ, start_response):
        body = json.dumps({"frozen": gc.get_freeze_count()}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    """
)


def test_a_worker_freezes_what_it_loaded_before_serving(tmp_path: Path) -> None:
    (tmp_path / "gc_probe.py").write_text(PROBE_APP)
    port = free_port()
    env = {**os.environ, "WSGATE_BIND": f"127.0.0.1:{port}", "WSGATE_WORKERS": "1"}
    with open(tmp_path / "gunicorn.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py",
             "--pythonpath", str(tmp_path), "gc_probe:app"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except requests.RequestException:
                assert process.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "gunicorn.log"
                ).read_text()
                time.sleep(0.1)
        seen = json.loads(answer.content)
        # gunicorn, gevent and the standard library's modules at least: thousands of objects.
        assert seen["frozen"] > 5000, seen
    finally:
        stop_gunicorn(process)
