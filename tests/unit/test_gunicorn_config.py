"""config/gunicorn.conf.py: no preloading (Redis clients are made in each worker), gunicorn's
access log off unless asked for, and the Prometheus multiprocess directory per master."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "gunicorn.conf.py"

#: Reads the config file as gunicorn does (executes it), then runs the hooks the test names, and
#: prints the settings and the environment that matter; then exits as a master does (on_exit).
PROBE = textwrap.dedent(
    """
    import json, os, runpy, sys
    actions = sys.argv[2:]
    config = runpy.run_path(sys.argv[1])
    for action in actions:
        if action == "reload":
            config = runpy.run_path(sys.argv[1])
        else:
            config[action](None)
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    existed = os.path.isdir(directory)
    config["on_exit"](None)
    print(json.dumps({
        "existed": existed,
        "exists_after_exit": os.path.isdir(directory),
        "preload_app": config["preload_app"],
        "accesslog": config["accesslog"],
        "worker_class": config["worker_class"],
        "dir": os.environ.get("PROMETHEUS_MULTIPROC_DIR"),
        "own": os.environ.get("WSGATE_OWN_METRICS_DIR"),
        "pid": os.getpid(),
    }))
    """
)


def probe(*actions: str, **env: str) -> dict:
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PROMETHEUS_MULTIPROC_DIR", "WSGATE_OWN_METRICS_DIR", "WSGATE_ACCESS_LOG")
    }
    environ.update(env)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(CONFIG), *actions],
        env=environ, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def test_the_app_is_not_preloaded_and_workers_are_gevent():
    """gevent: slow clients hold greenlets, not workers (tests/attack/test_slow_clients.py)."""
    settings = probe()
    assert settings["preload_app"] is False
    assert settings["worker_class"] == "gevent"


def test_gunicorns_access_log_is_off_unless_asked_for():
    assert probe()["accesslog"] is None
    assert probe(WSGATE_ACCESS_LOG="")["accesslog"] is None
    assert probe(WSGATE_ACCESS_LOG="-")["accesslog"] == "-"
    assert probe(WSGATE_ACCESS_LOG="/var/log/wsgate/access.log")["accesslog"].endswith("access.log")


def test_without_a_directory_each_master_makes_its_own_and_removes_it_on_exit():
    made = probe()
    assert made["existed"] and made["dir"]
    assert made["own"] == f"{made['pid']}:{made['dir']}"
    assert not made["exists_after_exit"]
    assert probe()["dir"] != made["dir"]
    started = probe("on_starting")
    assert started["existed"] and not started["exists_after_exit"]


def test_a_reload_keeps_the_directory():
    settings = probe("on_starting", "reload")
    assert settings["own"] == f"{settings['pid']}:{settings['dir']}"
    assert settings["existed"] and not settings["exists_after_exit"]


def test_a_new_master_from_an_upgrade_makes_a_directory_of_its_own(tmp_path):
    """USR2 starts a new master with the old one's environment: it must not share (and, when the
    old master exits, lose) the old master's directory."""
    inherited = tmp_path / "old-master"
    inherited.mkdir()
    settings = probe(
        "on_starting", PROMETHEUS_MULTIPROC_DIR=str(inherited), WSGATE_OWN_METRICS_DIR=f"1:{inherited}"
    )
    assert settings["dir"] != str(inherited)
    assert settings["existed"] and not settings["exists_after_exit"]
    assert inherited.is_dir()


def test_a_given_directory_is_kept_but_emptied_of_old_counts(tmp_path):
    old = tmp_path / "counter_12345.db"
    old.write_bytes(b"\0" * 16)
    other = tmp_path / "keep.txt"
    other.write_text("not ours")
    settings = probe("on_starting", PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    assert settings["dir"] == str(tmp_path) and settings["own"] is None
    assert settings["exists_after_exit"]
    assert not old.exists()
    assert other.exists() and tmp_path.is_dir()


def test_a_given_directory_that_does_not_exist_yet_is_made(tmp_path):
    wanted = tmp_path / "metrics" / "wsgate"
    settings = probe("on_starting", PROMETHEUS_MULTIPROC_DIR=str(wanted))
    assert settings["existed"] and wanted.is_dir()


def test_child_exit_forgets_only_the_live_gauges_of_the_worker(tmp_path):
    (tmp_path / "counter_4242.db").write_bytes(b"\0" * 16)
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"\0" * 16)
    script = textwrap.dedent(
        """
        import runpy, sys, types
        config = runpy.run_path(sys.argv[1])
        config["child_exit"](None, types.SimpleNamespace(pid=4242))
        """
    )
    environ = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    environ.pop("WSGATE_OWN_METRICS_DIR", None)
    subprocess.run([sys.executable, "-c", script, str(CONFIG)], env=environ, check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_4242.db"]
