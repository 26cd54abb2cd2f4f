"""Measuring tools of scripts/bench: the processes it starts, wrk runs, Redis INFO deltas and
CPU accounting. See scripts/bench_run.py."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "scripts" / "bench_wrk.lua"


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- processes ----------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log: Path | None


class Children:
    """Processes this driver started, each in its own process group; stopped newest first.

    A process group, not a session: on Linux with ``kernel.sched_autogroup_enabled`` (the
    default) every session is a scheduling group of its own, and the scheduler shares the CPUs
    fairly between groups before it shares them between processes. With a session each, wrk, the
    app's gunicorn and Redis competed as three equals on a busy machine, which no deployment does,
    and it distorted the latency tail: the gateway's p99 in the interleaved runs was 15-40 ms
    against the reference's 5-8 ms, and 4-12 ms against 3-7 ms with every process in one session
    (the same runs, side by side)."""

    def __init__(self, pid_file: Path) -> None:
        self.pid_file = pid_file
        self.children: list[Child] = []
        self.registered: dict[int, str] = {}

    def start(
        self,
        name: str,
        command: list[str],
        *,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        cwd: Path = ROOT,
    ) -> Child:
        out = open(log, "ab") if log else subprocess.DEVNULL
        try:
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        finally:
            if log:
                out.close()  # type: ignore[union-attr]
        self.register(process.pid, name, group=True)
        child = Child(name, process, log)
        self.children.append(child)
        return child

    def register(self, pid: int, name: str, *, group: bool) -> None:
        self.registered[pid] = f"{pid} {'group' if group else 'single'} {name}"
        self._write()

    def unregister(self, pid: int) -> None:
        if self.registered.pop(pid, None) is not None:
            self._write()

    def _write(self) -> None:
        """The processes that may still run, for scripts/bench to stop if this driver is killed."""
        temporary = self.pid_file.with_suffix(".new")
        temporary.write_text("".join(f"{line}\n" for line in self.registered.values()))
        temporary.replace(self.pid_file)

    def stop(self, child: Child, grace: float = 20.0) -> None:
        process = child.process
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                say(
                    f"{child.name} (pid {process.pid}) did not stop within {grace:.0f}s: killing it"
                )
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()
        else:
            # The leader is gone; its group (gunicorn workers) may not be.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if child in self.children:
            self.children.remove(child)
        self.unregister(process.pid)

    def stop_all(self) -> None:
        for child in reversed(list(self.children)):
            self.stop(child)


# --- Redis monitoring ---------------------------------------------------------------------------


@dataclass
class RedisSnapshot:
    commands: Counter
    usec: Counter
    reads: int
    writes: int
    used_memory: int


def snapshot(monitor: Any) -> RedisSnapshot:
    """One ``INFO everything``: its own read is the only one the monitor adds between two."""
    info = monitor.info("everything")
    stats = {
        name.removeprefix("cmdstat_"): values
        for name, values in info.items()
        if name.startswith("cmdstat_") and name != "cmdstat_info"
    }
    commands = Counter({name: int(values["calls"]) for name, values in stats.items()})
    usec = Counter({name: int(values["usec"]) for name, values in stats.items()})
    return RedisSnapshot(
        commands,
        usec,
        int(info["total_reads_processed"]),
        int(info["total_writes_processed"]),
        int(info["used_memory"]),
    )


def redis_cost(before: RedisSnapshot, after: RedisSnapshot, requests: int) -> dict[str, Any]:
    commands = after.commands - before.commands
    total = sum(commands.values())
    reads = after.reads - before.reads - 1  # the second INFO's own read
    per = max(requests, 1)
    return {
        "commands": total,
        "commands_per_request": total / per,
        "round_trips": reads,
        "round_trips_per_request": reads / per,
        "by_command_per_request": {
            name: round(calls / per, 3) for name, calls in commands.most_common() if calls
        },
        # Redis's own time per call (commandstats usec): a script's includes its commands'.
        "usec_per_call": {
            name: round((after.usec[name] - before.usec[name]) / calls, 2)
            for name, calls in commands.most_common()
            if calls
        },
    }


# --- CPU accounting -----------------------------------------------------------------------------
#
# The machine may be shared: besides requests per second (which other processes' load lowers),
# each workload reports the CPU time its own processes used per request, which that load barely
# changes, and how much of the machine other processes took meanwhile.

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class CpuSample:
    at: float
    busy: int
    total: int
    groups: dict[str, int]


def _machine_jiffies() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def cpu_sample(groups: dict[str, int], singles: dict[str, int]) -> CpuSample:
    """CPU ticks used so far by the processes of each named process group (reaped children
    included) and each named single process."""
    by_group = {pgid: name for name, pgid in groups.items()}
    used = {name: 0 for name in [*groups, *singles]}
    used.update({f"{name}_sys": 0 for name in groups})
    single_names = {pid: name for name, pid in singles.items()}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        pgrp = int(fields[2])
        utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
        pid = int(entry.name)
        if pid in single_names:
            used[single_names[pid]] += utime + stime + cutime + cstime
        elif pgrp in by_group:
            used[by_group[pgrp]] += utime + stime + cutime + cstime
            used[f"{by_group[pgrp]}_sys"] += stime + cstime
    # wrk: a child of this driver, reaped when its run ends (nothing else is reaped meanwhile).
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    used["wrk"] = round((children.ru_utime + children.ru_stime) * CLOCK_TICKS)
    busy, total = _machine_jiffies()
    return CpuSample(time.monotonic(), busy, total, used)


def cpu_cost(before: CpuSample, after: CpuSample, requests: int) -> dict[str, Any]:
    own = {name: after.groups[name] - before.groups.get(name, 0) for name in after.groups}
    busy, total = after.busy - before.busy, max(after.total - before.total, 1)
    foreign = max(busy - sum(v for k, v in own.items() if not k.endswith("_sys")), 0)
    per = max(requests, 1)
    return {
        "machine_busy_pct": round(100 * busy / total, 1),
        "other_processes_pct": round(100 * foreign / total, 1),
        "ms_per_request": {
            name: round(1000 * ticks / CLOCK_TICKS / per, 3) for name, ticks in own.items()
        },
    }


# --- wrk ----------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    workload: str
    requests: int
    duration_s: float
    latency_us: dict[str, float]
    checks: dict[str, int]
    codes: dict[str, int]
    samples: dict[str, str]
    socket_errors: dict[str, int]
    raw: dict[str, Any] = field(repr=False)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def ok_per_s(self) -> float:
        return self.checks.get("ok", 0) / self.duration_s if self.duration_s else 0.0

    @property
    def failures(self) -> int:
        socket = sum(v for k, v in self.socket_errors.items() if k != "status")
        return self.checks.get("fail", 0) + socket


def run_wrk(
    children: Children,
    url: str,
    workload: str,
    *,
    threads: int,
    connections: int,
    duration: float,
    data: Path | None = None,
    path: str | None = None,
    log: Path,
) -> WrkResult:
    command = [
        "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s",
        "--timeout", "5s", "-s", str(LUA), url, "--",
        f"workload={workload}", f"threads={threads}",
    ]  # fmt: skip
    if data is not None:
        command.append(f"file={data}")
    if path is not None:
        command.append(f"path={path}")
    out_path = log.with_suffix(".out")
    out_path.unlink(missing_ok=True)
    child = children.start(f"wrk {workload}", command, log=out_path)
    try:
        status = child.process.wait(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        children.stop(child)
        raise RuntimeError(f"wrk ({workload}) did not finish") from None
    children.stop(child)
    text = out_path.read_text(errors="replace")
    with open(log, "a") as combined:
        combined.write(text)
    match = re.search(r"^BENCH_RESULT (.*)$", text, re.MULTILINE)
    if status != 0 or not match:
        raise RuntimeError(f"wrk ({workload}) failed with status {status}:\n{text[-2000:]}")
    raw = json.loads(match.group(1))
    return WrkResult(
        workload=workload,
        requests=int(raw["requests"]),
        duration_s=raw["duration_us"] / 1e6,
        latency_us=raw["latency_us"],
        checks={k: int(v) for k, v in raw["checks"].items()},
        codes={k: int(v) for k, v in (raw.get("codes") or {}).items()},
        samples=dict(raw.get("samples") or {}),
        socket_errors={k: int(v) for k, v in raw["errors"].items()},
        raw=raw,
    )


def source_state() -> dict[str, Any]:
    """The commit measured, and the files changed since (the working tree is what runs)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""

    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if line[3:]]
    return {"commit": git("rev-parse", "--short", "HEAD"), "changed_files": changed}


def machine_facts(monitor: Any) -> dict[str, Any]:
    from importlib.metadata import version

    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in cpuinfo
                    if line.startswith("model name")
                ),
                "",
            )
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "redis_server": monitor.info("server")["redis_version"],
        "versions": {
            name: version(name)
            for name in ("flask", "werkzeug", "gunicorn", "redis", "flask-session", "marshmallow")
        },
        "wrk": subprocess.run(
            ["wrk", "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        .stdout.split("\n")[0]
        .strip(),
    }
