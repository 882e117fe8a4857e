"""PostgreSQL URLs: recognized, checked, and never shown with their password."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from db.errors import NotADatabase

SCHEMES = ("postgresql", "postgres")
_HIDDEN = "***"


def is_postgres_url(text: str | Path) -> bool:
    """A ``postgresql://`` or ``postgres://`` URL (also as a ``Path`` has folded its ``//``)."""
    scheme, colon, _ = str(text).partition(":")
    return bool(colon) and scheme.lower() in SCHEMES


def postgres_url(text: str) -> str:
    """``text`` if it is a usable PostgreSQL URL; else ``NotADatabase`` saying why, without the password."""
    from psycopg import ProgrammingError, conninfo  # here: SQLite's commands never load the driver

    if not is_postgres_url(text) or "://" not in text:
        raise NotADatabase(f"{redact_url(text)} is not a PostgreSQL URL (postgresql://user@host:port/database)")
    try:
        conninfo.conninfo_to_dict(text)
        urlsplit(text).port  # noqa: B018  (a port that is not a number raises here)
    except (ProgrammingError, ValueError) as exc:
        raise NotADatabase(f"not a valid PostgreSQL URL ({redact_url(text)}): {scrub(str(exc), text)}") from None
    return text


def _passwords(url: str) -> list[str]:
    found: list[str] = []
    try:
        parts = urlsplit(url)
        if parts.password:
            found += [parts.password, unquote(parts.password)]
        found += [value for key, value in parse_qsl(parts.query) if key == "password" and value]
    except ValueError:
        pass
    match = re.match(r"[^:]+://[^:/@]*:([^@]*)@", url)
    if match and match.group(1):
        found += [match.group(1), unquote(match.group(1))]
    return sorted({p for p in found if p}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` (an error message) with the URL's password replaced."""
    for password in _passwords(url):
        text = text.replace(password, _HIDDEN)
    return text


def redact_url(url: str | Path) -> str:
    """The URL to show: its password replaced by ``***``."""
    return scrub(str(url), str(url))
