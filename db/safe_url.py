"""PostgreSQL URLs: recognized, checked, and never shown with a password.

The secrets are found the way the driver finds them (libpq's own parser, through
``psycopg.conninfo.conninfo_to_dict``): in the user information, in a ``password`` or
``sslpassword`` query parameter, percent-encoded or not. A URL is shown with each of them
replaced by ``***``, and an error message loses every form of them it may quote.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote, unquote_plus

from db.errors import NotADatabase

SCHEMES = ("postgresql", "postgres")
# The connection parameters that hold a secret (libpq's "password" and the client key's "sslpassword").
SECRET_PARAMETERS = frozenset({"password", "sslpassword"})
_HIDDEN = "***"
# scheme://[userinfo@]rest: userinfo runs to the last "@" before the path, query or fragment.
_AUTHORITY = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://)(?P<netloc>[^/?#]*)(?P<tail>.*)$", re.DOTALL)


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
        params = conninfo.conninfo_to_dict(text)
    except ProgrammingError as exc:
        raise NotADatabase(f"not a valid PostgreSQL URL ({redact_url(text)}): {scrub(str(exc), text)}") from None
    port = str(params.get("port") or "5432")
    if not all(part.isdigit() for part in port.split(",")):
        raise NotADatabase(f"not a valid PostgreSQL URL ({redact_url(text)}): the port is not a number")
    return text


def redact_url(url: str | Path) -> str:
    """The URL to show: every password (user information, ``password``/``sslpassword`` parameters) as ``***``."""
    text = str(url)
    parts = _parts(text)
    if parts is None:
        return scrub(text, text)
    head, user, password, rest, query, fragment = parts
    shown = head + (f"{user}:{_HIDDEN}@" if password is not None else f"{user}@" if user is not None else "") + rest
    if query is not None:
        shown += "?" + "&".join(_hide_value(pair) for pair in query.split("&"))
    if fragment is not None:
        shown += "#" + fragment
    return scrub(shown, text)


def _parts(url: str) -> tuple[str, str | None, str | None, str, str | None, str | None] | None:
    """``scheme://``, user, password, host and path, query, fragment; None if ``url`` is no URL.

    The user information runs to the last "@" before the query, wider than either reading (libpq stops
    at the first "@", Python's ``urlsplit`` at the first "/"), so nothing of it is shown under any.
    """
    match = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url)
    if match is None:
        return None
    head, rest = match.group(), url[match.end() :]
    rest, hash_, fragment = rest.partition("#")
    before_query, question, query = rest.partition("?")
    user: str | None = None
    password: str | None = None
    userinfo, at, after = before_query.rpartition("@")
    if at:
        user, colon, secret = userinfo.partition(":")
        password = secret if colon else None
        before_query = after
    return head, user, password, before_query, query if question else None, fragment if hash_ else None


def _hide_value(pair: str) -> str:
    key, equals, _ = pair.partition("=")
    return f"{key}={_HIDDEN}" if equals and unquote_plus(key).strip().lower() in SECRET_PARAMETERS else pair


def scrub(text: str, url: str) -> str:
    """``text`` (an error message, or the URL itself) with every form of the URL's secrets replaced."""
    for secret in _secrets(url):
        text = text.replace(secret, _HIDDEN)
    return text


def _secrets(url: str) -> list[str]:
    """Each secret of ``url`` as the driver reads it and as it may be written or quoted, longest first."""
    from psycopg import ProgrammingError, conninfo  # here: SQLite's commands never load the driver

    found: set[str] = set()
    try:
        found |= {str(value) for key, value in conninfo.conninfo_to_dict(url).items() if key in SECRET_PARAMETERS}
    except ProgrammingError:
        pass
    parts = _parts(url)
    if parts is not None:
        _, _, password, _, query, _ = parts
        if password:
            found.add(password)
        for pair in (query or "").split("&"):
            key, equals, value = pair.partition("=")
            if equals and unquote_plus(key).strip().lower() in SECRET_PARAMETERS:
                found.add(value)
    forms = set()
    for secret in found:
        forms |= {secret, unquote(secret), unquote_plus(secret), quote(secret, safe=""), quote_plus(secret)}
    return sorted((form for form in forms if form), key=len, reverse=True)
