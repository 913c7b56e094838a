"""Who holds a TCP port: the pid and command line of the process listening on it.

``tradeloop up`` and ``tradeloop broker`` ask before starting the embedded broker, so a second
``up`` says which process (often the first ``up``'s broker) holds the port instead of failing
vaguely. On Linux the answer comes from ``/proc/net/tcp{,6}`` (the listening socket's inode) and
``/proc/<pid>/fd`` (who has that socket open), else from ``ss -ltnp``; a process of another user
may not be inspectable, and then the answer says so.

Example:
    >>> line = "   0: 0100007F:4AA4 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0  0 81234 1"
    >>> listening_inodes([line], 19108)
    [81234]
    >>> parse_ss('LISTEN 0 128 127.0.0.1:19108 0.0.0.0:* users:(("tansu",pid=4242,fd=9))')
    [4242]
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PortHolder", "describe_holder", "listening_inodes", "parse_ss", "port_free", "port_holder"]

_LISTEN = "0A"
_SS_PID = re.compile(r"pid=(\d+)")


@dataclass(frozen=True, slots=True)
class PortHolder:
    """A process that listens on the port (``command`` is empty when it cannot be read)."""

    pid: int
    command: str
    parent_pid: int | None = None
    parent_command: str = ""


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` (connections of a stopped listener that linger in
    TIME_WAIT do not count: a server binds over them, as Tansu does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def listening_inodes(lines: Iterable[str], port: int) -> list[int]:
    """Socket inodes in ``/proc/net/tcp``-format ``lines`` that listen on ``port`` (any address)."""
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or ":" not in fields[1] or fields[3] != _LISTEN:
            continue
        with contextlib.suppress(ValueError):
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.append(int(fields[9]))
    return found


def parse_ss(output: str) -> list[int]:
    """The pids ``ss -ltnp`` names in its ``users:((...))`` column."""
    return [int(pid) for pid in _SS_PID.findall(output)]


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    text = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return " ".join(text.split())[:300]  # one line


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the command may contain spaces and parentheses


def _pids_with_socket(inodes: set[int]) -> list[int]:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except OSError:  # gone meanwhile, or another user's process
            continue
        if links & wanted:
            pids.append(int(entry.name))
    return pids


def _from_proc(port: int) -> list[int]:
    inodes: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            inodes.update(listening_inodes(Path(table).read_text().splitlines()[1:], port))
    return _pids_with_socket(inodes) if inodes else []


def _from_ss(port: int) -> list[int]:
    ss = shutil.which("ss")
    if ss is None:
        return []
    try:
        done = subprocess.run([ss, "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_ss(done.stdout)


def port_holder(port: int) -> PortHolder | None:
    """The process listening on TCP ``port``, or None when it cannot be found out."""
    pids = _from_proc(port) or _from_ss(port)
    if not pids:
        return None
    pid = min(pids)  # forked workers share the socket; the oldest is the one that opened it
    parent = _parent(pid)
    return PortHolder(pid, _command(pid), parent, _command(parent) if parent else "")


def describe_holder(port: int) -> str:
    """One phrase for an error message: ``held by pid 42 (tansu broker ...), started by pid 41 (...)``."""
    holder = port_holder(port)
    if holder is None:
        return "held by a process this user cannot inspect"
    text = f"held by pid {holder.pid} ({holder.command or 'command line not readable'})"
    if holder.parent_pid and holder.parent_pid > 1 and holder.parent_command:
        text += f", started by pid {holder.parent_pid} ({holder.parent_command})"
    return text
