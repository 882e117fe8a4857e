"""`memory-agent inspect` as a real process: a login, no arbitrary SQL, loopback Host only, a clean stop."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import open_call
from inspect_server import alive, children, free_port, serve

IDENTITY = "+15551234567"


@pytest.fixture
async def known_db(repo, db_path) -> Path:
    await open_call(repo, call_id="c1", identity=IDENTITY, started_at="2026-01-01T00:00:00.000000+00:00")
    return db_path


def test_it_prints_how_to_log_in_and_shows_nothing_before(known_db, tmp_path):
    with serve(known_db, tmp_path) as served:
        with served.client(logged_in=False) as anonymous:
            refused = [anonymous.get(path) for path in ("/", "/memory/customers.json", "/-/dashboards/owner")]
        with served.client() as owner:
            customers = owner.get("/memory/customers.json", params={"_shape": "array"})
            reused = owner.get(served.login)  # the link works once

    assert [r.status_code for r in refused] == [403, 403, 403]
    assert all(IDENTITY not in r.text for r in refused)
    assert [c["participant_identity"] for c in customers.json()] == [IDENTITY]
    assert reused.status_code == 403
    said = "".join(served.stderr)
    assert "Log in by opening this link" in said and "/-/dashboards/owner" in said


def test_arbitrary_sql_is_off_unless_allowed(known_db, tmp_path):
    query = {"sql": "select participant_identity from customers", "_shape": "array"}
    with serve(known_db, tmp_path) as served, served.client() as owner:
        refused = owner.get("/memory.json", params=query)
    with serve(known_db, tmp_path, "--allow-sql") as served, served.client() as owner:
        allowed = owner.get("/memory.json", params=query)

    assert refused.status_code == 403 and IDENTITY not in refused.text
    assert allowed.json() == [{"participant_identity": IDENTITY}]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.2:{port}", "127.0.0.1:1"])
def test_a_foreign_host_is_refused(known_db, tmp_path, host):
    with serve(known_db, tmp_path) as served, served.client() as owner:
        refused = owner.get("/memory/customers.json", headers={"host": host.format(port=served.port)})
        served_name = owner.get("/memory/customers.json", headers={"host": f"localhost:{served.port}"})

    assert refused.status_code == 421 and IDENTITY not in refused.text
    assert served_name.status_code == 200


def test_a_request_without_a_host_is_refused_even_logged_in(known_db, tmp_path):
    with serve(known_db, tmp_path) as served, served.client() as owner:
        cookie = "; ".join(f"{name}={value}" for name, value in owner.cookies.items())
        # HTTP/1.0 may leave Host out (HTTP/1.1 clients always send it), so the request is written by hand.
        with socket.create_connection(("127.0.0.1", served.port), timeout=30) as raw:
            raw.sendall(f"GET /memory/customers.json HTTP/1.0\r\nCookie: {cookie}\r\n\r\n".encode())
            answer = b""
            while chunk := raw.recv(65536):
                answer += chunk
        with_host = owner.get("/memory/customers.json")

    status_line, _, _ = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"421", status_line
    assert IDENTITY.encode() not in answer and b"without a Host" in answer
    assert with_host.status_code == 200 and IDENTITY in with_host.text


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_stops_datasette_too_and_removes_the_temporary_files(known_db, tmp_path, signum):
    temp = tmp_path / "tmp"
    temp.mkdir()
    with serve(known_db, temp) as served:
        [datasette] = children(served.process.pid)
        assert any(temp.iterdir())  # the metadata, while it runs
        served.process.send_signal(signum)
        code = served.process.wait(timeout=30)

    deadline = time.monotonic() + 10
    while alive(datasette) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert code == 0
    assert not alive(datasette)
    assert list(temp.iterdir()) == []


def test_a_port_in_use_is_one_line_and_status_1(known_db, tmp_path):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "memory_agent", "inspect", "--db", str(known_db), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 1
    assert result.stderr == f"memory-agent inspect: port {port} on 127.0.0.1 is in use; choose another with --port\n"
