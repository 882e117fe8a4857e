"""A throwaway PostgreSQL server for the tests: started once per session on 127.0.0.1, a fresh database per test
(empty, or a copy of one migrated once per session).

``MEMORY_AGENT_TEST_PG_URL`` names a running server to use instead (CI starts one). Without it, the
server's own binaries are looked for on the PATH and in Debian's ``/usr/lib/postgresql/*/bin``; when
there are none, the tests that need PostgreSQL are skipped with one line saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from db import prepare_database

ENV_URL = "MEMORY_AGENT_TEST_PG_URL"
_SEARCH = ("/usr/local/bin", "/usr/local/pgsql/bin")


def find_binaries() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    folders = [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version(p.parent.name), reverse=True)
    for folder in [*debian, *folders, *map(Path, _SEARCH)]:
        if all((folder / tool).is_file() and os.access(folder / tool, os.X_OK) for tool in ("initdb", "pg_ctl")):
            return folder
    return None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A server the tests may create databases on: ``admin_url`` points at its maintenance database."""

    admin_url: str
    data_dir: Path | None = None
    bin_dir: Path | None = None
    as_postgres: bool = False

    def database_url(self, name: str) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def create_database(self, template: str = "template0") -> str:
        """A new database: empty, or a copy of ``template`` (which nothing may be connected to)."""
        name = f"test_{secrets.token_hex(6)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} ENCODING 'UTF8'").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.bin_dir is not None and self.data_dir is not None, "a server the tests did not start"
        return _run(self.as_postgres, str(self.bin_dir / "pg_ctl"), *args, "-D", str(self.data_dir))


def _run(as_postgres: bool, *command: str) -> subprocess.CompletedProcess[str]:
    prefix = ["runuser", "-u", "postgres", "--"] if as_postgres else []
    return subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def throwaway_server() -> Iterator[Server]:
    """A server of its own in a temporary folder, listening on 127.0.0.1 only; stopped and removed at exit."""
    bin_dir = find_binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no initdb found); set MEMORY_AGENT_TEST_PG_URL to use a server")
    as_postgres = os.geteuid() == 0
    top = Path(tempfile.mkdtemp(prefix="memory-agent-pg-"))
    data = top / "data"
    password = secrets.token_hex(16)
    (top / "pwfile").write_text(password + "\n")
    if as_postgres:
        shutil.chown(top, "postgres")
        shutil.chown(top / "pwfile", "postgres")
    top.chmod(0o700)
    port = _free_port()
    server = Server(
        admin_url=f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres",
        data_dir=data,
        bin_dir=bin_dir,
        as_postgres=as_postgres,
    )
    try:
        made = _run(
            as_postgres,
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            f"--pwfile={top / 'pwfile'}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        if made.returncode != 0:
            pytest.fail(f"initdb failed: {made.stderr.strip().splitlines()[-1:]}")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {top} -c fsync=off -c full_page_writes=off"
            " -c max_connections=200"
        )
        started = server.ctl("start", "-w", "-t", "60", "-l", str(top / "server.log"), "-o", options)
        if started.returncode != 0:
            log = (top / "server.log").read_text() if (top / "server.log").exists() else started.stderr
            pytest.fail(f"PostgreSQL did not start: {log.strip().splitlines()[-1:]}")
        yield server
    finally:
        if (data / "postmaster.pid").exists():
            server.ctl("stop", "-m", "fast", "-w")
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    """The session's PostgreSQL server: ``MEMORY_AGENT_TEST_PG_URL``'s, or a throwaway one."""
    url = os.environ.get(ENV_URL)
    if url:
        yield Server(admin_url=url)
        return
    with throwaway_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: Server) -> Iterator[str]:
    """A URL of a new, empty database of its own, dropped after the test."""
    name = pg_server.create_database()
    try:
        yield pg_server.database_url(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture(scope="session")
def pg_migrated(pg_server: Server) -> Iterator[str]:
    """A database of the session's server migrated once, which each test's migrated database is a copy of."""
    name = pg_server.create_database()
    try:
        asyncio.run(prepare_database(pg_server.database_url(name)))
        yield name
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def pg_migrated_url(pg_server: Server, pg_migrated: str) -> Iterator[str]:
    """A URL of a new database of its own with the schema in place (quicker than migrating an empty one)."""
    name = pg_server.create_database(template=pg_migrated)
    try:
        yield pg_server.database_url(name)
    finally:
        pg_server.drop_database(name)
