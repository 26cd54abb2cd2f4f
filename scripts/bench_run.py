"""The driver of scripts/bench: starts Redis, the gateway and a reference app, drives them with
wrk, and reports requests per second, latency, failures and Redis cost per request.

Run it through ``scripts/bench`` (which makes .venv, installs wrk and cleans up after it); the
options are described by ``scripts/bench --help``.

What runs:

- one ephemeral ``redis-server`` (webservice.standalone.redis_server.RedisServer) on a free loopback port;
- the gateway under gunicorn with the production settings (``-c config/gunicorn.conf.py wsgi:app``);
- the reference app (scripts/bench_reference.py: one Redis GET, a small JSON answer) under the same
  gunicorn settings, on another port;
- wrk with scripts/bench_wrk.lua, one workload at a time, at a fixed concurrency and duration.

How Redis cost is measured, around each workload: ``INFO`` before and after.
``commands/req`` is the delta of ``INFO commandstats`` calls (every command Redis executed,
including those a Lua script runs) divided by the requests wrk completed. ``round trips/req`` is the
delta of ``total_reads_processed`` (one per request a client sends; a pipeline arrives as one)
divided by the same; the monitoring connection's own INFO is subtracted. The same figures are
also counted on the client side in-process (a Flask test client over a connection class that counts
what redis-py sends), for one request of each kind, as a cross-check.

Every process started here runs in its own process group and is stopped on exit, on errors and on
SIGINT / SIGTERM / SIGHUP; its pid is also written to ``<workdir>/pids`` so that scripts/bench can
stop leftovers if this driver itself is killed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_data import (
    bulk_load,
    client_side_round_trips,
    count_boots,
    dead_session_ids,
    post_form,
    sessions_via_login,
    wait_http,
    web_login,
    write_lines,
    wsgi_cpu_per_request,
    wsgi_loop,
)
from bench_measure import (
    CLOCK_TICKS,
    Children,
    WrkResult,
    _machine_jiffies,
    cpu_cost,
    cpu_sample,
    machine_facts,
    redis_cost,
    run_wrk,
    say,
    snapshot,
    source_state,
)
from bench_report import LABELS, WORKLOADS, render, summarize_profile

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
DEFAULT_SCALE = "10000,100000,1000000"
#: wrk threads (so users) of the login workload, at least: see Bench.start.
LOGIN_THREADS = 4
#: The reference app's endpoint that reads Redis twice (scripts/bench_reference.py).
TWO_ROUND_TRIPS_PATH = "/reference/two-round-trips"


class Interrupted(SystemExit):
    """A signal asked us to stop."""


# --- the run ------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, children: Children) -> None:
        self.args = args
        self.workdir = workdir
        self.children = children
        self.report: dict[str, Any] = {"settings": {}, "workloads": {}, "scale": []}
        self.redis_server: Any = None

    # ----------------------------------------------------------------------------- setup
    def start(self) -> None:
        import redis
        from webservice.standalone.redis_server import RedisServer, free_port

        args = self.args
        self.redis_server = RedisServer(self.workdir / "redis")
        self.redis_server.start()
        self.children.register(self.redis_server.process.pid, "redis-server", group=False)
        self.redis_url = self.redis_server.url
        say(f"redis-server on 127.0.0.1:{self.redis_server.port} (ephemeral)")
        self.monitor = redis.Redis.from_url(self.redis_url, decode_responses=True)
        # The loader has its own connection: its buffers go away when it disconnects.
        self.loader = redis.Redis.from_url(self.redis_url, decode_responses=True)

        self.secret_key = secrets.token_urlsafe(48)
        env = {k: v for k, v in os.environ.items()}
        env.update(
            WSGATE_REDIS_URL=self.redis_url,
            WSGATE_SECRET_KEY=self.secret_key,
            WSGATE_SESSION_COOKIE_SECURE="false",
        )
        if args.workers:
            env["WSGATE_WORKERS"] = str(args.workers)
        if args.access_log is not None:
            env["WSGATE_ACCESS_LOG"] = args.access_log
        os.environ.update(
            {
                k: env[k]
                for k in ("WSGATE_REDIS_URL", "WSGATE_SECRET_KEY", "WSGATE_SESSION_COOKIE_SECURE")
            }
        )

        # The gateway's per-request log line (logger webservice.requests, stdout by default) of
        # the apps made in this process goes to a file: its cost stays, the terminal stays clean.
        request_log = logging.getLogger("webservice.requests")
        handler = logging.FileHandler(self.workdir / "in-process-requests.log")
        handler.setFormatter(logging.Formatter("%(message)s"))
        request_log.addHandler(handler)
        request_log.propagate = False

        from webservice.standalone import create_app

        self.app = create_app()
        self.gateway = self.app.extensions["wsgate"]
        self.monitor.set("bench:reference", "hello")

        # Users: one per wrk thread for the login workload, one with a password for the web UI,
        # and a pool that the pre-made sessions are spread over.
        users = self.gateway.users
        # The login workload runs LOGIN_THREADS wrk threads at least, each logging in as its own
        # user: a user keeps CHALLENGE_MAX_OUTSTANDING tokens per address, so one user flooded
        # from one address at ~700 getchallenges/s keeps a token for only ~45 ms, and a login
        # in the latency tail would find its token pushed out (INVALID_USER_CREDENTIALS, then
        # the address's failure limit refusing every login).
        self.login_threads = max(args.threads, min(LOGIN_THREADS, args.connections))
        self.api_users = [users.add(f"bench-api-{i}") for i in range(self.login_threads)]
        self.web_password = secrets.token_urlsafe(12)
        users.add("bench-web", self.web_password)
        self.pool = [
            (u.id, u.username) for u in (users.add(f"bench-user-{i}") for i in range(args.users))
        ]

        gunicorn = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "config" / "gunicorn.conf.py"),
        ]
        self.gateway_port, self.reference_port = free_port(), free_port()
        self.gateway_log = self.workdir / "gateway.log"
        self.reference_log = self.workdir / "reference.log"
        gateway_env = {**env, "WSGATE_BIND": f"127.0.0.1:{self.gateway_port}"}
        if args.challenge_rate:
            # All of wrk's requests come from 127.0.0.1: the per-address getchallenge bucket
            # (50/s by default) would cap the login workload. The limiter still runs.
            gateway_env["WSGATE_CHALLENGE_RATE_LIMIT"] = str(args.challenge_rate)
            gateway_env["WSGATE_CHALLENGE_RATE_BURST"] = str(args.challenge_rate)
        self.gateway_proc = self.children.start(
            "gunicorn wsgate",
            [*gunicorn, "wsgi:app"],
            env=gateway_env,
            log=self.gateway_log,
        )
        self.reference_proc = self.children.start(
            "gunicorn reference",
            [*gunicorn, "--pythonpath", str(SCRIPTS), "bench_reference:app"],
            env={**env, "WSGATE_BIND": f"127.0.0.1:{self.reference_port}"},
            log=self.reference_log,
        )
        self.base = f"http://127.0.0.1:{self.gateway_port}"
        self.reference_base = f"http://127.0.0.1:{self.reference_port}"
        wait_http(f"{self.base}/webservice.php", self.gateway_proc.process, "the gateway")
        wait_http(f"{self.reference_base}/reference", self.reference_proc.process, "the reference")
        say(
            f"gateway at {self.base}, reference at {self.reference_base} "
            f"(gunicorn -c config/gunicorn.conf.py, {self.worker_count()} workers each)"
        )

    def worker_count(self) -> int:
        if self.args.workers:
            return self.args.workers
        import multiprocessing

        return int(os.environ.get("WSGATE_WORKERS", multiprocessing.cpu_count() * 2))

    # ----------------------------------------------------------------------------- workloads
    def wrk(
        self,
        workload: str,
        *,
        duration: float,
        data: Path | None = None,
        url: str | None = None,
        path: str | None = None,
    ) -> WrkResult:
        return run_wrk(
            self.children,
            url or self.base,
            workload,
            threads=self.login_threads if workload == "login" else self.args.threads,
            connections=self.args.connections,
            duration=duration,
            data=data,
            path=path,
            log=self.workdir / f"wrk-{workload}.log",
        )

    def wait_for_quiet(self) -> float | None:
        """With --quiet-below P: waits (up to --quiet-wait seconds) for a second in which the
        machine's CPUs are less than P% busy (this benchmark is idle meanwhile); answers the last
        busy share seen."""
        threshold = self.args.quiet_below
        if not threshold:
            return None
        deadline = time.monotonic() + self.args.quiet_wait
        waited = False
        while True:
            busy0, total0 = _machine_jiffies()
            time.sleep(1.0)
            busy1, total1 = _machine_jiffies()
            busy = 100 * (busy1 - busy0) / max(total1 - total0, 1)
            if busy < threshold or time.monotonic() > deadline:
                if waited:
                    say(f"machine {busy:.0f}% busy: going on")
                return round(busy, 1)
            if not waited:
                say(f"machine {busy:.0f}% busy (others): waiting for under {threshold:g}%")
                waited = True

    def measure_once(
        self, workload: str, kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], WrkResult]:
        busy_before = self.wait_for_quiet()
        log = self.reference_log if workload == "reference" else self.gateway_log
        boots = count_boots(log)
        app = self.reference_proc if workload == "reference" else self.gateway_proc
        groups = {"app": app.process.pid}
        singles = {"redis": self.redis_server.process.pid}
        before = snapshot(self.monitor)
        cpu_before = cpu_sample(groups, singles)
        result = self.wrk(workload, duration=self.args.duration, **kwargs)
        cpu_after = cpu_sample(groups, singles)
        time.sleep(0.5)  # requests still in flight when wrk stopped reach Redis
        after = snapshot(self.monitor)
        entry = {
            "requests": result.requests,
            "duration_s": round(result.duration_s, 3),
            "requests_per_s": round(result.rps, 1),
            "ok_per_s": round(result.ok_per_s, 1),
            "latency_ms": {k: round(v / 1000, 3) for k, v in result.latency_us.items()},
            "ok": result.checks.get("ok", 0),
            "failures": result.failures,
            "non2xx": result.checks.get("non2xx", 0),
            "failure_codes": result.codes,
            "failure_samples": result.samples,
            "socket_errors": result.socket_errors,
            "redis": redis_cost(before, after, result.requests),
            "cpu": cpu_cost(cpu_before, cpu_after, result.requests),
            "worker_boots_during_run": count_boots(log) - boots,
            "machine_busy_pct_just_before": busy_before,
        }
        return entry, result

    def measure(self, workload: str, prepare: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """One measured run of ``workload`` (``prepare`` answers its wrk arguments). With
        --quiet-below P, up to three runs, each with freshly prepared data, keeping the one during
        which other processes took the least CPU (stopping at one under P%)."""
        tries = 3 if self.args.quiet_below else 1
        best: tuple[dict[str, Any], WrkResult] | None = None
        tried = 0
        for _ in range(tries):
            entry, result = self.measure_once(workload, prepare())
            tried += 1
            other = entry["cpu"]["other_processes_pct"]
            if best is None or other < best[0]["cpu"]["other_processes_pct"]:
                best = (entry, result)
            if other < (self.args.quiet_below or 101):
                break
            say(f"{LABELS[workload]}: other processes took {other:.0f}% of the CPUs: again")
        assert best is not None
        entry, result = best
        entry["runs_tried"] = tried
        if workload == "login":
            entry["getchallenge_ok"] = result.checks.get("challenges", 0)
            entry["login_ok"] = result.checks.get("logins", 0)
            entry["logins_per_s"] = round(entry["login_ok"] / result.duration_s, 1)
            pairs = max(entry["login_ok"], 1)
            entry["redis"]["commands_per_login_pair"] = entry["redis"]["commands"] / pairs
            entry["redis"]["round_trips_per_login_pair"] = entry["redis"]["round_trips"] / pairs
            entry["user_hash_fields_after"] = [
                self.monitor.hlen(self.gateway.keys.user(u.username)) for u in self.api_users
            ]
        if workload == "logout":
            entry["sessions_prepared"] = result.checks.get("items", 0)
            entry["sessions_logged_out"] = result.checks.get("ok", 0)
            entry["ran_out_of_sessions"] = bool(result.checks.get("exhausted", 0))
        self.report["workloads"][workload] = entry
        reference = self.report["workloads"].get("reference")
        if reference and reference["requests_per_s"]:
            entry["ratio_to_reference"] = round(
                entry["requests_per_s"] / reference["requests_per_s"], 3
            )
        say(
            f"{LABELS[workload]}: {entry['requests_per_s']:.0f} req/s, "
            f"p50 {entry['latency_ms']['p50']:.2f} ms, p99 {entry['latency_ms']['p99']:.2f} ms, "
            f"{entry['failures']} failures, {entry['redis']['commands_per_request']:.2f} Redis "
            f"commands/req, {entry['redis']['round_trips_per_request']:.2f} round trips/req"
        )
        return entry

    def run_workloads(self) -> None:
        args, work = self.args, self.workdir
        chosen = [w for w in WORKLOADS if w in args.workloads]
        if not chosen:
            return
        listtypes_ids = sessions_via_login(self.gateway, self.pool, args.sessions)
        listtypes_file = write_lines(work / "listtypes.txt", listtypes_ids)
        dead_file = write_lines(work / "dead.txt", dead_session_ids(1000))
        login_file = write_lines(
            work / "login-users.txt", (f"{u.username}\t{u.access_key}" for u in self.api_users)
        )
        say(
            f"{len(listtypes_ids)} live API sessions made through the login path, "
            f"over {len(self.pool)} users"
        )

        if args.warmup > 0:
            say(f"warming up both apps ({args.warmup:g}s each, not measured)")
            self.wrk("reference", duration=args.warmup, url=self.reference_base, path="/reference")
            self.wrk("listtypes", duration=args.warmup, data=listtypes_file)
            time.sleep(0.5)

        interleave = "reference" in chosen
        for workload in chosen:
            if workload == "reference":
                self.measure(
                    "reference", lambda: {"url": self.reference_base, "path": "/reference"}
                )
            elif workload == "login":
                self.measure("login", lambda: {"data": login_file})
                if interleave:
                    self.run_ab("login", args.ab_rounds_each, lambda _round: {"data": login_file})
            elif workload == "listtypes":
                self.measure("listtypes", lambda: {"data": listtypes_file})
                if interleave:
                    self.run_ab(
                        "listtypes", args.ab_rounds, lambda _round: {"data": listtypes_file}
                    )
            elif workload == "extendsession":
                web_logins = self.prepare_web_logins()
                self.measure("extendsession", lambda logins=web_logins: {"data": logins})
                if interleave:
                    self.run_ab(
                        "extendsession",
                        args.ab_rounds_each,
                        lambda _round, logins=web_logins: {"data": logins},
                    )
            elif workload == "logout":
                self.measure("logout", lambda: {"data": self.prepare_logout()})
                if interleave and args.ab_rounds_each > 0:
                    # Each run logs out sessions of its own: all of them made before the rounds.
                    files = [
                        self.prepare_logout(args.ab_seconds, f"logout-round-{index}.txt")
                        for index in range(args.ab_rounds_each)
                    ]
                    self.run_ab(
                        "logout", args.ab_rounds_each, lambda index, runs=files: {"data": runs[index]}
                    )
            elif workload == "dead":
                self.measure("dead", lambda: {"data": dead_file})
                if interleave:
                    self.run_ab("dead", args.ab_rounds_each, lambda _round: {"data": dead_file})
        if interleave and len(chosen) > 1:
            # The floor of the workloads that need two round trips (login, logout): the
            # reference reading Redis twice, the second time as the gateway sends a command.
            self.run_ab(
                "two_round_trips",
                args.ab_rounds_each,
                lambda _round: {"url": self.reference_base, "path": TWO_ROUND_TRIPS_PATH},
                app_pid=self.reference_proc.process.pid,
            )

    def prepare_web_logins(self) -> Path:
        count = self.args.web_logins
        say(f"logging in {count} browsers through the web UI's form (each an Argon2 check)")
        logins = [web_login(self.base, "bench-web", self.web_password) for _ in range(count)]
        # The requests of a page's script: browsers send Origin on every POST, so the gateway's
        # same-origin rule accepts them on it (the CSRF token is checked when Origin is absent).
        # One by hand: the cookie and page token really work.
        cookie, token = logins[0]
        answer = post_form(
            f"{self.base}/webservice.php",
            {"operation": "extendsession"},
            {"Cookie": cookie, "X-CSRFToken": token, "Origin": self.base},
        )
        if not answer.get("success"):
            raise RuntimeError(f"extendsession with a web cookie failed: {answer}")
        return write_lines(
            self.workdir / "web-logins.txt", (f"{c}\t{t}\t{self.base}" for c, t in logins)
        )

    def prepare_logout(self, seconds: float | None = None, name: str = "logout.txt") -> Path:
        """Live sessions enough for a logout run of ``seconds`` (default: --duration), in a file
        of the work directory called ``name``."""
        done = self.report["workloads"]
        fastest = max(
            [done.get(w, {}).get("requests_per_s", 0) for w in ("listtypes", "reference")] + [1000]
        )
        count = int(fastest * (seconds or self.args.duration) * 1.5) + 2000
        started = time.perf_counter()
        ids = bulk_load(self.loader, self.gateway, self.pool, count)
        self.loader.connection_pool.disconnect()
        random.shuffle(ids)
        say(
            f"{count} live sessions to log out, bulk-loaded in {time.perf_counter() - started:.1f}s"
        )
        return write_lines(self.workdir / name, ids)

    def run_ab(
        self,
        workload: str,
        rounds: int,
        arguments: Callable[[int], dict[str, Any]],
        app_pid: int | None = None,
    ) -> None:
        """``workload`` against the reference in short interleaved runs (ABBA...): on a shared or
        drifting machine both see the same load, and a round's luck (how wrk's connections fall
        on the workers) evens out over the rounds, so their ratio means something. Written as
        ``ab_<workload>_vs_reference``; ``arguments(round)`` gives the workload's wrk arguments;
        ``app_pid`` is the gunicorn that serves it (default: the gateway's)."""
        if rounds <= 0:
            return
        self.wait_for_quiet()
        seconds = self.args.ab_seconds
        say(f"interleaving reference and {workload}: {rounds} rounds of {seconds:g}s each")
        groups = {
            "reference": self.reference_proc.process.pid,
            workload: app_pid or self.gateway_proc.process.pid,
        }
        redis_server = {"redis": self.redis_server.process.pid}
        totals = {
            name: {
                "requests": 0,
                "seconds": 0.0,
                "failures": 0,
                "cpu_ticks": 0,
                "machine_ticks": 0,
                "busy_ticks": 0,
                "all_ticks": 0,
                "p50_ms": [],
                "p99_ms": [],
            }
            for name in groups
        }
        ratios = []
        for index in range(rounds):
            order = ("reference", workload) if index % 2 == 0 else (workload, "reference")
            rates = {}
            for name in order:
                before = cpu_sample({name: groups[name]}, redis_server)
                if name == "reference":
                    result = self.wrk(
                        "reference", duration=seconds, url=self.reference_base, path="/reference"
                    )
                else:
                    result = self.wrk(workload, duration=seconds, **arguments(index))
                after = cpu_sample({name: groups[name]}, redis_server)
                total = totals[name]
                total["requests"] += result.requests
                total["seconds"] += result.duration_s
                total["failures"] += result.failures
                total["cpu_ticks"] += after.groups[name] - before.groups[name]
                total["busy_ticks"] += after.busy - before.busy
                total["all_ticks"] += after.total - before.total
                total["machine_ticks"] += sum(
                    after.groups[part] - before.groups[part] for part in (name, "redis", "wrk")
                )
                total["p50_ms"].append(round(result.latency_us["p50"] / 1000, 3))
                total["p99_ms"].append(round(result.latency_us["p99"] / 1000, 3))
                rates[name] = result.rps
            ratios.append(rates[workload] / rates["reference"] if rates["reference"] else 0)
        summary: dict[str, Any] = {"rounds": rounds, "seconds_each": seconds}
        for name, total in totals.items():
            summary[name] = {
                "requests_per_s": round(total["requests"] / total["seconds"], 1),
                "failures": total["failures"],
                "app_cpu_ms_per_request": round(
                    1000 * total["cpu_ticks"] / CLOCK_TICKS / max(total["requests"], 1), 3
                ),
                "machine_cpu_ms_per_request": round(
                    1000 * total["machine_ticks"] / CLOCK_TICKS / max(total["requests"], 1), 3
                ),
                "machine_busy_pct": round(
                    100 * total["busy_ticks"] / max(total["all_ticks"], 1), 1
                ),
                "p50_ms_median": statistics.median(total["p50_ms"]),
                "p99_ms_median": statistics.median(total["p99_ms"]),
                "p99_ms_per_round": total["p99_ms"],
            }
        summary["ratio"] = round(
            summary[workload]["requests_per_s"] / summary["reference"]["requests_per_s"], 3
        )
        summary["ratio_per_round"] = [round(r, 3) for r in ratios]
        summary["cpu_ratio"] = round(
            summary["reference"]["app_cpu_ms_per_request"]
            / summary[workload]["app_cpu_ms_per_request"],
            3,
        )
        summary["machine_cpu_ratio"] = round(
            summary["reference"]["machine_cpu_ms_per_request"]
            / summary[workload]["machine_cpu_ms_per_request"],
            3,
        )
        self.report[f"ab_{workload}_vs_reference"] = summary
        say(
            f"interleaved: {workload}/reference = {summary['ratio']:.2f} "
            f"(rounds {min(ratios):.2f}-{max(ratios):.2f}), "
            f"CPU-time ratio {summary['cpu_ratio']:.2f} (app), "
            f"{summary['machine_cpu_ratio']:.2f} (app, Redis and wrk)"
        )

    # ----------------------------------------------------------------------------- end all
    def time_end_all(self, tag: str, repeats: int = 5, per_user: int = 1000) -> dict[str, Any]:
        timings = []
        for attempt in range(repeats):
            user = self.gateway.users.add(f"bench-endall-{tag}-{attempt}")
            bulk_load(self.loader, self.gateway, [(user.id, user.username)], per_user)
            self.loader.connection_pool.disconnect()
            started = time.perf_counter()
            ended = self.gateway.sessions.end_all_for_user(user.id)
            timings.append((time.perf_counter() - started) * 1000)
            if ended != per_user:
                raise RuntimeError(f"end_all_for_user ended {ended} of {per_user} sessions")
            left = self.monitor.exists(self.gateway.keys.user_families(user.id))
            if left:
                raise RuntimeError("end_all_for_user left the user's family index behind")
        return {
            "sessions": per_user,
            "repeats": repeats,
            "ms_median": round(statistics.median(timings), 2),
            "ms_max": round(max(timings), 2),
            "ms_all": [round(t, 2) for t in timings],
        }

    # ----------------------------------------------------------------------------- scale
    def run_scale(self) -> None:
        sizes = sorted(int(size) for size in self.args.scale.split(",") if size.strip())
        families_before = sum(1 for _ in self.monitor.scan_iter(match="*:f", count=10000))
        say(f"scale: {families_before} families already in Redis; loading up to {sizes[-1]}")
        self.report["scale_preexisting_families"] = families_before
        loaded: list[str] = []
        for size in sizes:
            add = size - len(loaded)
            if add <= 0:
                continue
            time.sleep(0.2)
            before = snapshot(self.monitor)
            started = time.perf_counter()
            loaded.extend(bulk_load(self.loader, self.gateway, self.pool, add, batch=2000))
            elapsed = time.perf_counter() - started
            self.loader.connection_pool.disconnect()
            time.sleep(0.5)
            after = snapshot(self.monitor)
            bytes_per = (after.used_memory - before.used_memory) / add
            sample = random.sample(loaded, min(len(loaded), 200))
            family_bytes = statistics.mean(
                self.monitor.memory_usage(self.gateway.keys.family(sid.split(".")[0]), samples=0)
                for sid in sample
            )
            index_key = self.gateway.keys.user_families(self.pool[0][0])
            index_members = self.monitor.zcard(index_key)
            index_bytes = self.monitor.memory_usage(index_key, samples=0) / max(index_members, 1)
            ids = random.sample(loaded, min(len(loaded), 20000))
            data = write_lines(self.workdir / f"scale-{size}.txt", ids)
            store_check = self.time_store_checks(ids)
            redis_before = snapshot(self.monitor)
            result, cpu, attempts = self.quietest_listtypes(data, self.args.scale_duration)
            redis_during = redis_cost(redis_before, snapshot(self.monitor), result.requests)
            end_all = self.time_end_all(f"{size}")
            entry = {
                "sessions": size,
                "load_seconds": round(elapsed, 2),
                "load_per_s": round(add / elapsed),
                "bytes_per_session_used_memory": round(bytes_per, 1),
                "family_key_bytes_memory_usage": round(family_bytes, 1),
                "user_index_bytes_per_entry": round(index_bytes, 1),
                "user_index_entries": index_members,
                "user_index_encoding": self.monitor.object("encoding", index_key),
                "used_memory_mb": round(after.used_memory / 2**20, 1),
                "listtypes": {
                    "requests_per_s": round(result.rps, 1),
                    "p50_ms": round(result.latency_us["p50"] / 1000, 3),
                    "p99_ms": round(result.latency_us["p99"] / 1000, 3),
                    "failures": result.failures,
                    "failure_codes": result.codes,
                    "sample_sessions": len(ids),
                    "cpu": cpu,
                    "runs_tried": attempts,
                    "touch_script_usec_per_call": redis_during["usec_per_call"].get("evalsha"),
                },
                "store_check_us": store_check,
                "end_all_1000": end_all,
            }
            self.report["scale"].append(entry)
            say(
                f"scale {size}: {bytes_per:.0f} B/session (used_memory delta), family key "
                f"{family_bytes:.0f} B, listtypes {result.rps:.0f} req/s p50 "
                f"{entry['listtypes']['p50_ms']:.2f} ms p99 {entry['listtypes']['p99_ms']:.2f} ms, "
                f"end-all(1000) {end_all['ms_median']:.1f} ms"
            )

    def quietest_listtypes(self, data: Path, seconds: float) -> tuple[WrkResult, dict, int]:
        """A listtypes run; with --quiet-below P, up to three, keeping the one during which other
        processes took the least CPU (stopping at one under P%)."""
        groups = {"app": self.gateway_proc.process.pid}
        singles = {"redis": self.redis_server.process.pid}
        tries = 3 if self.args.quiet_below else 1
        best: tuple[WrkResult, dict, int] | None = None
        for attempt in range(1, tries + 1):
            self.wait_for_quiet()
            before = cpu_sample(groups, singles)
            result = self.wrk("listtypes", duration=seconds, data=data)
            cpu = cpu_cost(before, cpu_sample(groups, singles), result.requests)
            if best is None or cpu["other_processes_pct"] < best[1]["other_processes_pct"]:
                best = (result, cpu, attempt)
            if cpu["other_processes_pct"] < (self.args.quiet_below or 101):
                break
            say(f"other processes took {cpu['other_processes_pct']:.0f}% of the CPUs: again")
        assert best is not None
        return best[0], best[1], attempt

    def time_store_checks(self, ids: list[str], count: int = 3000) -> dict[str, float]:
        """SessionStore.validate (the authenticated operation's one round trip) timed in this
        process, one call at a time on random live sessions: the store's own latency, without
        HTTP and the workers."""
        sessions = self.gateway.sessions
        timings = []
        for session_id in random.choices(ids, k=count):
            started = time.perf_counter_ns()
            live = sessions.validate(session_id)
            timings.append((time.perf_counter_ns() - started) / 1000)
            if live is None:
                raise RuntimeError("a loaded session was not live")
        timings.sort()
        return {
            "calls": count,
            "p50": round(timings[count // 2], 1),
            "p99": round(timings[int(count * 0.99)], 1),
            "mean": round(statistics.mean(timings), 1),
        }

    # ----------------------------------------------------------------------------- profile
    def run_profile(self) -> None:
        """Samples the gateway's workers with py-spy during listtypes runs, twice: every sample
        of a running thread (syscalls and time waiting for a CPU included), then only samples
        holding the GIL (Python code running)."""
        seconds = self.args.profile
        venv_bin = str(Path(sys.executable).parent)
        py_spy = shutil.which("py-spy", path=venv_bin) or shutil.which("py-spy")
        if py_spy is None:
            say("installing py-spy into .venv for --profile")
            pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            subprocess.run([*pip, "py-spy"], check=True)
            py_spy = shutil.which("py-spy", path=venv_bin)
        data = write_lines(
            self.workdir / "profile-sessions.txt",
            sessions_via_login(self.gateway, self.pool, 500),
        )
        profile: dict[str, Any] = {}
        # The gateway both ways, then the reference's workers (GIL samples): side by side.
        runs = (
            ("running", [], self.gateway_proc, "listtypes"),
            ("gil", ["--gil"], self.gateway_proc, "listtypes"),
            ("reference_gil", ["--gil"], self.reference_proc, "reference"),
        )
        for mode, extra, target_proc, workload in runs:
            raw = self.workdir / f"profile-{mode}.txt"
            self.wait_for_quiet()
            say(f"py-spy ({mode} samples) on the {workload} workers for {seconds:g}s")
            spy = self.children.start(
                "py-spy",
                [py_spy, "record", "--pid", str(target_proc.process.pid),
                 "--subprocesses", "--rate", "200", "--duration", str(int(seconds)),
                 "--format", "raw", "--nonblocking", *extra, "--output", str(raw)],
                log=self.workdir / "py-spy.log",
            )  # fmt: skip
            time.sleep(1.0)
            if workload == "reference":
                result = self.wrk(
                    "reference", duration=seconds, url=self.reference_base, path="/reference"
                )
            else:
                result = self.wrk("listtypes", duration=seconds, data=data)
            try:
                spy.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            self.children.stop(spy)
            if not raw.exists() or raw.stat().st_size == 0:
                log = (self.workdir / "py-spy.log").read_text(errors="replace").strip()[-500:]
                say(f"py-spy recorded nothing: {log}")
                profile[mode] = {"error": log}
                continue
            if self.args.profile_out:
                target = Path(os.environ.get("BENCH_CALLER_DIR", ".")) / (
                    f"{self.args.profile_out}.{mode}"
                )
                shutil.copy(raw, target)
                say(f"wrote py-spy's collapsed stacks to {target.name}")
            summary = summarize_profile(raw)
            summary["listtypes_requests_per_s_while_profiled"] = round(result.rps, 1)
            # Each sample stands for 1/200 s of one worker (of Python holding the GIL, with --gil).
            summary["sampled_ms_per_request"] = round(
                summary["samples_in_requests"] * 5.0 / max(result.requests, 1), 3
            )
            summary["command"] = (
                f"py-spy record --subprocesses --rate 200 --nonblocking {' '.join(extra)}".strip()
            )
            profile[mode] = summary
        profile["in_process"] = self.profile_in_process(py_spy, data)
        self.report["profile"] = profile

    def profile_in_process(self, py_spy: str, data: Path) -> dict[str, Any]:
        """py-spy on a process that calls the gateway's WSGI app in a loop: the app's Python
        work alone, sampled at 500 Hz with nothing else in the picture."""
        seconds = self.args.profile
        raw = self.workdir / "profile-in-process.txt"
        log = self.workdir / "wsgi-loop.log"
        session_id = data.read_text().split()[0]
        loop = [sys.executable, str(SCRIPTS / "bench_run.py"), "--wsgi-loop", str(seconds),
                "--wsgi-session", session_id]  # fmt: skip
        env = {**os.environ, "WSGATE_LOG_LEVEL": os.environ.get("WSGATE_LOG_LEVEL", "INFO")}
        self.wait_for_quiet()
        say(f"py-spy on the gateway's WSGI app called in a loop in one process, {seconds:g}s")
        spy = self.children.start(
            "py-spy in-process",
            [py_spy, "record", "--rate", "500", "--format", "raw", "--output", str(raw),
             "--", *loop],
            env=env,
            log=log,
        )  # fmt: skip
        try:
            spy.process.wait(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            pass
        self.children.stop(spy)
        text = log.read_text(errors="replace")
        calls = re.search(r"WSGI_LOOP_CALLS (\d+)", text)
        if not raw.exists() or raw.stat().st_size == 0 or not calls:
            return {"error": text.strip()[-500:]}
        if self.args.profile_out:
            target = Path(os.environ.get("BENCH_CALLER_DIR", ".")) / (
                f"{self.args.profile_out}.in_process"
            )
            shutil.copy(raw, target)
        summary = summarize_profile(raw, request_frame="Flask.__call__ ")
        summary["listtypes_requests_per_s_while_profiled"] = round(int(calls.group(1)) / seconds, 1)
        summary["command"] = "py-spy record --rate 500 -- python bench_run.py --wsgi-loop"
        return summary

    # ----------------------------------------------------------------------------- all
    def run(self) -> None:
        args = self.args
        self.report["settings"] = {
            "duration_s": args.duration,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "wrk_threads_login": self.login_threads,
            "warmup_s": args.warmup,
            "ab_rounds": args.ab_rounds,
            "ab_rounds_each": args.ab_rounds_each,
            "ab_seconds": args.ab_seconds,
            "gunicorn_workers": self.worker_count(),
            "cpus": os.cpu_count(),
            "listtypes_sessions": args.sessions,
            "web_logins": args.web_logins,
            "users_in_pool": args.users,
            "challenge_rate_limit": args.challenge_rate or "config default",
            "access_log": args.access_log
            or os.environ.get("WSGATE_ACCESS_LOG")
            or "config/gunicorn.conf.py's default",
        }
        self.report["machine"] = machine_facts(self.monitor)
        self.report["source"] = source_state()
        self.report["machine"]["loadavg_at_start"] = os.getloadavg()
        self.run_workloads()
        if args.round_trips:
            say("counting round trips client-side, in-process (Flask test client)")
            web_user = ("bench-web", self.web_password)
            users = [(u.id, u.username, u.access_key) for u in self.api_users]
            self.report["client_side_round_trips"] = client_side_round_trips(
                self.redis_url, users, web_user, self.secret_key
            )
        if args.wsgi_cost:
            say("CPU per request of both WSGI apps called in-process")
            rounds, requests = 5, 1000
            to_log_out = bulk_load(self.loader, self.gateway, self.pool, rounds * requests + 2)
            to_log_out[-1] = sessions_via_login(self.gateway, self.pool, 1)[0]
            api_user = self.api_users[0]
            self.report["wsgi_in_process"] = wsgi_cpu_per_request(
                self.redis_url,
                self.secret_key,
                (api_user.username, api_user.access_key),
                ("bench-web", self.web_password),
                to_log_out,
                dead_session_ids(1)[0],
                rounds=rounds,
                requests=requests,
                challenge_rate=args.challenge_rate,
            )
        if args.end_all:
            say("timing SessionStore.end_all_for_user on users with 1,000 sessions")
            self.report["end_all_1000"] = self.time_end_all("base")
        if args.scale:
            self.run_scale()
        if args.profile:
            self.run_profile()
        self.report["machine"]["loadavg_at_end"] = os.getloadavg()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Benchmark wsgate under gunicorn against a bare Flask+Redis reference app.",
    )
    parser.add_argument("--duration", type=float, default=10, help="seconds per workload (10)")
    parser.add_argument("--connections", "-c", type=int, default=8, help="wrk connections (8)")
    parser.add_argument("--threads", "-t", type=int, default=1, help="wrk threads (1)")
    parser.add_argument(
        "--warmup", type=float, default=2, help="unmeasured seconds per app first (2)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="gunicorn workers per app (default: the config's, 2 per CPU)",
    )
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)}, or none",
    )
    parser.add_argument(
        "--sessions",
        type=int,
        default=2000,
        help="live sessions the listtypes workload spreads over (2000)",
    )
    parser.add_argument(
        "--web-logins",
        type=int,
        default=16,
        help="web UI logins the extendsession workload spreads over (16)",
    )
    parser.add_argument(
        "--users", type=int, default=1000, help="users the pre-made sessions are spread over (1000)"
    )
    parser.add_argument(
        "--challenge-rate",
        type=int,
        default=1000000,
        metavar="N",
        help="CHALLENGE_RATE_LIMIT and _BURST for the gateway: wrk sends everything from one "
        "address, and the default per-address limit (50/s) would cap the login workload; the "
        "limiter still runs (1000000; 0: the config's)",
    )
    parser.add_argument(
        "--scale",
        nargs="?",
        const=DEFAULT_SCALE,
        default="",
        help=f"also load Redis to these session counts (default {DEFAULT_SCALE})",
    )
    parser.add_argument(
        "--scale-duration",
        type=float,
        default=8,
        help="seconds of listtypes at each scale size (8)",
    )
    parser.add_argument(
        "--profile",
        type=float,
        nargs="?",
        const=15,
        default=0,
        help="profile the gateway's workers, then the reference's, with py-spy for SECONDS (15)",
    )
    parser.add_argument(
        "--ab-rounds",
        type=int,
        default=10,
        metavar="N",
        help="also compare listtypes with the reference in N interleaved rounds "
        "(ABBA order), so that both see the same machine load; a round's ratio moves with how "
        "wrk's connections fall on the workers, 0.7-1.6 (10; 0: off)",
    )
    parser.add_argument(
        "--ab-rounds-each",
        type=int,
        default=4,
        metavar="N",
        help="interleaved rounds with the reference for each other workload (login, "
        "extendsession, logout, dead), as for listtypes (4; 0: off)",
    )
    parser.add_argument(
        "--ab-seconds",
        type=float,
        default=2,
        metavar="SECONDS",
        help="length of each run of --ab-rounds (2)",
    )
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=0,
        metavar="PCT",
        help="on a shared machine: before each measured run, wait until the "
        "CPUs are less than PCT%% busy (off)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60,
        metavar="SECONDS",
        help="the longest wait of --quiet-below, per run (60)",
    )
    parser.add_argument(
        "--profile-out",
        metavar="FILE",
        help="keep py-spy's collapsed stacks (flamegraph.pl input) in FILE",
    )
    parser.add_argument(
        "--no-round-trips",
        dest="round_trips",
        action="store_false",
        help="skip the in-process client-side round-trip count",
    )
    parser.add_argument(
        "--no-wsgi-cost",
        dest="wsgi_cost",
        action="store_false",
        help="skip the in-process CPU cost of both WSGI apps",
    )
    parser.add_argument(
        "--no-end-all",
        dest="end_all",
        action="store_false",
        help="skip timing end_all_for_user outside --scale",
    )
    parser.add_argument(
        "--access-log",
        default=None,
        help="WSGATE_ACCESS_LOG for both apps (default: whatever config/gunicorn.conf.py does)",
    )
    parser.add_argument("--json", dest="json_file", help="write every figure to this file")
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--wsgi-loop", type=float, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--wsgi-session", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.workloads = (
        []
        if args.workloads.strip() in ("", "none")
        else [w.strip() for w in args.workloads.split(",") if w.strip()]
    )
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(unknown)}")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.wsgi_loop:
        # A child of --profile: py-spy samples this process calling the app in a loop.
        calls = wsgi_loop(
            os.environ["WSGATE_REDIS_URL"],
            os.environ["WSGATE_SECRET_KEY"],
            args.wsgi_session,
            args.wsgi_loop,
        )
        print(f"WSGI_LOOP_CALLS {calls}", flush=True)
        return 0
    if shutil.which("wrk") is None:
        print("bench: error: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 1
    own_workdir = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="wsgate-bench-"))
    children = Children(workdir / "pids")

    def interrupted(signum: int, frame: Any) -> None:
        raise Interrupted(128 + signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupted)

    bench = Bench(args, workdir, children)
    status = 0
    try:
        bench.start()
        bench.run()
        text = render(bench.report)
        print(text, flush=True)
        if args.json_file:
            target = Path(os.environ.get("BENCH_CALLER_DIR", ".")) / args.json_file
            target.write_text(json.dumps(bench.report, indent=2) + "\n")
            say(f"wrote {args.json_file}")
    except Interrupted as stop:
        say("interrupted: stopping everything")
        status = int(stop.code or 130)
    except Exception as error:  # noqa: BLE001 - reported, then everything is stopped
        say(f"error: {error}")
        for log in (getattr(bench, "gateway_log", None), getattr(bench, "reference_log", None)):
            if log and log.exists():
                tail = log.read_bytes()[-1500:].decode(errors="replace")
                errors = [
                    line
                    for line in tail.splitlines()
                    if "GET /" not in line and "POST /" not in line
                ]
                if errors:
                    say(f"last lines of {log.name}:\n" + "\n".join(errors[-15:]))
        status = 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        children.stop_all()
        if bench.redis_server is not None:
            bench.redis_server.stop()
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
