"""``memory-agent inspect``: the owners' dashboard and a read-only database browser, behind a login.

Datasette serves the live file read-only (``mode=ro``), not ``--immutable``: immutable mode
ignores the WAL and would hide the calls the agent wrote since the last checkpoint. It runs as a
child process with the memory-agent plugin (``memory_agent/datasette/``) and this lock-down:

- a login: Datasette's own one-use root token, printed as a link; everything else answers 403;
- arbitrary SQL off (the dashboard's and canned queries still run) unless ``allow_sql``;
- requests whose Host is not the loopback name served are refused (DNS rebinding);
- SIGTERM and SIGINT are passed on to Datasette and waited for; the temporary metadata goes with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from db import RepositoryError
from db.safe_url import is_postgres_url
from db.sqlite.reports import open_read_only
from memory_agent.costs import prices_config
from memory_agent.datasette import dashboard, localtime
from memory_agent.settings import Prices

if TYPE_CHECKING:
    from memory_agent.restaurant import Restaurant

INSTALL_COMMAND = "pip install 'memory-agent[inspect]'"
METADATA_RESOURCE = "datasette/metadata.yml"
# The key the packaged metadata uses for the database; Datasette names it after the file.
_PACKAGED_NAME = "memory"
_NEEDED_MODULES = ("datasette", "datasette_dashboards")
ROOT_ACTOR = {"id": "root"}
_STOP_GRACE_S = 10.0
# Datasette's default (1 s) would cut off a chart over the whole history of a million orders.
SQL_TIME_LIMIT_MS = 5_000


def datasette_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in _NEEDED_MODULES)


def load_metadata(
    database_name: str = _PACKAGED_NAME,
    *,
    timezone: str = "UTC",
    hosts: tuple[str, ...] = (),
    allow_sql: bool = False,
    today: datetime | None = None,
    restaurant: Restaurant | None = None,
    prices: Prices | None = None,
) -> dict[str, Any]:
    """The packaged Datasette metadata for a database served under ``database_name``.

    The restaurant (its name, time zone and menu) is ``restaurant``'s; without one, the packaged
    menu's, in ``timezone``.

    Only the root actor (who logged in with the printed link) sees anything. ``execute-sql`` is
    granted to them because the dashboard's charts send their SQL; the plugin refuses any other
    SQL unless ``allow_sql``.
    """
    import yaml  # comes with Datasette

    text = resources.files("memory_agent").joinpath(METADATA_RESOURCE).read_text(encoding="utf-8")
    metadata = yaml.safe_load(text)
    database = metadata["databases"][_PACKAGED_NAME]
    database["queries"]["daily_sales"] = {
        "title": "Daily sales, in the restaurant's local days",
        "description": "Placed orders per local day from :since to :until (YYYY-MM-DD; empty is no limit).",
        "sql": dashboard.DAILY_SALES_SQL,
    }
    metadata["databases"] = {database_name: database}
    place = restaurant or _packaged(timezone)
    timezone = place.timezone
    metadata["title"] = f"{place.name} memory"
    metadata["description"] = metadata["description"].replace("Bella Vista", place.name)
    local_today = (today or datetime.now(localtime.zone(timezone))).astimezone(localtime.zone(timezone)).date()
    metadata["allow"] = ROOT_ACTOR
    metadata["allow_sql"] = ROOT_ACTOR
    metadata["plugins"] = {
        "memory-agent": {
            "timezone": timezone,
            "restaurant": place.name,
            "hosts": list(hosts),
            "allow_sql": allow_sql,
            # The dishes the kitchen board can mark sold out.
            "menu": [{"id": item.id, "name": item.name} for item in place.menu.items],
            "prices": prices_config(prices or Prices()),
        },
        "datasette-dashboards": dashboard.dashboard_config(database_name, today=local_today, restaurant=place.name),
    }
    return metadata


def _packaged(timezone: str) -> Restaurant:
    from memory_agent.menu import load_menu
    from memory_agent.restaurant import Restaurant

    return Restaurant.always_open(load_menu(), timezone=timezone)


def datasette_command(
    db: Path, metadata_file: Path, *, host: str = "127.0.0.1", port: int = 8001, open_browser: bool = False
) -> list[str]:
    """The ``datasette serve`` command line: the live file, read-only, the metadata, a root login."""
    return [
        sys.executable, "-m", "memory_agent.datasette.serve", "serve", str(db),
        "--metadata", str(metadata_file), "--host", host, "--port", str(port), "--root",
        "--setting", "sql_time_limit_ms", str(SQL_TIME_LIMIT_MS),
        *(["--open"] if open_browser else []),
    ]  # fmt: skip


def served_hosts(host: str, port: int) -> tuple[str, ...]:
    """The Host headers answered: the loopback name served (and ``localhost``), with the port."""
    return tuple(dict.fromkeys([f"{host}:{port}", f"localhost:{port}"]))


def inspect_database(
    db: Path | str,
    *,
    port: int = 8001,
    timezone: str = "UTC",
    allow_sql: bool = False,
    open_browser: bool = False,
    host: str = "127.0.0.1",
    err: TextIO | None = None,
    restaurant: Restaurant | None = None,
    prices: Prices | None = None,
) -> int:
    """Serve ``db`` until SIGTERM or SIGINT; returns the exit status.

    Without Datasette it prints the command that installs it and returns 1; a file that is not a
    memory-agent database, or a port already in use, gets a one-line error and 1; a PostgreSQL
    URL (served by neither) a one-line error and 2.
    """
    err = err or sys.stderr
    if is_postgres_url(db):
        print(
            "memory-agent inspect: the dashboard and Datasette read SQLite only; on PostgreSQL use"
            " `memory-agent export --db URL` or your own PostgreSQL tools",
            file=err,
        )
        return 2
    db = Path(db)
    if not datasette_installed():
        print(f"memory-agent inspect needs Datasette and its dashboard; install them with: {INSTALL_COMMAND}", file=err)
        return 1
    try:
        open_read_only(db).close()
    except RepositoryError as exc:
        print(f"memory-agent inspect: {exc}", file=err)
        return 1
    if problem := _port_problem(host, port):
        print(f"memory-agent inspect: {problem}", file=err)
        return 1
    metadata = load_metadata(
        Path(db).stem,
        timezone=timezone,
        hosts=served_hosts(host, port),
        allow_sql=allow_sql,
        restaurant=restaurant,
        prices=prices,
    )
    with tempfile.TemporaryDirectory(prefix="memory-agent-inspect-") as folder:
        metadata_file = Path(folder) / "metadata.json"
        metadata_file.write_text(json.dumps(metadata), encoding="utf-8")
        command = datasette_command(db, metadata_file, host=host, port=port, open_browser=open_browser)
        return _serve(command, db=db, base=f"http://{host}:{port}", allow_sql=allow_sql, err=err)


def _serve(command: list[str], *, db: Path, base: str, allow_sql: bool, err: TextIO) -> int:
    child = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # our signals reach it once, from us
        preexec_fn=_die_with_parent,
    )
    stopping: list[int] = []
    with _forwarding_signals(child, stopping):
        assert child.stdout is not None
        login = child.stdout.readline().strip()
        if "/-/auth-token?token=" in login:
            print(f"Serving {db} read-only at {base}/ (Ctrl+C to stop)", file=err)
            print(f"The owner's dashboard: {base}/-/dashboards/{dashboard.SLUG}", file=err)
            print(f"The kitchen board: {base}/-/kitchen", file=err)
            if not allow_sql:
                print("Arbitrary SQL is off (the dashboard and canned queries run); --allow-sql allows it.", file=err)
            print(f"Log in by opening this link (it works once; restart for a new one):\n  {login}", file=err)
            err.flush()
        threading.Thread(target=_drain, args=(child.stdout,), daemon=True).start()
        code = _wait(child)
    if stopping:
        return 0
    if code != 0:
        print(f"memory-agent inspect: Datasette stopped with exit status {code}", file=err)
        return 1
    return 0


def _wait(child: subprocess.Popen[str]) -> int:
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:  # a handler raising it between our own: keep waiting for the child
            continue


@contextlib.contextmanager
def _forwarding_signals(child: subprocess.Popen[str], stopping: list[int]) -> Iterator[None]:
    """While Datasette runs, SIGTERM and SIGINT stop it (and only then us); a second one kills it."""

    def forward(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)
        if child.poll() is None:
            child.send_signal(signal.SIGKILL if len(stopping) > 2 else signum)
            threading.Thread(target=_kill_after_grace, args=(child,), daemon=True).start()

    signals = (signal.SIGTERM, signal.SIGINT)
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread; the parent-death signal still holds
        return
    previous = {signum: signal.signal(signum, forward) for signum in signals}
    try:
        yield
    finally:
        if child.poll() is None:
            child.terminate()
            _kill_after_grace(child)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _kill_after_grace(child: subprocess.Popen[str]) -> None:
    try:
        child.wait(timeout=_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        child.kill()


def _drain(stream: TextIO) -> None:
    """Pass on whatever else Datasette prints."""
    for line in stream:
        sys.stdout.write(line)
        sys.stdout.flush()


def _die_with_parent() -> None:
    """Linux: if this process is killed outright (SIGKILL), Datasette gets SIGTERM instead of living on."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _port_problem(host: str, port: int) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return f"port {port} on {host} is in use; choose another with --port"
    return None
