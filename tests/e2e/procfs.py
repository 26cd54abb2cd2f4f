"""What /proc says about gunicorn's processes (Linux): a master's workers, and the TCP sockets a
process holds to a given port."""

from __future__ import annotations

import os
from pathlib import Path


def children(pid: int) -> set[int]:
    """The live child processes of ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets among ``pid``'s open files."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def tcp_connections_to(port: int) -> dict[int, int]:
    """{socket inode: local port} of every established TCP connection to 127.0.0.1:``port``."""
    connections = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote, state, inode = parts[1], parts[2], parts[3], int(parts[9])
            if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port and inode:
                connections[inode] = int(local.rsplit(":", 1)[1], 16)
    return connections


def redis_sockets(pid: int, redis_port: int) -> dict[int, int]:
    """{socket inode: local port} of ``pid``'s connections to the Redis on ``redis_port``."""
    held = socket_inodes(pid)
    return {inode: lport for inode, lport in tcp_connections_to(redis_port).items() if inode in held}
