"""The live providers (OpenAI LLM and TTS, Deepgram STT), built from Settings."""

from __future__ import annotations

from typing import Any

from livekit.plugins import deepgram, openai

from memory_agent.settings import Settings


def _openai_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if settings.openai_api_key is not None:
        options["api_key"] = settings.openai_api_key.get_secret_value()
    elif settings.openai_base_url is not None:
        options["api_key"] = "unused"  # local OpenAI-compatible servers still want a key
    if settings.openai_base_url is not None:
        options["base_url"] = settings.openai_base_url
    return options


def make_llm(settings: Settings) -> openai.LLM:
    return openai.LLM(model=settings.llm_model, **_openai_options(settings))


def make_tts(settings: Settings) -> openai.TTS:
    return openai.TTS(voice=settings.tts_voice, **_openai_options(settings))


def make_stt(settings: Settings) -> deepgram.STT:
    key = settings.deepgram_api_key
    return deepgram.STT(api_key=key.get_secret_value()) if key is not None else deepgram.STT()
