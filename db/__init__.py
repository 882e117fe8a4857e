"""The data layer: schema, statements and the repository, on SQLite or PostgreSQL. Knows nothing of LiveKit.

``Repository`` is the interface the call layer uses, whichever backend ``open_repository`` opened. The layers:
``db.schema`` (the tables, views and migrations), ``db.statements`` (every read and write, written once),
``db.sqlite`` and ``db.postgres`` (what truly differs: connections, locking, full-text search, heartbeats).

Names are imported from their modules when first used, so a command that needs one part (the export) does not
load the others.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_HOMES = {
    "Repository": "db.backend",
    "CallerErased": "db.errors",
    "DatabaseUnavailable": "db.errors",
    "NotADatabase": "db.errors",
    "NotFound": "db.errors",
    "RepositoryError": "db.errors",
    "SchemaTooNew": "db.errors",
    "CallSnapshot": "db.schema.models",
    "CustomerMemory": "db.schema.models",
    "ErasureRequest": "db.schema.models",
    "Feedback": "db.schema.models",
    "Message": "db.schema.models",
    "Order": "db.schema.models",
    "OrderLine": "db.schema.models",
    "database_path": "db.sqlite.connection",
    "SqliteRepository": "db.sqlite.repository",
    "open_sqlite_repository": "db.sqlite.repository",
    "is_postgres_url": "db.safe_url",
    "count_erasure": "db.open",
    "open_repository": "db.open",
    "prepare_database": "db.open",
}

__all__ = [
    "CallSnapshot",
    "CallerErased",
    "CustomerMemory",
    "DatabaseUnavailable",
    "ErasureRequest",
    "Feedback",
    "Message",
    "NotADatabase",
    "NotFound",
    "Order",
    "OrderLine",
    "Repository",
    "RepositoryError",
    "SchemaTooNew",
    "SqliteRepository",
    "count_erasure",
    "database_path",
    "is_postgres_url",
    "open_repository",
    "open_sqlite_repository",
    "prepare_database",
]

if TYPE_CHECKING:
    from db.backend import Repository
    from db.errors import (
        CallerErased,
        DatabaseUnavailable,
        NotADatabase,
        NotFound,
        RepositoryError,
        SchemaTooNew,
    )
    from db.open import count_erasure, open_repository, prepare_database
    from db.safe_url import is_postgres_url
    from db.schema.models import (
        CallSnapshot,
        CustomerMemory,
        ErasureRequest,
        Feedback,
        Message,
        Order,
        OrderLine,
    )
    from db.sqlite.connection import database_path
    from db.sqlite.repository import SqliteRepository, open_sqlite_repository


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'db' has no attribute {name!r}")
    value = getattr(import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
