"""Pure helpers that turn data into words the agent can say."""

from __future__ import annotations


def format_cents(cents: int) -> str:
    """1450 -> '$14.50'."""
    sign = "-" if cents < 0 else ""
    dollars, rest = divmod(abs(cents), 100)
    return f"{sign}${dollars:,}.{rest:02d}"


def join_words(parts: list[str]) -> str:
    """['a', 'b', 'c'] -> 'a, b and c'."""
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]
