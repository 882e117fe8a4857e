"""The data layer's own exceptions: nothing from sqlite3 leaks past the repository."""


class RepositoryError(Exception):
    """Base class for every error the data layer raises on purpose."""


class NotADatabase(RepositoryError):
    """The file is missing, is not SQLite, or belongs to another application."""


class SchemaTooNew(RepositoryError):
    """The database was written by a newer version of the product."""


class DatabaseUnavailable(RepositoryError):
    """A write could not be made (locked past the retry bound, read-only, disk full)."""


class CallerErased(RepositoryError):
    """The call's caller was erased after the call began: nothing more of the call may be written."""


class NotFound(RepositoryError):
    """A row that was asked for by key does not exist."""


class BackupRefused(RepositoryError):
    """A backup would overwrite the live database, one of its files, or a file it was not told to replace."""
