"""The data layer: SQLite schema, migrations and the repository. Knows nothing of LiveKit."""

from db.connection import database_path
from db.errors import (
    DatabaseUnavailable,
    NotADatabase,
    NotFound,
    RepositoryError,
    SchemaTooNew,
)
from db.models import (
    CallSnapshot,
    CustomerMemory,
    Feedback,
    Message,
    Order,
    OrderLine,
)
from db.repository import Repository, open_repository

__all__ = [
    "CallSnapshot",
    "CustomerMemory",
    "DatabaseUnavailable",
    "Feedback",
    "Message",
    "NotADatabase",
    "NotFound",
    "Order",
    "OrderLine",
    "Repository",
    "RepositoryError",
    "SchemaTooNew",
    "database_path",
    "open_repository",
]
