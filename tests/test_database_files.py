"""Database files: foreign or too-new files are refused untouched; every earlier schema upgrades intact."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import rows
from db import NotADatabase, RepositoryError, SchemaTooNew, open_repository
from db.schema.alembic import legacy
from db.sqlite.migrate import APPLICATION_ID, LATEST_VERSION

FIXTURES = Path(__file__).parent / "fixtures"
V1_TABLES = {
    "customers": "id, participant_identity, name, email, created_at, last_seen_at, call_count, order_count,"
    " lifetime_spend_cents, last_order_id, last_rating, last_feedback_comment",
    "calls": "id, customer_id, caller_name, started_at",
    # status and updated_at change when the fixture's stale open call is closed (asserted below)
    "orders": "id, call_id, customer_id, subtotal_cents, tip_cents, total_cents, payment_method, created_at, placed_at",
    "order_items": "id, order_id, position, menu_item, name, quantity, unit_price_cents, modifications",
    "feedback": "id, call_id, customer_id, rating, comment, created_at",
    "messages": "id, call_id, seq, role, agent, content, created_at",
}


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file in the folder with a hash of its bytes: nothing created, nothing changed."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def sqlite_file(path: Path, script: str, *, application_id: int = 0) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.execute(f"PRAGMA application_id = {application_id}")
    conn.commit()
    conn.close()
    return path


def table_rows(path: Path) -> dict[str, list[tuple]]:
    return {table: rows(path, f"SELECT {cols} FROM {table} ORDER BY 1") for table, cols in V1_TABLES.items()}


async def refusal(path: Path) -> RepositoryError:
    before = fingerprint(path.parent)
    with pytest.raises(RepositoryError) as refused:
        async with open_repository(path):
            pass
    assert fingerprint(path.parent) == before
    assert "\n" not in str(refused.value)
    return refused.value


@pytest.mark.parametrize(
    "content",
    [b"name,phone\nMaria,555-1234\n", bytes(range(256)) * 64, b"SQLite format 3\x00" + b"\xff" * 200],
    ids=["csv text", "binary noise", "truncated SQLite header"],
)
async def test_file_that_is_not_sqlite_is_refused_untouched(tmp_path, content):
    path = tmp_path / "memory.db"
    path.write_bytes(content)

    error = await refusal(path)

    assert isinstance(error, NotADatabase)


async def test_sqlite_database_of_another_application_is_refused_untouched(tmp_path):
    path = sqlite_file(
        tmp_path / "memory.db",
        "CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT);INSERT INTO photos (path) VALUES ('a.jpg');",
    )
    error = await refusal(path)
    assert isinstance(error, NotADatabase)
    assert "not a memory-agent database" in str(error)


async def test_sqlite_database_with_another_application_id_is_refused_untouched(tmp_path):
    path = sqlite_file(
        tmp_path / "memory.db",
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT);",
        application_id=0x47504B47,  # a GeoPackage
    )
    assert isinstance(await refusal(path), NotADatabase)


@pytest.mark.parametrize(
    "newer",
    [
        f"UPDATE alembic_version SET version_num = '{LATEST_VERSION + 1:04d}'",
        "UPDATE alembic_version SET version_num = 'a1b2c3d4e5f6'",
        "DROP TABLE alembic_version; INSERT INTO schema_migrations VALUES (99, 'from the future', '2030-01-01')",
    ],
    ids=["next revision", "unknown revision", "newer version before Alembic"],
)
async def test_database_from_a_newer_version_is_refused_untouched(db_path, newer):
    async with open_repository(db_path):
        pass
    conn = sqlite3.connect(db_path)
    conn.executescript(newer)
    conn.commit()
    conn.close()

    error = await refusal(db_path)

    assert isinstance(error, SchemaTooNew)
    assert "is newer than this code supports" in str(error)


def test_every_version_before_alembic_has_a_fixture():
    missing = [m.version for m in legacy.SQLITE if not (FIXTURES / f"schema_v{m.version}.db").exists()]
    assert missing == [], f"add tests/fixtures/schema_v<N>.db with make_schema_fixture.py for {missing}"


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("schema_v*.db")), ids=lambda p: p.stem)
async def test_database_from_an_earlier_schema_upgrades_with_its_data_intact(tmp_path, fixture):
    path = tmp_path / "memory.db"
    shutil.copyfile(fixture, path)
    before = table_rows(path)
    assert all(before.values())

    async with open_repository(path) as repo:
        memory = await repo.recall("+15551234567")

    assert table_rows(path) == before
    versions = rows(path, "SELECT version FROM schema_migrations ORDER BY 1")
    assert versions == [(m.version,) for m in legacy.SQLITE]
    assert rows(path, "SELECT version_num FROM alembic_version") == [(f"{LATEST_VERSION:04d}",)]
    assert rows(path, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert rows(path, "PRAGMA integrity_check") == [("ok",)]
    assert memory is not None and memory.name == "Maria" and memory.last_rating == 2
    assert [(i.menu_item, i.quantity) for i in memory.last_order_items] == [("margherita_pizza", 2), ("tiramisu", 1)]
    # the call the old version left open long ago, with no owner recorded, is closed once its lease is over
    assert rows(
        path, "SELECT id, end_reason LIKE 'abandoned:%' FROM calls WHERE ended_at IS NOT NULL AND id = 'call-3'"
    ) == [("call-3", 1)]
    assert rows(path, "SELECT status FROM orders WHERE call_id = 'call-3'") == [("abandoned",)]
