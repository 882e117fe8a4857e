"""`memory-agent inspect` as a real process on loopback, and a client logged in with its printed link."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

_LOGIN = re.compile(r"(http://\S+/-/auth-token\?token=\w+)")
START_TIMEOUT_S = 60.0


@dataclass
class Served:
    process: subprocess.Popen[str]
    base: str
    login: str
    port: int
    stderr: list[str]

    @contextmanager
    def client(self, *, logged_in: bool = True) -> Iterator[httpx.Client]:
        """An HTTP client; logged in, it has opened the login link first, as the owner would."""
        with httpx.Client(base_url=self.base, timeout=30) as client:
            if logged_in:
                response = client.get(self.login)
                assert response.status_code == 302, response.text[:300]
                assert "ds_actor" in client.cookies
            yield client


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@contextmanager
def serve(db: Path, tmp: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """Start `memory-agent inspect` and wait for its login link; stop it (SIGTERM) on the way out."""
    port = free_port()
    command = [sys.executable, "-m", "memory_agent", "inspect", "--db", str(db), "--port", str(port), *args]
    environment = {**os.environ, "TMPDIR": str(tmp), **(env or {})}
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment
    )
    assert process.stderr is not None
    lines: list[str] = []
    login = None
    deadline = time.monotonic() + START_TIMEOUT_S
    while login is None and time.monotonic() < deadline and process.poll() is None:
        ready, _, _ = select.select([process.stderr], [], [], 1.0)
        if ready:
            line = process.stderr.readline()
            lines.append(line)
            if match := _LOGIN.search(line):
                login = match.group(1)
    if login is None:
        process.kill()
        raise AssertionError(f"inspect did not print a login link: {''.join(lines)}")
    base = f"http://127.0.0.1:{port}"
    _wait_until_listening(port, deadline)
    try:
        yield Served(process, base, login, port, lines)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        process.stderr.close()


def _wait_until_listening(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")
