"""The restaurant's time zone in SQL: UTC offsets as periods, and local days as UTC bounds.

Stored times are UTC text. SQLite converts a time with a fixed modifier (``date(t, '-8 hours')``),
so a zone is given to SQL as the list of its periods of constant offset; a query joins its rows
to the period they fall in and shifts each by that period's offset, all in native SQL.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from db.clock import to_iso

FIRST_YEAR = 1970
LAST_YEAR = 2100
_BEFORE_ALL = ""  # sorts before any stored time
_AFTER_ALL = "9999"  # sorts after any stored time


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError with a readable message if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as America/New_York or UTC)") from None


def _offset_seconds(tz: ZoneInfo, moment: datetime) -> int:
    offset = moment.astimezone(tz).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


@lru_cache(maxsize=16)
def periods(name: str) -> tuple[tuple[str, str, str], ...]:
    """``(start, stop, modifier)`` rows covering all time: UTC text bounds and SQLite's shift."""
    tz = zone(name)
    start = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC)
    end = datetime(LAST_YEAR, 1, 1, tzinfo=UTC)
    # Offsets change at most a few times a year, always on the hour or half hour: find each
    # change hour by hour within the days where the offset at midnight differs.
    changes: list[tuple[datetime, int]] = [(start, _offset_seconds(tz, start))]
    day = start
    while day < end:
        following = day + timedelta(days=1)
        if _offset_seconds(tz, following) != changes[-1][1]:
            moment = day
            while moment < following:
                moment += timedelta(minutes=15)
                offset = _offset_seconds(tz, moment)
                if offset != changes[-1][1]:
                    changes.append((moment, offset))
                    break
        day = following
    rows = []
    for n, (moment, offset) in enumerate(changes):
        low = _BEFORE_ALL if n == 0 else to_iso(moment)[:19]
        high = to_iso(changes[n + 1][0])[:19] if n + 1 < len(changes) else _AFTER_ALL
        rows.append((low, high, f"{offset:+d} seconds"))
    return tuple(rows)


def periods_json(name: str) -> str:
    """The periods as one JSON text, for SQL's ``json_each``."""
    return _periods_json(name)


@lru_cache(maxsize=16)
def _periods_json(name: str) -> str:
    return json.dumps([list(row) for row in periods(name)])


def local_midnight(day: date, name: str) -> datetime:
    """The UTC moment at which ``day`` begins in the zone ``name``."""
    return datetime.combine(day, time(), zone(name)).astimezone(UTC)


def day_start_utc(text: object, name: str) -> str:
    """A local date ``YYYY-MM-DD`` -> the stored-time text of its first moment; '' (no bound) if not a date."""
    day = _date(text)
    return _BEFORE_ALL if day is None else to_iso(local_midnight(day, name))


def day_end_utc(text: object, name: str) -> str:
    """A local date -> the stored-time text of the next local midnight; '9999' (no bound) if not a date."""
    day = _date(text)
    if day is None or day == date.max:
        return _AFTER_ALL
    return to_iso(local_midnight(day + timedelta(days=1), name))


def _date(text: object) -> date | None:
    if not isinstance(text, str):
        return None
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        return None
