"""The schema: the tables (``models``), the views (``views``) and their migrations (``alembic``), for both databases.

This module is light (no SQLAlchemy, no Alembic): a backend checks a database's version against ``LATEST_VERSION``
before anything heavier is loaded.
"""

from __future__ import annotations

import re
from pathlib import Path

from db.errors import SchemaTooNew


def _latest_version() -> int:
    """The head revision's number, from the revision files' names (``vNNNN_*.py``), without loading Alembic."""
    versions = Path(__file__).parent / "alembic" / "versions"
    return max(int(m[1]) for p in versions.glob("v*.py") if (m := re.fullmatch(r"v(\d+)_\w+\.py", p.name)))


LATEST_VERSION = _latest_version()


def checked_version(revision: str) -> int:
    """A revision's number, if this code knows it; ``SchemaTooNew`` otherwise."""
    if not revision.isdigit() or int(revision) > LATEST_VERSION:
        raise SchemaTooNew(
            f"database schema version {revision.lstrip('0') or revision} is newer than this code supports "
            f"({LATEST_VERSION}); upgrade memory-agent"
        )
    return int(revision)
