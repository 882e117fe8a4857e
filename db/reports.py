"""The order export around its statement (``db.statements.reports``): the filters' parsing, the restaurant's
offsets and the assembly of chunks, for both backends (``db.sqlite.reports``, ``db.postgres.reports``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from db.clock import to_iso
from db.schema.models import OrderStatus
from db.statements.reports import (
    EXPORT_FORMATS,
    ExportFormat,
    export_columns,
)

ORDER_STATUSES: tuple[str, ...] = get_args(OrderStatus)


def parse_moment(text: str, *, end_of_day: bool = False, timezone: str = "UTC") -> str:
    """A date (``2025-01-31``) or an ISO 8601 time, as stored text (UTC).

    A plain date is a day in ``timezone`` (an IANA name: the restaurant's days); with
    ``end_of_day`` it means the end of that day (the next local midnight), so an ``until`` date
    includes the whole day. A time without an offset is in ``timezone`` too.
    """
    value = text.strip()
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r}") from None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day + timedelta(days=1 if end_of_day else 0), time(), zone)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
        return to_iso(moment)
    except (ValueError, OverflowError):
        raise ValueError(f"not a date: {text!r} (use YYYY-MM-DD or an ISO 8601 time)") from None


def parse_statuses(text: str) -> tuple[str, ...]:
    """``placed,abandoned`` -> ('placed', 'abandoned'); refuses a status that does not exist."""
    statuses = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [status for status in statuses if status not in ORDER_STATUSES]
    if unknown or not statuses:
        raise ValueError(
            f"unknown status {', '.join(map(repr, unknown)) or repr(text)} (choose from {', '.join(ORDER_STATUSES)})"
        )
    return statuses


# -- local time: a stored UTC time as the restaurant's ISO 8601 local time, with its offset -----------


def offset_text(offset: timedelta) -> str:
    """A UTC offset as ISO 8601 writes it: ``-05:00``, ``+05:30`` (``+00:00`` for UTC)."""
    seconds = int(offset.total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")


def offsets(zone: str, first: str | None, last: str | None) -> list[tuple[str, str]]:
    """The zone's offsets over the stored times from ``first`` to ``last`` (and now): pairs of the stored
    time each offset is in force from ("" for the first) and the offset, oldest first."""
    tz = ZoneInfo(zone)
    now = datetime.now(UTC)
    start = _stored(first) or now
    end = max(_stored(last) or now, now)
    moment = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    end += timedelta(days=2)

    def offset(at: datetime) -> timedelta:
        return at.astimezone(tz).utcoffset() or timedelta()

    found = [("", offset(moment))]
    while moment < end:
        following = moment + timedelta(days=1)
        if offset(following) != offset(moment):  # a change within the day: to the second it happens
            lo, hi = moment, following
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                lo, hi = (lo, mid) if offset(mid) != offset(moment) else (mid, hi)
            found.append((to_iso(hi.replace(microsecond=0)), offset(following)))
        moment = following
    return [(since, offset_text(value)) for since, value in found]


def _stored(text: object) -> datetime | None:
    """A stored time as an aware moment; None for anything else (no bound then)."""
    try:
        moment = datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None
    return moment if moment is None or moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# OWASP CSV injection: text starting with ``=``, ``+``, ``-``, ``@``, tab or return is read as a formula by
# spreadsheets; the query quotes it (``db.statements.reports``).
# A spreadsheet whose list separator is ``;`` (or tab) starts a new cell after one inside our
# text, so a formula may hide there too (``Ann;=cmd|' /C calc'!A0``). In the CSV this query
# writes, a separator followed by one of these can only be inside a quoted text cell: every
# unquoted cell is a number or a date.
_AFTER_SEPARATOR = re.compile(rb"[,;\t][ \t]*(?=[=+\-@])")
_FRAGMENT_END = re.compile(rb'[,;\t"\r\n]')
# Digits, spaces, brackets and dashes call nothing: a phone number is left readable.
_NUMBER = re.compile(rb"[+-]?\d[\d ().-]*")


def _quote_after_separator(match: re.Match[bytes]) -> bytes:
    text = match.string
    end = _FRAGMENT_END.search(text, match.end())
    fragment = text[match.end() : end.start() if end else len(text)].strip()
    return match.group() if _NUMBER.fullmatch(fragment) else match.group() + b"'"


def check_format(fmt: str) -> None:
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(EXPORT_FORMATS)})")


def assemble(
    batches: Iterator[Sequence[Sequence[bytes]]], *, fmt: ExportFormat, items: bool = False
) -> Iterator[tuple[bytes, int]]:
    """The export's chunks from batches of finished lines (rows of one column, as bytes)."""
    if fmt == "csv":
        yield (",".join(export_columns(items=items)) + "\r\n").encode(), 0
    elif fmt == "json":
        yield b"[", 0
    separator = b"\n"
    for rows in batches:
        lines = [row[0] for row in rows]
        if fmt == "json":
            yield separator + b",\n".join(lines), len(lines)
            separator = b",\n"
        elif fmt == "csv":
            yield _AFTER_SEPARATOR.sub(_quote_after_separator, b"".join(lines)), len(lines)
        else:
            yield b"".join(lines), len(lines)
    if fmt == "json":
        yield (b"\n]\n" if separator == b",\n" else b"]\n"), 0
