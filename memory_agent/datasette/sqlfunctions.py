"""SQL functions the owners' queries call: the caller's key from any form of number, safe search."""

from __future__ import annotations

import re

from memory_agent.identity import looks_like_phone, normalize_phone

_URI_PREFIXES = ("tel:", "sip:")
_WORDLESS = re.compile(r"^\W*$")


def caller_key(text: object) -> str | None:
    """What the owner typed -> the stored identity: '555-000-0030', 'tel:+1…' and 'sip:+1…@pbx' are '+15550000030'."""
    if not isinstance(text, str):
        return None
    value = text.strip()
    if value.lower().startswith(_URI_PREFIXES) or looks_like_phone(value):
        return normalize_phone(value) or value
    return value


def search_terms(text: object) -> str:
    """Words as typed -> an FTS5 query that cannot be a syntax error: each word is a quoted phrase.

    ``didn't``, ``"cold``, ``-crust`` and ``OR`` are searched as text; all words must appear.
    An empty search matches nothing.
    """
    if not isinstance(text, str):
        return '""'
    words = [word for word in text.split() if not _WORDLESS.match(word)]
    return " ".join('"' + word.replace('"', '""') + '"' for word in words) or '""'


_END_REASONS = {
    "participant_disconnected": "the caller hung up",
    "caller_hung_up": "the caller hung up",
    "user_initiated": "the agent ended the call",
    "task_completed": "the agent ended the call",
    "caller_silent": "the caller went silent, so the agent hung up",
    "job_shutdown": "the agent's worker shut down during the call",
    "start_failed": "the call could not start",
    "error": "a speech or language service failed",
}


def end_reason_words(reason: object) -> str:
    """Why a call ended, as an owner says it (the framework's codes, and the recovery's own notes)."""
    if not isinstance(reason, str) or not reason.strip():
        return "still open, or not recorded"
    if reason.startswith("abandoned:"):
        if "died" in reason:
            return "cut off: the program running the call stopped"
        return "cut off: no activity for hours"
    return _END_REASONS.get(reason, reason.replace("_", " "))


_STATUSES = {"in_progress": "in progress", "placed": "placed", "abandoned": "abandoned"}


def status_words(status: object) -> object:
    """An order's status in words (``in_progress`` is "in progress")."""
    return _STATUSES.get(status, status) if isinstance(status, str) else status


OUTCOME_WORDS = {
    "order_placed": "Order placed",
    "order_for_later": "Order for later",
    "transferred": "Put through to staff",
    "message_taken": "Message taken",
    "no_order": "No order",
    "hung_up": "Caller hung up",
    "erased": "Erased at their request",
}
TRANSFER_REASON_WORDS = {
    "asked_for_person": "Asked for a person",
    "complaint": "A complaint",
    "cannot_help": "The agent could not help",
    "misunderstanding": "Kept misunderstanding",
    "other": "Other",
}
TRANSFER_STATUS_WORDS = {
    "transferred": "put through",
    "failed": "transfer failed",
    "unavailable": "nobody to take it",
}


def outcome_words(outcome: object) -> str:
    """How a call ended for the restaurant, in words."""
    return OUTCOME_WORDS.get(outcome, "Not recorded") if isinstance(outcome, str) else "Not recorded"


def words_sql(column: str, words: dict[str, str], otherwise: str) -> str:
    """``words`` as a SQL ``CASE`` over ``column``: the same words as in Python, at SQL's speed."""
    branches = " ".join(f"WHEN '{code}' THEN '{text}'" for code, text in words.items())
    return f"CASE {column} {branches} ELSE '{otherwise}' END"


def in_words(column: object, value: object) -> object:
    """A cell or a facet's value in words when its column holds one of our codes, else the value itself."""
    if column == "end_reason":
        return end_reason_words(value)
    if not isinstance(value, str):
        return value
    if column == "outcome":  # a call's, or a name tried on a number (identity_attempts)
        return OUTCOME_WORDS.get(value) or value.replace("_", " ")
    if column in ("transfer_reason", "reason"):
        return TRANSFER_REASON_WORDS.get(str(value), value)
    if column == "transfer_status":
        return TRANSFER_STATUS_WORDS.get(str(value), value)
    if column in ("status", "order_status"):
        return status_words(value)
    return value
