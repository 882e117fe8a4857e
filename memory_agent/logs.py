"""Logging without personal data, at every level.

LiveKit attaches what callers and the LLM said to its debug records (attributes named
``lk.pii.*``), and aiosqlite logs every statement with its parameters (phone numbers among
them). The filter blanks the first and drops the second; the product's own records name callers
only through ``identity.redact``.
"""

from __future__ import annotations

import logging

REDACTED = "[redacted]"


class PrivacyFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("aiosqlite") and record.levelno < logging.WARNING:
            return False
        for key in [key for key in vars(record) if ".pii" in key or key.startswith("pii")]:
            setattr(record, key, REDACTED)
        return True


_FILTER = PrivacyFilter()


def protect_logs() -> None:
    """Put the filter on every handler of the root logger, and on the loggers that carry personal data."""
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    for name in ("livekit", "livekit.agents", "aiosqlite"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
