"""All configuration in one validated object, read from the environment (and .env.local / .env)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDER = re.compile(r"your-project|changeme|<[^>]*>", re.IGNORECASE)


class Settings(BaseSettings):
    """Read once by the entrypoint (CLI or worker) and passed down; nothing else reads the environment."""

    model_config = SettingsConfigDict(env_file=(".env", ".env.local"), env_file_encoding="utf-8", extra="ignore")

    db: Path = Field(default=Path("memory.db"), validation_alias="MEMORY_AGENT_DB")
    recall_budget_ms: int = Field(default=300, ge=1, le=10_000, validation_alias="MEMORY_AGENT_RECALL_BUDGET_MS")
    log_level: str = Field(default="INFO", validation_alias="MEMORY_AGENT_LOG_LEVEL")

    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    llm_model: str = Field(default="gpt-4o-mini", validation_alias="MEMORY_AGENT_LLM_MODEL")
    tts_voice: str = Field(default="alloy", validation_alias="MEMORY_AGENT_TTS_VOICE")

    deepgram_api_key: SecretStr | None = Field(default=None, validation_alias="DEEPGRAM_API_KEY")
    livekit_url: str | None = Field(default=None, validation_alias="LIVEKIT_URL")
    livekit_api_key: SecretStr | None = Field(default=None, validation_alias="LIVEKIT_API_KEY")
    livekit_api_secret: SecretStr | None = Field(default=None, validation_alias="LIVEKIT_API_SECRET")

    @field_validator(
        "openai_api_key",
        "openai_base_url",
        "deepgram_api_key",
        "livekit_url",
        "livekit_api_key",
        "livekit_api_secret",
        mode="before",
    )
    @classmethod
    def _no_placeholders(cls, value: object) -> object:
        """Empty means unset; a value copied unchanged from .env.example is refused."""
        if isinstance(value, str):
            if not value.strip():
                return None
            if _PLACEHOLDER.search(value):
                raise ValueError(f"{value!r} is a placeholder from .env.example: put the real value")
        return value

    @property
    def recall_budget_s(self) -> float:
        return self.recall_budget_ms / 1000
