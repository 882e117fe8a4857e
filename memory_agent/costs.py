"""What a call cost: its usage at the providers' prices (``Settings.prices``), in millionths of the
currency's unit (a call costs fractions of a cent), exactly: integer arithmetic on the usage, decimal prices."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from db.schema.models import CallUsage
from memory_agent.settings import Prices

MICROS = 1_000_000  # millionths of the currency's unit in one unit
_MILLION = Decimal(1_000_000)
_MS_PER_MINUTE = Decimal(60_000)


def cost_micros(usage: CallUsage, prices: Prices) -> int:
    """The call's cost: uncached input, cached input and output tokens, minutes of speech recognized and
    characters spoken, each at its price; rounded half up to a millionth."""
    return usage_cost_micros(
        prices,
        prompt_tokens=usage.llm_prompt_tokens,
        cached_tokens=usage.llm_cached_tokens,
        completion_tokens=usage.llm_completion_tokens,
        stt_audio_ms=usage.stt_audio_ms,
        tts_characters=usage.tts_characters,
    )


def usage_cost_micros(
    prices: Prices,
    *,
    prompt_tokens: int,
    cached_tokens: int,
    completion_tokens: int,
    stt_audio_ms: int,
    tts_characters: int,
) -> int:
    """``cost_micros`` from the usage's columns (the dashboard's SQL function ``call_cost``)."""
    cached = min(cached_tokens, prompt_tokens)
    per_million = (
        (prompt_tokens - cached) * prices.llm_input
        + cached * prices.llm_cached
        + completion_tokens * prices.llm_output
        + tts_characters * prices.tts
    )
    cost = per_million / _MILLION + stt_audio_ms * prices.stt_minute / _MS_PER_MINUTE
    return int((cost * MICROS).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def prices_config(prices: Prices) -> dict[str, str]:
    """The prices as the dashboard's plugin configuration holds them (exact decimal text)."""
    return {name: str(getattr(prices, name)) for name in Prices.__dataclass_fields__}


def prices_from_config(config: dict[str, str] | None) -> Prices:
    """The prices in the dashboard's configuration; the defaults for those it does not name."""
    return Prices(**{name: Decimal(value) for name, value in (config or {}).items()})
