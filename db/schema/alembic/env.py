"""Alembic's environment: the connection, its transaction and its lock come from ``db.schema.alembic.upgrade``."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import db.schema.models  # noqa: F401  (the tables)
from db.schema.alembic import schema_objects

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters a table by copying it
    include_object=schema_objects(connection.dialect.name),
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
