"""`memory-agent backup`: a consistent copy of the live database, made while calls are writing to it."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from backup_writers import add_customers

from conftest import rows
from db import CustomerMemory, open_repository
from db.sqlite.backup import PAGES_PER_STEP, backup_database

SPAWN = multiprocessing.get_context("spawn")
WRITERS = 4
BATCH = 3  # customers per writer transaction
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LIVEKIT_", "DEEPGRAM_", "MEMORY_AGENT_"))}
NOW = "2025-01-15T12:00:00+00:00"


def run_backup(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memory_agent", "backup", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def new_database(path: Path) -> Path:
    """A new, migrated database, made by the product."""

    async def create() -> None:
        async with open_repository(path):
            pass

    asyncio.run(create())
    return path


def recall_with_the_product(path: Path, identity: str) -> CustomerMemory | None:
    """Open ``path`` as the agent does and look a caller up."""

    async def recall() -> CustomerMemory | None:
        async with open_repository(path) as repo:
            return await repo.recall(identity)

    return asyncio.run(recall())


def fill(path: Path, *, customers: int) -> None:
    """Customers who called, ordered, rated and talked (``maria`` among them), written as the product would."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for n in range(customers):
        identity, name = ("maria", "Maria") if n == 0 else (f"caller-{n}", f"Caller {n}")
        customer = conn.execute(
            "INSERT INTO customers (participant_identity, name, created_at, last_seen_at, call_count, order_count,"
            " lifetime_spend_cents) VALUES (?, ?, ?, ?, 1, 1, 2598)",
            (identity, name, NOW, NOW),
        ).lastrowid
        call = f"call-{n}"
        conn.execute(
            "INSERT INTO calls (id, customer_id, caller_name, started_at, ended_at, end_reason)"
            " VALUES (?, ?, ?, ?, ?, 'caller hung up')",
            (call, customer, name, NOW, NOW),
        )
        order = conn.execute(
            "INSERT INTO orders (call_id, customer_id, status, subtotal_cents, total_cents, created_at, updated_at,"
            " placed_at) VALUES (?, ?, 'placed', 2598, 2598, ?, ?, ?)",
            (call, customer, NOW, NOW, NOW),
        ).lastrowid
        conn.execute(
            "INSERT INTO order_items (order_id, position, menu_item, name, quantity, unit_price_cents)"
            " VALUES (?, 1, 'margherita', 'Margherita Pizza', 2, 1299)",
            (order,),
        )
        conn.execute("UPDATE customers SET last_order_id = ? WHERE id = ?", (order, customer))
        conn.execute(
            "INSERT INTO feedback (call_id, customer_id, rating, comment, created_at) VALUES (?, ?, 5, ?, ?)",
            (call, customer, f"lovely crust, thanks from {name}", NOW),
        )
        conn.executemany(
            "INSERT INTO messages (call_id, seq, role, content, created_at) VALUES (?, ?, ?, ?, ?)",
            [(call, seq, "user" if seq % 2 else "assistant", f"turn {seq} of {name}: " + "pizza " * 40, NOW)
             for seq in range(1, 6)],
        )  # fmt: skip
    conn.execute("COMMIT")
    conn.close()


def tables(path: Path) -> dict[str, list[tuple]]:
    """Every table's rows, in a stable order."""
    names = [name for (name,) in rows(path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {name: sorted(rows(path, f'SELECT * FROM "{name}"'), key=repr) for name in names}


def integrity(path: Path) -> list[tuple]:
    return rows(path, "PRAGMA integrity_check")


def files(folder: Path) -> dict[str, bytes | str]:
    """Everything in ``folder``: each file's bytes, each link's target."""
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            found[name] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[name] = path.read_bytes()
        else:
            found[name] = "folder"
    return found


@contextmanager
def writers(db: Path) -> Iterator[Callable[[], None]]:
    """Four processes adding customers to ``db`` until the returned function stops them."""
    stop = SPAWN.Event()
    started = [SPAWN.Event() for _ in range(WRITERS)]
    processes = [
        SPAWN.Process(target=add_customers, args=(str(db), n, BATCH, started[n], stop)) for n in range(WRITERS)
    ]
    for process in processes:
        process.start()

    def stop_them() -> None:
        stop.set()
        for process in processes:
            process.join(timeout=120)
        assert [p.exitcode for p in processes] == [0] * WRITERS

    try:
        for n, (process, event) in enumerate(zip(processes, started, strict=True)):
            while not event.wait(timeout=0.1):
                assert process.is_alive(), f"writer {n} stopped before its first commit"
        yield stop_them
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=120)
            if process.is_alive():
                process.kill()


def assert_whole_transactions_in_order(path: Path) -> None:
    """Each writer's customers in ``path`` are its first k transactions, none half there: a consistent snapshot."""
    written: dict[str, list[int]] = {}
    for (identity,) in rows(path, "SELECT participant_identity FROM customers WHERE participant_identity GLOB 'w*-*'"):
        worker, n = identity.split("-")
        written.setdefault(worker, []).append(int(n))
    for worker, numbers in written.items():
        assert sorted(numbers) == list(range(len(numbers))), worker
        assert len(numbers) % BATCH == 0, worker


@pytest.mark.parametrize("pages_per_step", [1, PAGES_PER_STEP])
def test_the_copy_has_every_row_is_private_and_opens_with_the_product(tmp_path, pages_per_step):
    live = new_database(tmp_path / "memory.db")
    fill(live, customers=200)
    before = tables(live)
    target = tmp_path / "backup.db"

    result = backup_database(live, target, pages_per_step=pages_per_step)

    assert result.target == target
    assert result.bytes == target.stat().st_size
    assert result.bytes == result.pages * rows(target, "PRAGMA page_size")[0][0]
    assert integrity(target) == [("ok",)]
    assert tables(target) == before
    assert len(before["messages"]) == 1000
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert tables(live) == before
    memory = recall_with_the_product(target, "maria")
    assert memory is not None
    assert memory.name == "Maria"


def test_the_copy_is_one_self_contained_file(tmp_path):
    live = new_database(tmp_path / "memory.db")
    # A live database: its latest commit is still only in the WAL.
    holder = sqlite3.connect(live, isolation_level=None)
    holder.execute("PRAGMA wal_autocheckpoint = 0")
    holder.execute(
        "INSERT INTO customers (participant_identity, created_at, last_seen_at) VALUES ('in-wal', ?, ?)", (NOW, NOW)
    )
    target = tmp_path / "backup.db"

    backup_database(live, target)
    holder.close()

    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("backup")) == ["backup.db"]
    assert rows(target, "PRAGMA journal_mode") == [("delete",)]
    assert rows(target, "SELECT participant_identity FROM customers") == [("in-wal",)]


def test_a_backup_can_be_backed_up_again(tmp_path):
    live = new_database(tmp_path / "memory.db")
    fill(live, customers=20)
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    backup_database(live, first)

    backup_database(first, second, pages_per_step=1)

    assert integrity(second) == [("ok",)]
    assert tables(second) == tables(live)


def test_backup_command_copies_while_four_processes_write(tmp_path):
    live = new_database(tmp_path / "memory.db")
    # Several backup steps' worth of pages, so that writers commit between the steps.
    conn = sqlite3.connect(live, isolation_level=None)
    conn.executemany(
        "INSERT INTO customers (participant_identity, name, created_at, last_seen_at) VALUES (?, ?, ?, ?)",
        [(f"existing-{n}", "x" * 2000, NOW, NOW) for n in range(3000)],
    )
    conn.close()
    target = tmp_path / "backup.db"

    with writers(live) as stop_writers:
        result = run_backup(str(target), "--db", str(live), cwd=tmp_path)
        stop_writers()

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"backed up {live} to {target} ({target.stat().st_size:,} bytes)\n"
    assert integrity(target) == [("ok",)]
    copied = rows(target, "SELECT count(*) FROM customers")[0][0]
    # Every writer had committed before the command started; more commits may follow it.
    assert 3000 + WRITERS * BATCH <= copied <= rows(live, "SELECT count(*) FROM customers")[0][0]
    assert_whole_transactions_in_order(target)
    assert recall_with_the_product(target, "existing-2999") is not None


def test_a_copy_made_page_by_page_while_processes_write_is_one_snapshot(tmp_path):
    live = new_database(tmp_path / "memory.db")
    fill(live, customers=100)
    target = tmp_path / "backup.db"

    with writers(live) as stop_writers:
        result = backup_database(live, target, pages_per_step=1)
        stop_writers()

    assert result.pages > 100
    assert integrity(target) == [("ok",)]
    assert (
        rows(target, "SELECT count(*) FROM customers WHERE participant_identity GLOB 'w*-*'")[0][0] >= WRITERS * BATCH
    )
    assert_whole_transactions_in_order(target)


def test_force_replaces_an_earlier_backup(tmp_path):
    live = new_database(tmp_path / "memory.db")
    target = tmp_path / "backup.db"
    assert run_backup(str(target), "--db", str(live), cwd=tmp_path).returncode == 0
    fill(live, customers=3)

    result = run_backup(str(target), "--db", str(live), "--force", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert rows(target, "SELECT count(*) FROM customers") == [(3,)]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("backup")) == ["backup.db"]


def link_to_the_live_file(folder: Path) -> None:
    (folder / "link.db").symlink_to("memory.db")


def an_earlier_backup(folder: Path) -> None:
    (folder / "old.db").write_text("an earlier backup")


def a_stale_wal_beside_the_target(folder: Path) -> None:
    (folder / "new.db-wal").write_bytes(b"\x37\x7f\x06\x82" + bytes(28))  # a WAL header


def a_text_file(folder: Path) -> None:
    (folder / "notes.db").write_text("shopping list\n")


def another_applications_database(folder: Path) -> None:
    conn = sqlite3.connect(folder / "other.db")
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('not ours')")
    conn.commit()
    conn.close()


def damage_the_live_file(folder: Path) -> None:
    """Swap two indexes of the customers table: every row is then missing from both."""
    path = folder / "memory.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA writable_schema = ON")
    swapped = "'sqlite_autoindex_customers_1', 'ix_customers_last_order_id'"
    conn.execute(
        f"UPDATE sqlite_master SET rootpage = (SELECT sum(rootpage) FROM sqlite_master WHERE name IN ({swapped}))"
        f" - rootpage WHERE name IN ({swapped})"
    )
    conn.close()
    assert integrity(path) != [("ok",)]


LIVE = "is the live database"
# The live database is memory.db in the folder the command runs in.
BAD_INPUT = [
    pytest.param(None, "memory.db --db {live}", LIVE, id="target is the live file"),
    pytest.param(None, "./memory.db --db {live}", LIVE, id="target is the live file spelled relatively"),
    pytest.param(None, "../{folder}/memory.db --db memory.db", LIVE, id="target is the live file spelled from above"),
    pytest.param(link_to_the_live_file, "link.db --db {live}", LIVE, id="target is a link to the live file"),
    pytest.param(None, "memory.db-wal --db {live}", LIVE, id="target is the live WAL"),
    pytest.param(None, "memory.db-shm --db {live}", LIVE, id="target is the live shared memory"),
    pytest.param(None, "memory.db.lock --db {live}", LIVE, id="target is the writer lock"),
    pytest.param(None, "memory.db.spool.jsonl --db {live}", LIVE, id="target is the spool"),
    pytest.param(an_earlier_backup, "old.db --db {live}", "already exists", id="target exists"),
    pytest.param(a_stale_wal_beside_the_target, "new.db --db {live}", "new.db-wal", id="target has a stale WAL"),
    pytest.param(None, "missing/backup.db --db {live}", "does not exist", id="target folder does not exist"),
    pytest.param(None, "backup.db --db nothing.db", "nothing.db does not exist", id="source does not exist"),
    pytest.param(a_text_file, "backup.db --db notes.db", "not a SQLite database", id="source is a text file"),
    pytest.param(
        another_applications_database, "backup.db --db other.db", "not a memory-agent database",
        id="source is another application's database",
    ),
    pytest.param(damage_the_live_file, "backup.db --db {live}", "integrity check", id="source is damaged"),
]  # fmt: skip


@pytest.mark.parametrize(("setup", "args", "says"), BAD_INPUT)
def test_bad_input_is_one_line_and_leaves_every_file_as_it_was(tmp_path, setup, args, says):
    live = new_database(tmp_path / "memory.db")
    fill(live, customers=2)
    if setup:
        setup(tmp_path)
    before = files(tmp_path)

    result = run_backup(*(arg.format(live=live, folder=tmp_path.name) for arg in args.split()), cwd=tmp_path)

    assert result.returncode != 0
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert re.match(r"memory-agent: error: \S", line), line
    assert says in line
    assert files(tmp_path) == before


def test_backup_of_a_postgresql_database_points_to_its_own_tools_without_the_password(tmp_path):
    result = run_backup(str(tmp_path / "copy.db"), "--db", "postgresql://owner:s3cr3t@127.0.0.1:1/memory", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "memory-agent: error: backup copies a SQLite file; back PostgreSQL up with its own tools (pg_dump)"
    ]
    assert not (tmp_path / "copy.db").exists()
