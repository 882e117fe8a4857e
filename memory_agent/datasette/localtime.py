"""The restaurant's time zone for SQL: local days and hours as bounds in stored (UTC) time.

Stored times are UTC text whose order is time order, so a local day is a range of stored text:
a query finds a day's orders through the index instead of converting every stored time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from db.clock import to_iso

_BEFORE_ALL = ""  # sorts before any stored time
_AFTER_ALL = "9999"  # sorts after any stored time


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError with a readable message if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as America/New_York or UTC)") from None


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


def local_date(text: object, name: str) -> str | None:
    """A stored UTC time -> its local date ``YYYY-MM-DD``; None if it is not a time."""
    moment = _local(text, name)
    return None if moment is None else moment.date().isoformat()


def local_time(text: object, name: str) -> str | None:
    """A stored UTC time -> local ``YYYY-MM-DD HH:MM``; None if it is not a time."""
    moment = _local(text, name)
    return None if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def _local(text: object, name: str) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone(name))


def hour_start_utc(day_text: object, hour: object, name: str) -> str | None:
    """Local ``day_text`` at ``hour`` o'clock (24 is the next midnight) -> stored-time text."""
    day = _date(day_text)
    if day is None or not isinstance(hour, int) or not 0 <= hour <= 24:
        return None
    moment = datetime.combine(day, time(), zone(name)) + timedelta(hours=hour)
    # Wall-clock hours: the hour is added on the local clock, then converted.
    local = datetime(moment.year, moment.month, moment.day, moment.hour, tzinfo=zone(name))
    return to_iso(local.astimezone(UTC))


def local_readable(text: object, name: str) -> str | None:
    """A stored UTC time -> ``YYYY-MM-DD HH:MM`` and the zone's abbreviation (``EDT``); None if not a time."""
    moment = _local(text, name)
    return None if moment is None else moment.strftime("%Y-%m-%d %H:%M %Z")
