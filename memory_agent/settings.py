"""All configuration in one validated object, read from the environment (and .env.local / .env)."""

from __future__ import annotations

import re
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from db import Repository
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
    # Where refused writes wait to be replayed; another filesystem keeps them when the database's is full.
    spool_dir: Path | None = Field(default=None, validation_alias="MEMORY_AGENT_SPOOL_DIR")
    # Transcripts and free-text comments are kept this long; orders and ratings (the books) stay.
    keep_transcripts_days: int = Field(default=90, ge=1, le=3650, validation_alias="MEMORY_AGENT_KEEP_TRANSCRIPTS_DAYS")
    # Phone numbers are a hint of who calls, unless the deployment trusts caller ID, or the SIP trunk
    # maps the carrier's STIR/SHAKEN attestation into this participant attribute ("A": verified).
    trust_caller_id: bool = Field(default=False, validation_alias="MEMORY_AGENT_TRUST_CALLER_ID")
    attestation_attribute: str | None = Field(default=None, validation_alias="MEMORY_AGENT_ATTESTATION_ATTRIBUTE")
    recall_budget_ms: int = Field(default=300, ge=1, le=10_000, validation_alias="MEMORY_AGENT_RECALL_BUDGET_MS")
    # The restaurant's IANA time zone: its days and hours in the dashboard, views and export.
    timezone: str = Field(default="UTC", validation_alias="MEMORY_AGENT_TIMEZONE")
    # The restaurant file (name, hours, kitchen, staff number, menu); the packaged Bella Vista by default.
    restaurant_file: Path | None = Field(default=None, validation_alias="MEMORY_AGENT_RESTAURANT")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", validation_alias="MEMORY_AGENT_LOG_LEVEL"
    )

    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    llm_model: str = Field(default="gpt-4o-mini", validation_alias="MEMORY_AGENT_LLM_MODEL")
    tts_voice: str = Field(default="alloy", validation_alias="MEMORY_AGENT_TTS_VOICE")

    deepgram_api_key: SecretStr | None = Field(default=None, validation_alias="DEEPGRAM_API_KEY")
    livekit_url: str | None = Field(default=None, validation_alias="LIVEKIT_URL")
    livekit_api_key: SecretStr | None = Field(default=None, validation_alias="LIVEKIT_API_KEY")
    livekit_api_secret: SecretStr | None = Field(default=None, validation_alias="LIVEKIT_API_SECRET")
    # Set for explicit dispatch (telephony): LiveKit then sends only the jobs that name this agent.
    agent_name: str = Field(default="", max_length=128, validation_alias="LIVEKIT_AGENT_NAME")
    # Connection attempts after the first; 3 gives up on an unreachable server within about 10 s.
    livekit_retries: int = Field(default=3, ge=0, le=100, validation_alias="MEMORY_AGENT_LIVEKIT_RETRIES")

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        name = value.strip() or "UTC"
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (use an IANA name such as America/New_York)") from None
        return name

    @field_validator("db", mode="before")
    @classmethod
    def _path_unless_url(cls, value: object) -> object:
        from db import is_postgres_url

        return Path(value) if isinstance(value, str) and not is_postgres_url(value) else value

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

    def repository(self, *, retention: bool = True) -> AbstractAsyncContextManager[Repository]:
        """The database as these settings describe it: its spool folder and (unless told not to,
        for commands that choose their own) the retention of transcripts applied when it opens."""
        from db import open_repository

        keep = timedelta(days=self.keep_transcripts_days) if retention else None
        return open_repository(
            self.db,
            spool_dir=self.spool_dir,
            keep_transcripts=keep,
            host_id=self.host_id,
            lease=timedelta(seconds=self.lease_s),
            erasure_key_file=self.erasure_key_file,
        )

    def restaurant(self) -> Restaurant:
        """The restaurant, validated (read once per process); raises ``RestaurantError``, a line per mistake."""
        from memory_agent.restaurant import load_restaurant

        return load_restaurant(self.restaurant_file, timezone=self.timezone)

    @property
    def recall_budget_s(self) -> float:
        return self.recall_budget_ms / 1000


_FIELDS = {
    str(field.validation_alias): name
    for name, field in Settings.model_fields.items()
    if isinstance(field.validation_alias, str)
}
