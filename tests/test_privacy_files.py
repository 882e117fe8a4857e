"""Erasure and access requests never create a database, a dry run writes nothing, and exports are private."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from test_trust import MARIA, memory_agent, two_callers

from conftest import rows
from db import open_repository


def files_in(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a hash of its bytes."""
    return {
        str(file.relative_to(folder)): hashlib.sha256(file.read_bytes()).hexdigest()
        for file in sorted(folder.rglob("*"))
        if file.is_file()
    }


@pytest.mark.parametrize(
    "args",
    [
        ["forget", MARIA],
        ["forget", MARIA, "--dry-run"],
        ["forget", MARIA, "--name", "Maria", "--dry-run"],
        ["export-caller", MARIA],
        ["purge", "--days", "30"],
    ],
)
def test_privacy_commands_refuse_a_path_that_holds_no_database_and_create_nothing(tmp_path, args):
    mistyped = tmp_path / "memroy.db"

    result = memory_agent(*args, "--db", str(mistyped), cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"memory-agent: error: database {mistyped} does not exist; nothing was read or changed"
    ]
    assert files_in(tmp_path) == {}


async def test_privacy_commands_refuse_an_empty_postgresql_database_and_create_nothing(pg_url, tmp_path):
    for args in (["forget", MARIA], ["forget", MARIA, "--dry-run"], ["export-caller", MARIA], ["purge"]):
        result = memory_agent(*args, "--db", pg_url, cwd=tmp_path)

        assert result.returncode == 2, result.stderr
        [line] = result.stderr.splitlines()
        assert "is not a memory-agent database" in line
    assert files_in(tmp_path) == {}
    import psycopg

    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)


async def test_a_dry_run_counts_without_writing_a_byte(db_path, tmp_path):
    await two_callers(db_path)
    db_path.with_name("memory.db.lock").unlink()
    before = files_in(tmp_path)

    dry = memory_agent("forget", MARIA, "--dry-run", "--db", str(db_path), cwd=tmp_path)

    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would erase: customers 1, calls 1, orders 1,")
    after = files_in(tmp_path)
    # SQLite's reader may open an empty write-ahead log and its index; nothing else appears or changes
    assert {name: after[name] for name in before} == before
    assert set(after) - set(before) <= {"memory.db-wal", "memory.db-shm"}
    assert not db_path.with_name("memory.db-wal").exists() or db_path.with_name("memory.db-wal").stat().st_size == 0
    assert rows(db_path, "SELECT count(*) FROM customers") == [(2,)]


async def test_a_dry_run_on_postgresql_counts_and_changes_nothing(pg_url, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    async with open_repository(pg_url, spool_dir=spool) as repo:
        from test_trust import maria_called_once

        await maria_called_once(repo)
    before = files_in(tmp_path)

    dry = memory_agent("forget", MARIA, "--dry-run", "--db", pg_url, cwd=tmp_path)

    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would erase: customers 1, calls 1, orders 1,")
    assert files_in(tmp_path) == before
    async with open_repository(pg_url, spool_dir=spool) as repo:
        assert [tuple(r) for r in await repo.read("SELECT count(*) FROM customers", ())] == [(1,)]
        assert [tuple(r) for r in await repo.read("SELECT count(*) FROM erasures", ())] == [(0,)]


@pytest.mark.parametrize("existing_mode", [None, 0o644])
async def test_an_export_file_is_readable_by_its_owner_only(db_path, tmp_path, existing_mode):
    await two_callers(db_path)
    out = tmp_path / "orders.csv"
    if existing_mode is not None:
        out.write_text("old\n")
        out.chmod(existing_mode)
    umask = os.umask(0o022)
    try:
        result = memory_agent("export", "--db", str(db_path), "-o", str(out), cwd=tmp_path)
    finally:
        os.umask(umask)

    assert result.returncode == 0, result.stderr
    assert "Maria" in out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
