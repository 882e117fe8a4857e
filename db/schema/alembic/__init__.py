"""The schema's migrations, by Alembic: one history for both databases, run when the repository opens.

The tables are the SQLModel table models (``db.schema.models``), the views ``db.schema.views``. A change to a table
is one revision in ``versions/``, for SQLite (in batch mode) and PostgreSQL alike; revision ``0011``
is the history before Alembic (``legacy``), so a database of any earlier version upgrades in place.
Revision ids are numbers that go on from the old schema versions: ``LATEST_VERSION`` is the head's.

The callers hold the lock (``db.sqlite.migrate.migrate``: SQLite's write lock; ``db.postgres.migrate.migrate``:
an advisory lock) and the transaction; ``upgrade`` runs inside both. No ``alembic.ini``: the
configuration is built here.
"""

from __future__ import annotations

import logging

# Alembic tells of each step (from its import on) at INFO; a migration that succeeds is silent.
logging.getLogger("alembic").setLevel(logging.WARNING)

from collections.abc import Callable  # noqa: E402
from functools import cache  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy import Connection  # noqa: E402

from db.errors import SchemaTooNew  # noqa: E402
from db.schema import views  # noqa: E402

SCRIPTS = Path(__file__).parent


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(SCRIPTS))


def head() -> str:
    found = _scripts().get_current_head()
    assert found is not None, "no revision in db/schema/alembic/versions"
    return found


def current(connection: Connection) -> str | None:
    """The revision the database is at; None: none yet (a new database, or one from before Alembic)."""
    return MigrationContext.configure(connection).get_current_revision()


def check_known(revision: str | None) -> None:
    """Refuse a database that a newer memory-agent has migrated past this code's revisions."""
    if revision is None:
        return
    known = {script.revision for script in _scripts().walk_revisions()}
    if revision not in known:
        raise SchemaTooNew(
            f"database schema version {revision.lstrip('0') or revision} is newer than this code supports"
            f" ({head().lstrip('0')}); upgrade memory-agent"
        )


def upgrade(connection: Connection) -> None:
    """Bring the database to the head revision and its views up to date, in the caller's transaction and lock."""
    revision = current(connection)
    check_known(revision)
    if revision is not None and revision != head():
        views.drop(connection)  # out of the way of the revisions; created again below
    command.upgrade(config(connection), "head")
    if connection.dialect.name == "sqlite":
        _ensure_search_triggers(connection)
    views.ensure(connection)


def _ensure_search_triggers(connection: Connection) -> None:
    """Create again the full-text triggers a revision dropped with their table (SQLite's batch mode copies a
    table to change it), and index the text again if one was missing."""
    from db.schema.models import FULL_TEXT

    found = {row[0] for row in connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    for search in FULL_TEXT:
        missing = {name: sql for name, sql in search.sqlite_triggers().items() if name not in found}
        for sql in missing.values():
            connection.exec_driver_sql(sql)
        if missing:
            connection.exec_driver_sql(f"INSERT INTO {search.table}_fts ({search.table}_fts) VALUES ('rebuild')")


def config(connection: Connection) -> Config:
    """Alembic's configuration, in code: this folder's revisions, run on ``connection``. A new revision, named as
    the others, is ``command.revision(config(c), "what changes", autogenerate=True, rev_id="0012")`` on a
    connection ``c`` to a database at the head (on SQLite, see the test's ``unreadable_on_sqlite``)."""
    found = Config()
    found.set_main_option("script_location", str(SCRIPTS))
    found.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
    found.attributes["connection"] = connection
    return found


def schema_objects(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """What the models describe on ``dialect``, for Alembic's comparisons (``include_object``). Left out:

    - SQLite's full-text indexes: FTS5 virtual tables and their shadow tables (``messages_fts``,
      ``messages_fts_data``...), which SQLAlchemy cannot read as tables; PostgreSQL indexes in place
      (``db.schema.models.FULL_TEXT``), and those indexes are compared;
    - ``schema_migrations``, the record of the history before Alembic (``legacy``), kept as it was;
    - the record ``memory-agent migrate-to-postgres`` keeps of its copy (``memory_agent_import*``);
    - what the models mark as another database's only (``db.schema.models.only_on``): PostgreSQL's ``worker_hosts``.
    """
    from db.schema.models import FULL_TEXT

    fts = tuple(f"{search.table}_fts" for search in FULL_TEXT)

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table" and name is not None:
            if name == "schema_migrations" or name.startswith("memory_agent_import"):
                return False
            if any(name == table or name.startswith(table + "_") for table in fts):
                return False
        dialects = getattr(obj, "info", {}).get("dialects")
        return dialects is None or dialect in dialects

    return include
