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
