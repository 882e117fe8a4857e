"""Which process owns a call, and whether that process is provably gone.

Several worker processes share one database file, so "the call has no end time" does not mean
"the call is dead": another live worker may be running it. Each call records its owner: the
machine (hostname, boot id and PID namespace, so containers and reboots count as different
machines), the PID, and the process's start time (so a PID reused by a new process is told
apart). A call is stale only when its owner ran on this machine and that exact process no
longer exists. Owners on other machines cannot be checked from here; their calls are stale
only once nothing has happened on them for a long lease (see ``db.stale``).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_HAS_PROC = Path("/proc/self/stat").exists()


@dataclass(frozen=True)
class Owner:
    """A process, identified well enough to tell whether it is still the same one."""

    host: str
    pid: int
    started: str | None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host.split('/', 1)[0]}"


@cache
def machine_id() -> str:
    """This machine as seen by PIDs: hostname, plus boot id and PID namespace where Linux has them."""
    parts = [socket.gethostname()]
    parts.append(_read("/proc/sys/kernel/random/boot_id") or "")
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        parts.append("")
    return "/".join(parts)


def process_start(pid: int) -> str | None:
    """A marker of when process ``pid`` started that never changes while it runs; None if it is gone."""
    if _HAS_PROC:
        stat = _read(f"/proc/{pid}/stat")
        if stat is None:
            return None
        # After the command name (which may hold spaces): state, then field 22, starttime in ticks.
        fields = stat.rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else fields[19]
    return None  # no /proc: the owner cannot be checked, and the lease decides


def current_owner() -> Owner:
    """This process (read once per process: every write of a call is stamped with it)."""
    return _owner(os.getpid())


@cache
def _owner(pid: int) -> Owner:
    return Owner(host=machine_id(), pid=pid, started=process_start(pid))


def is_dead(owner: Owner) -> bool:
    """True only when the owner is provably gone: same machine, and that PID is not that process."""
    if owner.host != machine_id():
        return False
    started = process_start(owner.pid)
    if started is None:
        # With /proc, None means no such process (or a zombie); without it, ask the kernel.
        return _HAS_PROC or _pid_missing(owner.pid)
    return owner.started is not None and started != owner.started


def _pid_missing(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists, owned by someone else
    return False


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None
