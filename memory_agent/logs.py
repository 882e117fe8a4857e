"""Logging without personal data, at every level.

LiveKit attaches what callers and the LLM said to its debug records (attributes named
``lk.pii.*``), names rooms and participants (a phone call's carry the caller's number), and
aiosqlite logs every statement with its parameters (phone numbers among them). The filter blanks
the first, masks the numbers in the second and drops the third; the product's own records name
callers only through ``identity.redact``.
"""

from __future__ import annotations

import logging

REDACTED = "[redacted]"
# LiveKit names the room and the participant in its records; a phone call's carry the caller's number.
MASKED = ("room", "participant", "participant_identity")


class PrivacyFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("aiosqlite") and record.levelno < logging.WARNING:
            return False
        for key in [key for key in vars(record) if ".pii" in key or key.startswith("pii")]:
            setattr(record, key, REDACTED)
        for key in MASKED:
            if isinstance(value := getattr(record, key, None), str):
                from memory_agent.identity import redact  # loaded by the first record that needs it

                setattr(record, key, redact(value))
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
