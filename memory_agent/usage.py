"""What a call uses of the paid providers: its LLM replies as the agents count them, and the tokens,
seconds of speech recognized and characters spoken that LiveKit's session adds up per model."""

from __future__ import annotations

from livekit.agents.metrics import AgentSessionUsage, LLMModelUsage, STTModelUsage, TTSModelUsage

from db.schema.models import CallUsage
from memory_agent.replies import Ending


def count_reply(usage: CallUsage, ending: Ending) -> None:
    """One LLM request made, and how its reply ended."""
    usage.llm_requests += 1
    usage.llm_cut += ending == "cut"
    usage.llm_cancelled += ending == "cancelled"


def measured(counted: CallUsage, session: AgentSessionUsage) -> CallUsage:
    """The call's usage: the replies ``counted``, with the session's tokens, speech seconds and characters."""
    usage = counted.model_copy()
    for model in session.model_usage:
        if isinstance(model, LLMModelUsage):
            usage.llm_prompt_tokens += model.input_tokens
            usage.llm_cached_tokens += model.input_cached_tokens
            usage.llm_completion_tokens += model.output_tokens
        elif isinstance(model, STTModelUsage):
            usage.stt_audio_ms += round(model.audio_duration * 1000)
        elif isinstance(model, TTSModelUsage):
            usage.tts_characters += model.characters_count
    return usage
