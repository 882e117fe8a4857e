"""The data layer: SQLite schema, migrations and the repository. Knows nothing of LiveKit."""

from db.errors import (
    DatabaseUnavailable,
    NotADatabase,
    NotFound,
    RepositoryError,
    SchemaTooNew,
)
from db.records import (
    CallRecord,
    CustomerMemory,
    FeedbackRecord,
    ItemRecord,
    MessageRecord,
    OrderRecord,
    PastItem,
)
from db.repository import Repository, database_path, open_repository

__all__ = [
    "CallRecord",
    "CustomerMemory",
    "DatabaseUnavailable",
    "FeedbackRecord",
    "ItemRecord",
    "MessageRecord",
    "NotADatabase",
    "NotFound",
    "OrderRecord",
    "PastItem",
    "Repository",
    "RepositoryError",
    "SchemaTooNew",
    "database_path",
    "open_repository",
]
