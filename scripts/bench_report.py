"""The report of scripts/bench: the tables it prints, and the summary of a py-spy profile.
See scripts/bench_run.py."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

WORKLOADS = ("reference", "login", "listtypes", "extendsession", "logout", "dead")
#: Not a workload of the gateway: the reference app reading Redis twice, interleaved with the
#: reference as the workloads are (the least two round trips cost).
FLOOR = "two_round_trips"
LABELS = {
    "reference": "(a) reference GET",
    "login": "(b) getchallenge+login",
    "listtypes": "(c) listtypes (auth op)",
    "extendsession": "(d) extendsession (cookie)",
    "logout": "(e) logout",
    "dead": "(f) dead session",
}


# --- profile ------------------------------------------------------------------------------------


#: Third-party packages, named as py-spy shortens their paths (``flask/app.py``).
_PACKAGES = (
    "gunicorn",
    "flask",
    "werkzeug",
    "redis",
    "flask_session",
    "flask_wtf",
    "wtforms",
    "marshmallow",
    "itsdangerous",
    "jinja2",
    "markupsafe",
    "argon2",
    "click",
    "blinker",
    "msgspec",
    "cachelib",
)
_OWN_CODE = ("webservice/", "operations/")
#: Leaf frames that are a socket system call (the Python line that makes it).
_SOCKET_CALLS = {
    "redis/connection.py:AbstractConnection.send_packed_command",
    "redis/_parsers/socket.py:SocketBuffer._read_from_socket",
    "gunicorn/util.py:write",
    "gunicorn/util.py:close_graceful",
    "gunicorn/util.py:close",
    "gunicorn/http/unreader.py:SocketUnreader.chunk",
    "socket.py:socket._real_close",
    "socket.py:socket.accept",
}
#: The gunicorn frame that spans one connection's requests: reading them, the WSGI app, writing
#: the answers (gevent workers, the config's; py-spy sees each greenlet as the worker's thread).
_REQUEST_FRAME = "GeventWorker.handle "


def summarize_profile(
    raw_file: Path, top: int = 15, request_frame: str = _REQUEST_FRAME
) -> dict[str, Any]:
    """Reads py-spy's collapsed stacks (``--format raw``) and answers the shares of the CPU samples
    taken while a worker handled a request: by component and by function, self (the leaf frame)
    and inclusive (anywhere below gunicorn's per-request frame)."""
    inclusive: Counter = Counter()
    own: Counter = Counter()
    by_area: Counter = Counter()
    total = outside = at_socket = 0
    for line in raw_file.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame for frame in stack.split(";") if frame and not frame.startswith("process ")]
        start = next((i for i, f in enumerate(frames) if f.startswith(request_frame)), None)
        if start is None:
            outside += count  # waiting for a connection, booting, or the master process
            continue
        total += count
        names = [_frame_name(frame) for frame in frames[start:]]
        for name in set(names):
            inclusive[name] += count
        own[names[-1]] += count
        by_area[_area(frames[-1])] += count
        if names[-1] in _SOCKET_CALLS:
            at_socket += count

    def share(counter: Counter, limit: int = top) -> list[tuple[str, float]]:
        if not total:
            return []
        return [(name, round(100.0 * n / total, 1)) for name, n in counter.most_common(limit)]

    return {
        "samples_in_requests": total,
        "samples_outside_requests": outside,
        "socket_call_pct": round(100.0 * at_socket / total, 1) if total else 0.0,
        "self_by_area": share(by_area, 20),
        "self_top": share(own),
        "inclusive_top": share(inclusive, top + 10),
        "wsgate_inclusive": share(
            Counter({n: c for n, c in inclusive.items() if n.startswith(_OWN_CODE)}), top
        ),
    }


def _split_frame(frame: str) -> tuple[str, str]:
    """``Class.function (package/module.py:123)`` -> (function, path)."""
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    return (match.group(1), match.group(2)) if match else (frame, "")


def _frame_name(frame: str) -> str:
    function, path = _split_frame(frame)
    return f"{path}:{function}" if path else function


def _area(frame: str) -> str:
    """Which component a leaf frame belongs to."""
    path = _split_frame(frame)[1]
    top = path.split("/")[0]
    if top in ("webservice", "operations"):
        return "wsgate (webservice/, operations/)"
    if top in _PACKAGES:
        return top
    return "python stdlib"


# --- the report ---------------------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    out: list[str] = []
    settings = report["settings"]
    out.append(
        f"wsgate benchmark: wrk -t{settings['wrk_threads']} -c{settings['connections']} "
        f"-d{settings['duration_s']:g}s per workload; {settings['gunicorn_workers']} gunicorn "
        f"workers per app (config/gunicorn.conf.py's class); {settings['cpus']} CPUs shared by "
        "wrk, both apps and Redis"
    )
    if settings.get("challenge_rate_limit", "config default") != "config default":
        out.append(
            f"getchallenge limit per address raised to {settings['challenge_rate_limit']}/s "
            "(WSGATE_CHALLENGE_RATE_LIMIT/_BURST): all of wrk's requests come from one address; "
            "the limiter still runs on every getchallenge"
        )
    source = report.get("source")
    if source:
        changed = source["changed_files"]
        out.append(
            f"source: commit {source['commit']}"
            + (f" plus uncommitted changes to {', '.join(changed)}" if changed else "")
        )
    machine = report.get("machine", {})
    if machine:
        load = machine.get("loadavg_at_start", (0, 0, 0))
        out.append(
            f"{machine['cpu_model']}; Python {machine['python']}, Redis "
            f"{machine['redis_server']}, gunicorn {machine['versions']['gunicorn']}, "
            f"Flask {machine['versions']['flask']}, redis-py {machine['versions']['redis']}; "
            f"load average at start {load[0]:.1f}"
        )
    workloads = report["workloads"]
    if workloads:
        header = (
            f"{'workload':<28}{'req/s':>8}{'ok/s':>8}{'p50 ms':>8}{'p99 ms':>8}"
            f"{'fail':>6}{'x ref':>7}{'cmd/req':>8}{'rt/req':>7}{'cpu ms':>8}"
            f"{'cpu x':>7}{'other%':>7}"
        )
        out += ["", header, "-" * len(header)]
        reference_cpu = workloads.get("reference", {}).get("cpu", {}).get("ms_per_request", {})
        for name in WORKLOADS:
            entry = workloads.get(name)
            if not entry:
                continue
            ratio = entry.get("ratio_to_reference")
            cpu = entry["cpu"]
            app_ms = cpu["ms_per_request"]["app"]
            cpu_ratio = reference_cpu.get("app", 0) / app_ms if app_ms and reference_cpu else 0
            out.append(
                f"{LABELS[name]:<28}{entry['requests_per_s']:>8.0f}{entry['ok_per_s']:>8.0f}"
                f"{entry['latency_ms']['p50']:>8.2f}{entry['latency_ms']['p99']:>8.2f}"
                f"{entry['failures']:>6}{(f'{ratio:.2f}' if ratio else '-'):>7}"
                f"{entry['redis']['commands_per_request']:>8.2f}"
                f"{entry['redis']['round_trips_per_request']:>7.2f}"
                f"{app_ms:>8.2f}{(f'{cpu_ratio:.2f}' if cpu_ratio else '-'):>7}"
                f"{cpu['other_processes_pct']:>7.0f}"
            )
        out.append("")
        out.append("x ref: req/s over row (a)'s.")
        out.append(
            "cmd/req: Redis commands executed per HTTP request (INFO commandstats delta, "
            "Lua-internal calls included); rt/req: requests Redis read per HTTP request "
            "(total_reads_processed delta) = round trips; cpu ms: CPU time of the app's "
            "gunicorn (master + workers) per request; cpu x: the reference's cpu ms / "
            "this one's (the CPU-time version of x ref; other load inflates it less than "
            "req/s, but it does); "
            "other%: share of the machine's CPU that processes outside this benchmark "
            "used during the run."
        )
        for name in WORKLOADS:
            entry = workloads.get(name)
            if not entry:
                continue
            by_command = entry["redis"]["by_command_per_request"]
            parts = ", ".join(f"{cmd} {n:g}" for cmd, n in by_command.items() if n >= 0.01)
            rare = [cmd for cmd, n in by_command.items() if n < 0.01]
            if rare:
                parts += f" (and now and then: {', '.join(rare)})"
            extra = ""
            if name == "login":
                extra = (
                    f"; {entry['login_ok']} logins + {entry['getchallenge_ok']} getchallenges"
                    f" ({entry['logins_per_s']:.0f} logins/s); per getchallenge+login pair: "
                    f"{entry['redis']['commands_per_login_pair']:.2f} commands, "
                    f"{entry['redis']['round_trips_per_login_pair']:.2f} round trips"
                )
            if name == "logout":
                extra = (
                    f"; {entry['sessions_logged_out']} of {entry['sessions_prepared']} "
                    f"prepared sessions logged out"
                    + (" (ran out: the run stopped early)" if entry["ran_out_of_sessions"] else "")
                )
            codes = (
                f"; failures by code: {entry['failure_codes']}" if entry["failure_codes"] else ""
            )
            boots = entry["worker_boots_during_run"]
            recycled = f"; {boots} worker (re)boots during the run" if boots else ""
            split = entry["cpu"]["ms_per_request"]
            cpu_text = (
                f"; CPU ms/req: app {split['app']:.2f} (kernel {split['app_sys']:.2f}), "
                f"redis {split['redis']:.3f}, wrk {split['wrk']:.3f}"
            )
            out.append(f"  {name}: {parts}{extra}{codes}{recycled}{cpu_text}")
    interleaved = [
        (name, report[f"ab_{name}_vs_reference"])
        for name in (*WORKLOADS, FLOOR)
        if f"ab_{name}_vs_reference" in report
    ]
    if interleaved:
        out.append("")
        out.append("Interleaved with the reference (ABBA rounds, both apps under the same load):")
    for name, ab in interleaved:
        mine, reference = ab[name], ab["reference"]
        # (Reports written before the machine's CPU was measured in these rounds have no such figure.)
        machine = (
            f"; app+Redis+wrk CPU {mine['machine_cpu_ms_per_request']:.3f} vs "
            f"{reference['machine_cpu_ms_per_request']:.3f} ms/req = {ab['machine_cpu_ratio']:.2f}x"
            f" (CPUs busy {mine['machine_busy_pct']:.0f}% vs {reference['machine_busy_pct']:.0f}%)"
            if "machine_cpu_ratio" in ab
            else ""
        )
        if name == FLOOR:
            out.append(
                "  two_round_trips is the reference reading Redis once more (as the gateway "
                "sends a command): the floor of login and logout"
            )
        out.append(
            f"  {name}: {ab['rounds']} rounds x 2 runs of {ab['seconds_each']:g}s: "
            f"{mine['requests_per_s']:.0f} vs {reference['requests_per_s']:.0f} req/s = "
            f"{ab['ratio']:.2f}x (per round {min(ab['ratio_per_round']):.2f}-"
            f"{max(ab['ratio_per_round']):.2f}); app CPU {mine['app_cpu_ms_per_request']:.3f} vs "
            f"{reference['app_cpu_ms_per_request']:.3f} ms/req = {ab['cpu_ratio']:.2f}x{machine}; p50 "
            f"{mine['p50_ms_median']:.2f} vs {reference['p50_ms_median']:.2f} ms, p99 "
            f"{mine['p99_ms_median']:.2f} vs {reference['p99_ms_median']:.2f} ms; failures "
            f"{mine['failures']}/{reference['failures']}"
        )
    wsgi = report.get("wsgi_in_process")
    if wsgi:
        cpu, wall = wsgi["cpu_us"], wsgi["wall_us"]
        out.append("")
        out.append(
            f"In-process WSGI calls (no gunicorn, no HTTP socket, real Redis; median of "
            f"{wsgi['rounds']} interleaved rounds of {wsgi['requests_per_round']}), per request:"
        )
        out.append(f"  {'workload':<28} {'CPU us':>7} {'x ref':>6} {'wall us':>8}")
        for name in WORKLOADS:
            if name in cpu:
                out.append(
                    f"  {LABELS[name]:<28} {cpu[name]:>7.0f} "
                    f"{cpu['reference'] / cpu[name]:>6.2f} {wall[name]:>8.0f}"
                )
    client_side = report.get("client_side_round_trips")
    if client_side:
        out.append("")
        out.append("Client-side count (in-process, redis-py sends; one request each):")
        for name, figures in client_side.items():
            out.append(
                f"  {name:<14} {figures['round_trips']:.2f} round trips, "
                f"{figures['commands_sent']:.2f} commands sent"
            )
    end_all = report.get("end_all_1000")
    if end_all:
        out.append("")
        out.append(
            f"SessionStore.end_all_for_user, user with {end_all['sessions']} sessions: "
            f"median {end_all['ms_median']:.1f} ms, max {end_all['ms_max']:.1f} ms "
            f"over {end_all['repeats']} users"
        )
    scale = report.get("scale")
    if scale:
        out.append("")
        out.append(
            f"Scale (sessions bulk-loaded with the gateway's OPEN script, spread over "
            f"{settings['users_in_pool']} users; "
            f"{report.get('scale_preexisting_families', 0)} families there before):"
        )
        header = (
            f"{'sessions':>10}{'B/sess':>8}{'fam key B':>10}{'idx B/ent':>10}"
            f"{'load/s':>8}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'fail':>6}{'cpu ms':>8}"
            f"{'redis us':>9}{'lua us':>7}{'other%':>7}{'check us':>12}{'end-all ms':>12}"
        )
        out += [header, "-" * len(header)]
        for entry in scale:
            lt = entry["listtypes"]
            cpu = lt["cpu"]
            end_all = entry["end_all_1000"]
            check = entry["store_check_us"]
            out.append(
                f"{entry['sessions']:>10}{entry['bytes_per_session_used_memory']:>8.0f}"
                f"{entry['family_key_bytes_memory_usage']:>10.0f}"
                f"{entry['user_index_bytes_per_entry']:>10.0f}{entry['load_per_s']:>8}"
                f"{lt['requests_per_s']:>8.0f}{lt['p50_ms']:>8.2f}{lt['p99_ms']:>8.2f}"
                f"{lt['failures']:>6}{cpu['ms_per_request']['app']:>8.2f}"
                f"{1000 * cpu['ms_per_request']['redis']:>9.0f}"
                f"{lt.get('touch_script_usec_per_call') or 0:>7.1f}"
                f"{cpu['other_processes_pct']:>7.0f}"
                f"{check['p50']:>7.0f}/{check['p99']:<4.0f}"
                f"{end_all['ms_median']:>7.1f}/{end_all['ms_max']:<4.0f}"
            )
        out.append(
            "user family index of a pool user after each step: "
            + ", ".join(
                f"{e['user_index_entries']} entries ({e['user_index_encoding']})" for e in scale
            )
        )
        out.append(
            "B/sess: INFO used_memory delta / sessions added; fam key B: MEMORY USAGE of a "
            "family hash; idx B/ent: the user's family index (zset) per entry; req/s to "
            "other%: listtypes over a random sample of all loaded sessions; redis us: Redis "
            "CPU per request (all of it: network, parsing, the script); lua us: Redis's own "
            "time per call of the session check script (INFO commandstats, across all runs "
            "tried); check us: SessionStore.validate timed in-process, one call at "
            "a time on random loaded sessions (the store's latency without HTTP), p50/p99; "
            "end-all ms: SessionStore.end_all_for_user of a user with 1,000 sessions, "
            "median/max of 5."
        )
    profile = report.get("profile")
    if profile:
        titles = {
            "running": "every sample of a running worker thread (socket syscalls and waits for "
            "a CPU show up at the line that made the call)",
            "gil": "only samples holding the GIL: Python code running",
            "reference_gil": "the REFERENCE app's workers, only samples holding the GIL (the "
            "same gunicorn settings; compare with the line above)",
            "in_process": "the WSGI app called in a loop in one process (no gunicorn, no HTTP "
            "socket; Flask.__call__ is 100%), every sample of the running thread",
        }
        for mode, summary in profile.items():
            out.append("")
            if "error" in summary:
                out.append(f"Profile ({mode}) failed: {summary['error']}")
                continue
            what = "the reference" if mode == "reference_gil" else "listtypes"
            out.append(
                f"Profile of {what}, {titles.get(mode, mode)}: {summary['command']}; "
                f"{summary['samples_in_requests']} samples inside the per-request frame, "
                f"{summary['listtypes_requests_per_s_while_profiled']:.0f} req/s while profiled"
                + (
                    f", {summary['sampled_ms_per_request']:.3f} sampled ms per request"
                    if "sampled_ms_per_request" in summary
                    else ""
                )
            )
            out.append(f"  at socket calls (send/recv/close): {summary['socket_call_pct']:.1f}%")
            out.append("  self time by component:")
            out += [f"    {pct:5.1f}%  {name}" for name, pct in summary["self_by_area"]]
            out.append("  self time (leaf function):")
            out += [f"    {pct:5.1f}%  {name}" for name, pct in summary["self_top"]]
            out.append("  inclusive (on the stack):")
            out += [f"    {pct:5.1f}%  {name}" for name, pct in summary["inclusive_top"]]
            out.append("  inclusive, the gateway's own functions:")
            out += [f"    {pct:5.1f}%  {name}" for name, pct in summary["wsgate_inclusive"]]
    return "\n".join(out)
