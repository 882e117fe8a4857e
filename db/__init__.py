"""The data layer: schema, migrations and the repository, on SQLite or PostgreSQL. Knows nothing of LiveKit.

``Repository`` is the interface the call layer uses, whichever backend ``open_repository`` opened.
"""

from db.backend import Repository
from db.errors import (
    CallerErased,
    DatabaseUnavailable,
    NotADatabase,
    NotFound,
    RepositoryError,
    SchemaTooNew,
)
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
from db.sqlite.repository import Repository as SqliteRepository
from db.sqlite.repository import is_postgres_url, open_repository, open_sqlite_repository, prepare_database

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
    "database_path",
    "is_postgres_url",
    "open_repository",
    "open_sqlite_repository",
    "prepare_database",
]
