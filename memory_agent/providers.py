"""The providers a call speaks and listens with, built from Settings: live OpenAI LLM and TTS, Deepgram STT."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livekit.agents import llm, stt, tts, vad
from livekit.plugins import deepgram, openai

from memory_agent.settings import Settings


@dataclass(frozen=True)
class Providers:
    """What one call's session is built with; ``vad=None`` means the worker's prewarmed Silero VAD, and
    no ``stt``/``tts`` a typed conversation (``console --text``)."""

    llm: llm.LLM
    stt: stt.STT | None
    tts: tts.TTS | None
    vad: vad.VAD | None = None


# The worker builds each call's providers with one of these; tests substitute offline ones.
ProviderFactory = Callable[[Settings], Providers]


def live_providers(settings: Settings) -> Providers:
    """OpenAI (or any OpenAI-compatible server) for the LLM and TTS, Deepgram for speech recognition."""
    return Providers(llm=make_llm(settings), stt=make_stt(settings), tts=make_tts(settings))


def text_providers(settings: Settings) -> Providers:
    """The LLM alone, for a conversation typed in the console: nothing to hear or to speak."""
    return Providers(llm=make_llm(settings), stt=None, tts=None)


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
    """The LLM with its reply limit and an explicit ``tool_choice`` (servers such as llama-cpp-python's offer
    the tools only when a request names one; LiveKit leaves it out of requests that carry no tools)."""
    options = _openai_options(settings)
    if settings.openai_base_url is not None:
        # Other OpenAI-compatible servers know the older name of the limit, some only that one.
        options["extra_body"] = {"max_tokens": settings.llm_max_tokens}
    return openai.LLM(
        model=settings.llm_model, max_completion_tokens=settings.llm_max_tokens, tool_choice="auto", **options
    )


def make_tts(settings: Settings) -> openai.TTS:
    return openai.TTS(voice=settings.tts_voice, **_openai_options(settings))


def make_stt(settings: Settings) -> deepgram.STT:
    key = settings.deepgram_api_key
    return deepgram.STT(api_key=key.get_secret_value()) if key is not None else deepgram.STT()
