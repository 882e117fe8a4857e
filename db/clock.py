"""Timestamps: timezone-aware UTC, stored as ISO 8601 text."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds, so text order is time order."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: timestamps must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def utcnow_iso() -> str:
    return to_iso(utcnow())


def from_epoch(seconds: float) -> str:
    return to_iso(datetime.fromtimestamp(seconds, UTC))
