"""All configuration in one validated object, read from the environment (and .env.local / .env)."""

from __future__ import annotations

import re
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from db import Repository
    from memory_agent.call import CallConfig
    from memory_agent.replies import ReplyLimits
    from memory_agent.restaurant import Restaurant

_PLACEHOLDER = re.compile(r"your-project|changeme|<[^>]*>", re.IGNORECASE)


class Settings(BaseSettings):
    """Read once by the entrypoint (CLI or worker) and passed down; nothing else reads the environment."""

    model_config = SettingsConfigDict(env_file=(".env", ".env.local"), env_file_encoding="utf-8", extra="ignore")

    # A SQLite file, or a postgresql:// URL (kept as text: as a path its "//" would fold into one "/").
    db: Path | str = Field(default=Path("memory.db"), validation_alias="MEMORY_AGENT_DB")
    # PostgreSQL only: this worker's host in the heartbeats (default: the hostname), how long a heartbeat
    # stands for the host's open calls, and the key of the erasure audit's hashes (default: in the spool folder).
    host_id: str | None = Field(default=None, max_length=200, validation_alias="MEMORY_AGENT_HOST_ID")
    lease_s: float = Field(default=30.0, ge=1, le=3600, validation_alias="MEMORY_AGENT_LEASE_S")
    erasure_key_file: Path | None = Field(default=None, validation_alias="MEMORY_AGENT_ERASURE_KEY_FILE")
    # How often the running worker closes the calls of processes that died (PostgreSQL: of hosts whose lease ran out).
    sweep_s: float = Field(default=30.0, ge=0.1, le=3600, validation_alias="MEMORY_AGENT_SWEEP_S")
    # Where refused writes wait to be replayed; another filesystem keeps them when the database's is full.
    spool_dir: Path | None = Field(default=None, validation_alias="MEMORY_AGENT_SPOOL_DIR")
    # Transcripts and free-text comments are kept this long; orders and ratings (the books) stay.
    keep_transcripts_days: int = Field(default=90, ge=1, le=3650, validation_alias="MEMORY_AGENT_KEEP_TRANSCRIPTS_DAYS")
    # Phone numbers are a hint of who calls, unless the deployment trusts caller ID, or the SIP trunk
    # maps the carrier's STIR/SHAKEN attestation into this participant attribute (full attestation: verified).
    trust_caller_id: bool = Field(default=False, validation_alias="MEMORY_AGENT_TRUST_CALLER_ID")
    attestation_attribute: str | None = Field(default=None, validation_alias="MEMORY_AGENT_ATTESTATION_ATTRIBUTE")
    # The values of that attribute that mean full attestation, comma-separated, in any case; a value may
    # also come as a "verstat=" parameter inside the header (see memory_agent.identity.is_attested).
    attestation_accepted: str = Field(
        default="A,TN-Validation-Passed-A,TN-Validation-Passed", validation_alias="MEMORY_AGENT_ATTESTATION_ACCEPTED"
    )
    # Guessing is bounded: names matching none of a number's profiles allowed from that number in one
    # call and in 24 hours; past either, the call goes on without memory and is noted for the owner.
    name_tries_per_call: int = Field(default=2, ge=1, le=20, validation_alias="MEMORY_AGENT_NAME_TRIES_PER_CALL")
    name_tries_per_day: int = Field(default=5, ge=1, le=1000, validation_alias="MEMORY_AGENT_NAME_TRIES_PER_DAY")
    # How long the greeting may wait for the caller lookup; past it, the greeting goes ahead and the
    # memory reaches the agents when the lookup is back.
    recall_budget_ms: int = Field(default=300, ge=0, le=10_000, validation_alias="MEMORY_AGENT_RECALL_BUDGET_MS")
    # How long what needs the caller's memory (the name check, a reorder, past orders) waits for the lookup.
    memory_wait_ms: int = Field(default=10_000, ge=100, le=120_000, validation_alias="MEMORY_AGENT_MEMORY_WAIT_MS")
    # How long placing an order, or a completed turn, waits for the database before the fsynced spool keeps it.
    write_budget_ms: int = Field(default=300, ge=1, le=10_000, validation_alias="MEMORY_AGENT_WRITE_BUDGET_MS")
    # The time zone of a restaurant file that names none (the packaged Bella Vista); the restaurant's
    # ``timezone`` is the one every local time is read in, and this may only repeat it, never contradict it.
    timezone: str | None = Field(default=None, validation_alias="MEMORY_AGENT_TIMEZONE")
    # The restaurant file (name, hours, kitchen, staff number, menu); the packaged Bella Vista by default.
    restaurant_file: Path | None = Field(default=None, validation_alias="MEMORY_AGENT_RESTAURANT")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", validation_alias="MEMORY_AGENT_LOG_LEVEL"
    )

    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    llm_model: str = Field(default="gpt-4o-mini", validation_alias="MEMORY_AGENT_LLM_MODEL")
    tts_voice: str = Field(default="alloy", validation_alias="MEMORY_AGENT_TTS_VOICE")
    # Every LLM reply is bounded: a length sized for speech (a reply or a tool call, never a speech), a
    # deadline for its first token and one for the whole reply; past any, the caller hears a recovery line.
    llm_max_tokens: int = Field(default=300, ge=16, le=16_384, validation_alias="MEMORY_AGENT_LLM_MAX_TOKENS")
    llm_first_token_s: float = Field(default=8.0, gt=0, le=300, validation_alias="MEMORY_AGENT_LLM_FIRST_TOKEN_S")
    llm_reply_s: float = Field(default=20.0, gt=0, le=600, validation_alias="MEMORY_AGENT_LLM_REPLY_S")
    # What the providers charge, in the currency of the dashboard's costs (prices change: set yours; the
    # defaults are list prices in US dollars, dated in the README): per million LLM tokens (input, cached
    # input, output), per minute of speech recognized, per million characters spoken.
    price_llm_input: Decimal = Field(default=Decimal("0.15"), ge=0, validation_alias="MEMORY_AGENT_PRICE_LLM_INPUT")
    price_llm_cached: Decimal = Field(default=Decimal("0.075"), ge=0, validation_alias="MEMORY_AGENT_PRICE_LLM_CACHED")
    price_llm_output: Decimal = Field(default=Decimal("0.60"), ge=0, validation_alias="MEMORY_AGENT_PRICE_LLM_OUTPUT")
    price_stt_minute: Decimal = Field(default=Decimal("0.0077"), ge=0, validation_alias="MEMORY_AGENT_PRICE_STT_MINUTE")
    price_tts: Decimal = Field(default=Decimal("15"), ge=0, validation_alias="MEMORY_AGENT_PRICE_TTS")

    deepgram_api_key: SecretStr | None = Field(default=None, validation_alias="DEEPGRAM_API_KEY")
    livekit_url: str | None = Field(default=None, validation_alias="LIVEKIT_URL")
    livekit_api_key: SecretStr | None = Field(default=None, validation_alias="LIVEKIT_API_KEY")
    livekit_api_secret: SecretStr | None = Field(default=None, validation_alias="LIVEKIT_API_SECRET")
    # Set for explicit dispatch (telephony): LiveKit then sends only the jobs that name this agent.
    agent_name: str = Field(default="", max_length=128, validation_alias="LIVEKIT_AGENT_NAME")
    # Connection attempts after the first; 3 gives up on an unreachable server within about 10 s.
    livekit_retries: int = Field(default=3, ge=0, le=100, validation_alias="MEMORY_AGENT_LIVEKIT_RETRIES")
    # How long one connection attempt may take before the server counts as not answering.
    livekit_connect_timeout_s: float = Field(
        default=10.0, gt=0, le=300, validation_alias="MEMORY_AGENT_LIVEKIT_CONNECT_TIMEOUT_S"
    )
    # On SIGTERM the worker takes no new calls and waits this long for running ones, then ends them
    # (each call is written first); fits Kubernetes' 30 s grace period with the 10 s it takes to end them.
    drain_timeout_s: int = Field(default=15, ge=1, le=3600, validation_alias="MEMORY_AGENT_DRAIN_TIMEOUT_S")
    # At the end of a call, how long to wait for the transcript of the caller's last words.
    close_transcript_timeout_s: float = Field(
        default=5.0, ge=0, le=60, validation_alias="MEMORY_AGENT_CLOSE_TRANSCRIPT_TIMEOUT_S"
    )
    # The voice turn (BENCHMARKS.md, "Voice turn latency", has the figures): after the VAD's silence the
    # transcript, and a preemptive LLM request, start; after the endpointing delay from the caller's last
    # speech the turn is over. Shorter answers sooner, but cuts off a caller who pauses mid-sentence.
    vad_min_silence_s: float = Field(default=0.45, ge=0.05, le=3, validation_alias="MEMORY_AGENT_VAD_MIN_SILENCE_S")
    min_endpointing_delay_s: float = Field(
        default=0.5, ge=0, le=10, validation_alias="MEMORY_AGENT_MIN_ENDPOINTING_DELAY_S"
    )
    max_endpointing_delay_s: float = Field(
        default=3.0, ge=0.1, le=30, validation_alias="MEMORY_AGENT_MAX_ENDPOINTING_DELAY_S"
    )
    turn_detection: Literal["vad", "stt"] = Field(default="vad", validation_alias="MEMORY_AGENT_TURN_DETECTION")
    # The LLM starts on the caller's words before their turn is over (and starts again if they go on).
    preemptive_generation: bool = Field(default=True, validation_alias="MEMORY_AGENT_PREEMPTIVE_GENERATION")
    # LiveKit Cloud's session recording (audio, transcripts): off unless opted in, since recordings kept
    # by LiveKit are out of reach of `forget` and of the transcripts' retention.
    record: bool = Field(default=False, validation_alias="MEMORY_AGENT_RECORD")
    # The worker's health endpoint (GET / answers "OK"): all interfaces by default, for container probes;
    # port 8081 for `start`, a free one for `dev` unless set.
    http_host: str = Field(default="0.0.0.0", min_length=1, validation_alias="MEMORY_AGENT_HTTP_HOST")
    http_port: int | None = Field(default=None, ge=0, le=65535, validation_alias="MEMORY_AGENT_HTTP_PORT")

    # Where placed orders are delivered (the outbox): a webhook signed by the Standard Webhooks
    # scheme (its secret as "whsec_" and base64), and Square (an access token and a location).
    webhook_url: str | None = Field(default=None, validation_alias="MEMORY_AGENT_WEBHOOK_URL")
    webhook_secret: SecretStr | None = Field(default=None, validation_alias="MEMORY_AGENT_WEBHOOK_SECRET")
    square_access_token: SecretStr | None = Field(default=None, validation_alias="SQUARE_ACCESS_TOKEN")
    square_location_id: str | None = Field(default=None, validation_alias="SQUARE_LOCATION_ID")
    square_base_url: str = Field(default="https://connect.squareup.com", validation_alias="SQUARE_BASE_URL")
    square_currency: str = Field(default="USD", pattern="^[A-Z]{3}$", validation_alias="SQUARE_CURRENCY")
    # Attempts before a delivery is dead; the wait between them doubles from the first to the longest.
    outbox_attempts: int = Field(default=12, ge=1, le=100, validation_alias="MEMORY_AGENT_OUTBOX_ATTEMPTS")
    outbox_backoff_s: float = Field(default=2.0, gt=0, le=3600, validation_alias="MEMORY_AGENT_OUTBOX_BACKOFF_S")
    outbox_max_backoff_s: float = Field(
        default=600.0, gt=0, le=86_400, validation_alias="MEMORY_AGENT_OUTBOX_MAX_BACKOFF_S"
    )
    # A claimed delivery is due again after this long (a worker killed mid-delivery); longer than a request.
    outbox_lease_s: float = Field(default=60.0, ge=0.5, le=3600, validation_alias="MEMORY_AGENT_OUTBOX_LEASE_S")

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("timezone")
    @classmethod
    def _known_time_zone(cls, value: str | None) -> str | None:
        return known_time_zone(value.strip()) if value and value.strip() else None

    @field_validator("max_endpointing_delay_s")
    @classmethod
    def _max_after_min(cls, value: float, info: ValidationInfo) -> float:
        least = info.data.get("min_endpointing_delay_s")
        if least is not None and value < least:
            raise ValueError(f"must be at least MEMORY_AGENT_MIN_ENDPOINTING_DELAY_S ({least})")
        return value

    @field_validator("attestation_accepted")
    @classmethod
    def _some_attestation(cls, value: str) -> str:
        if not any(part.strip() for part in value.split(",")):
            raise ValueError("name at least one value, e.g. A")
        return value

    @field_validator("db", mode="before")
    @classmethod
    def _path_unless_url(cls, value: object) -> object:
        from db import is_postgres_url

        # Any other URL stays text, to be refused as a URL (a path would fold its "//" and show its password).
        if isinstance(value, str) and not is_postgres_url(value) and "://" not in value:
            return Path(value)
        return value

    @field_validator("spool_dir")
    @classmethod
    def _spool_dir_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a folder")
        return value

    @field_validator(
        "spool_dir",
        "restaurant_file",
        "host_id",
        "erasure_key_file",
        "openai_api_key",
        "openai_base_url",
        "deepgram_api_key",
        "livekit_url",
        "livekit_api_key",
        "livekit_api_secret",
        "http_port",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    def value(self, variable: str) -> str | None:
        """A setting by its environment variable's name, as plain text (secrets unwrapped)."""
        value = getattr(self, _FIELDS[variable])
        return value.get_secret_value() if isinstance(value, SecretStr) else value

    def missing(self, *variables: str) -> list[str]:
        """Which of these variables are unset or still hold a placeholder from .env.example."""
        problems = []
        for variable in variables:
            text = self.value(variable)
            if text is None:
                problems.append(variable)
            elif _PLACEHOLDER.search(text):
                problems.append(f"{variable} (still the placeholder from .env.example)")
        return problems

    def repository(self, *, retention: bool = True, attach: bool = False) -> AbstractAsyncContextManager[Repository]:
        """The database as these settings describe it: its spool folder and (unless told not to,
        for commands that choose their own) the retention of transcripts applied when it opens.
        ``attach``: connections only, to a database the worker's process prepared (a call's process)."""
        from db import open_repository

        keep = timedelta(days=self.keep_transcripts_days) if retention else None
        return open_repository(
            self.db,
            attach=attach,
            spool_dir=self.spool_dir,
            keep_transcripts=keep,
            host_id=self.host_id,
            lease=timedelta(seconds=self.lease_s),
            erasure_key_file=self.erasure_key_file,
            sweep=timedelta(seconds=self.sweep_s),
        )

    def restaurant(self) -> Restaurant:
        """The restaurant, validated (read once per process); raises ``RestaurantError``, a line per mistake."""
        from memory_agent.restaurant import load_restaurant

        return load_restaurant(self.restaurant_file, timezone=self.timezone)

    def call_config(self) -> CallConfig:
        """How every call runs, from these settings (reads the restaurant file: raises ``RestaurantError``)."""
        from memory_agent.call import CallConfig

        restaurant = self.restaurant()
        return CallConfig(
            restaurant=restaurant,
            timezone=restaurant.timezone,
            recall_budget_s=self.recall_budget_s,
            memory_wait_s=self.memory_wait_s,
            write_budget_s=self.write_budget_s,
            trust_caller_id=self.trust_caller_id,
            guess_limits=self.guess_limits,
            reply_limits=self.reply_limits,
            turn=self.voice_turn,
            close_transcript_timeout_s=self.close_transcript_timeout_s,
            record=self.record,
        )

    @property
    def recall_budget_s(self) -> float:
        return self.recall_budget_ms / 1000

    @property
    def accepted_attestations(self) -> frozenset[str]:
        return frozenset(value.strip() for value in self.attestation_accepted.split(",") if value.strip())

    @property
    def guess_limits(self) -> GuessLimits:
        return GuessLimits(per_call=self.name_tries_per_call, per_day=self.name_tries_per_day)

    @property
    def memory_wait_s(self) -> float:
        return self.memory_wait_ms / 1000

    @property
    def write_budget_s(self) -> float:
        return self.write_budget_ms / 1000

    @property
    def reply_limits(self) -> ReplyLimits:
        from memory_agent.replies import ReplyLimits

        return ReplyLimits(
            max_tokens=self.llm_max_tokens, first_token_s=self.llm_first_token_s, reply_s=self.llm_reply_s
        )

    @property
    def prices(self) -> Prices:
        return Prices(
            llm_input=self.price_llm_input,
            llm_cached=self.price_llm_cached,
            llm_output=self.price_llm_output,
            stt_minute=self.price_stt_minute,
            tts=self.price_tts,
        )

    @property
    def voice_turn(self) -> VoiceTurn:
        return VoiceTurn(
            vad_min_silence_s=self.vad_min_silence_s,
            min_endpointing_delay_s=self.min_endpointing_delay_s,
            max_endpointing_delay_s=self.max_endpointing_delay_s,
            turn_detection=self.turn_detection,
            preemptive_generation=self.preemptive_generation,
        )


def invalid_setting(exc: ValidationError) -> str:
    """The first mistake in the settings as one line, named by its environment variable."""
    first = exc.errors()[0]
    name = ".".join(map(str, first["loc"]))
    field = Settings.model_fields.get(name)
    if field is not None and isinstance(field.validation_alias, str):
        name = field.validation_alias
    return f"invalid setting {name}: {first['msg'].removeprefix('Value error, ')}"


def known_time_zone(name: str) -> str:
    """``name`` if it is an IANA time zone; otherwise a ``ValueError`` that says what to write."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as America/New_York)") from None
    return name


@dataclass(frozen=True)
class Prices:
    """What the providers charge: per million LLM tokens (input, cached input, output), per minute of
    speech recognized (``stt_minute``), per million characters spoken (``tts``)."""

    llm_input: Decimal = Decimal("0.15")
    llm_cached: Decimal = Decimal("0.075")
    llm_output: Decimal = Decimal("0.60")
    stt_minute: Decimal = Decimal("0.0077")
    tts: Decimal = Decimal("15")


@dataclass(frozen=True)
class VoiceTurn:
    """When the caller's turn is over: Silero VAD's silence, LiveKit's endpointing delays, its turn detection
    mode and preemptive generation (LiveKit's own defaults: 0.55 s, 0.5 s, 3.0 s, "vad" with a VAD, on)."""

    vad_min_silence_s: float = 0.45
    min_endpointing_delay_s: float = 0.5
    max_endpointing_delay_s: float = 3.0
    turn_detection: Literal["vad", "stt"] = "vad"
    preemptive_generation: bool = True


LIVEKIT_DEFAULT_TURN = VoiceTurn(vad_min_silence_s=0.55)


@dataclass(frozen=True)
class GuessLimits:
    """Wrong names (matching none of the number's profiles) allowed from one number per call and per day."""

    per_call: int = 2
    per_day: int = 5


_FIELDS = {
    str(field.validation_alias): name
    for name, field in Settings.model_fields.items()
    if isinstance(field.validation_alias, str)
}
