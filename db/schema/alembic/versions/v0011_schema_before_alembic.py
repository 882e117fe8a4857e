"""The schema before Alembic: SQLite's migrations 1 to 11, PostgreSQL's 1 to 7 (see db.schema.alembic.legacy).

Revision ID: 0011
Revises:
"""

from __future__ import annotations

from alembic import op

from db.schema.alembic import legacy

revision = "0011"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    found = bind.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        if bind.dialect.name == "sqlite"
        else "SELECT 1 WHERE to_regclass('schema_migrations') IS NOT NULL"
    ).first()
    applied = {int(row[0]) for row in bind.exec_driver_sql("SELECT version FROM schema_migrations")} if found else set()
    apply = legacy.apply_sqlite if bind.dialect.name == "sqlite" else legacy.apply_postgres
    apply(bind.exec_driver_sql, applied)


def downgrade() -> None:
    raise NotImplementedError("memory-agent migrates forward only")
