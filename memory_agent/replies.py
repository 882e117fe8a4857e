"""Every LLM reply bounded: a first-token deadline, a whole-reply deadline, a length limit, and no
chat-template control tokens, whichever OpenAI-compatible server answers.

A reply cut off or timed out ends with ``RECOVERY_LINE`` (the caller is never left in silence) and is
logged without its text. Pure stream handling, tested without LiveKit's session.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

from livekit.agents import llm

log = logging.getLogger("memory_agent")

RECOVERY_LINE = "Sorry, I lost my train of thought. Could you say that again?"

# Servers that ignore the reply limit are held to it here, at a generous length per token.
CHARS_PER_TOKEN = 6

# Control tokens of the common chat templates (ChatML, Llama 3, Gemma, Mistral, Phi): the ones that end a
# turn end the reply there (what follows is the model playing the next turn); the others are dropped,
# with the role name a turn-opening one carries.
_END = r"<\|im_end\|>|<\|eot_id\|>|<\|end_of_text\|>|<\|endoftext\|>|<\|end\|>|<end_of_turn>|<eos>|</s>"
_OPEN = (
    r"<\|im_start\|>\s*(?:system|user|assistant)?\s*"
    r"|<\|start_header_id\|>\s*(?:system|user|assistant)?\s*(?:<\|end_header_id\|>\s*)?"
    r"|<start_of_turn>\s*(?:user|model)?\s*"
    r"|<\|(?:system|user|assistant)\|>\s*"
)
_OTHER = r"<\|[a-z_0-9]{1,30}\|>|<bos>|<s>|\[/?INST\]|<</?SYS>>"
_CONTROL = re.compile(f"(?P<end>{_END})|(?P<open>{_OPEN})|{_OTHER}")
_ROLE_SO_FAR = re.compile(r"[a-z]{0,9}")
# A tail that may be the start of a control token split across chunks: held back until it is told apart.
_PARTIAL = re.compile(r"(<[<|/a-zA-Z_]{0,30}\|?[a-z_]{0,20}|\[/?I?N?S?T?)$")


@dataclass(frozen=True)
class ReplyLimits:
    """How long and how much one LLM reply may take (from Settings)."""

    max_tokens: int = 300
    first_token_s: float = 8.0
    reply_s: float = 20.0

    @property
    def max_chars(self) -> int:
        return self.max_tokens * CHARS_PER_TOKEN


class ControlTokenFilter:
    """Streams text with chat-template control tokens removed; ``ended`` once a turn-ending one was seen."""

    def __init__(self) -> None:
        self._held = ""
        self._spoke = False
        self.ended = False

    def feed(self, text: str) -> str:
        out = self._feed(text)
        if not self._spoke:  # a reply starts at its first visible character
            out = out.lstrip()
            self._spoke = bool(out)
        return out

    def _feed(self, text: str) -> str:
        if self.ended:
            return ""
        text = self._held + text
        self._held = ""
        out: list[str] = []
        at = 0
        for match in _CONTROL.finditer(text):
            out.append(text[at : match.start()])
            if match.group("open") is not None and _ROLE_SO_FAR.fullmatch(text, match.end()):
                self._held = text[match.start() :]  # its role name may still be on its way
                return "".join(out)
            at = match.end()
            if match.group("end") is not None:
                self.ended = True
                return "".join(out)
        rest = text[at:]
        partial = _PARTIAL.search(rest)
        if partial is not None and partial.group(0):
            self._held = partial.group(0)
            rest = rest[: partial.start()]
        out.append(rest)
        return "".join(out)

    def flush(self) -> str:
        """What was held back, at the end of the reply: a partial token that never completed is text."""
        held, self._held = self._held, ""
        return "" if self.ended or not (self._spoke or held.strip()) else held


def clean_text(text: str) -> str:
    """``text`` without control tokens (and nothing after a turn-ending one)."""
    tokens = ControlTokenFilter()
    return tokens.feed(text) + tokens.flush()


# How a reply ended: whole, cut by its limits, or abandoned by the session (a preemptive generation thrown
# away, a reply the caller talked over).
Ending = Literal["answered", "cut", "cancelled"]


async def bounded(
    source: AsyncIterable[Any],
    limits: ReplyLimits,
    *,
    call_id: str = "-",
    on_end: Callable[[Ending], None] | None = None,
) -> AsyncIterator[Any]:
    """The chunks of one reply (``llm.ChatChunk``, ``str`` or anything else, passed on), within ``limits``.

    Ends the reply with ``RECOVERY_LINE`` when no first token came in time, the whole reply took too
    long, or it reached the length limit; ``on_end`` is told how the reply ended (for the call's usage).
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    chunks = aiter(source)
    tokens = ControlTokenFilter()
    answered = tooled = counted = False
    chars = pieces = 0
    cut: str | None = None
    ending: Ending = "cancelled"
    try:
        while not tokens.ended:
            deadline = started + (limits.reply_s if answered else min(limits.first_token_s, limits.reply_s))
            try:
                chunk = await asyncio.wait_for(anext(chunks), timeout=max(0.0, deadline - loop.time()))
            except StopAsyncIteration:
                break
            except TimeoutError:
                cut = "the whole reply took too long" if answered else "no first token in time"
                break
            if isinstance(chunk, str):
                answered = answered or bool(chunk)
                text = tokens.feed(chunk)
                chars += len(text)
                if text:
                    yield text
            elif isinstance(chunk, llm.ChatChunk):
                answered = answered or chunk.has_response()
                if chunk.delta is not None:
                    tooled = tooled or bool(chunk.delta.tool_calls)
                    if chunk.delta.content:
                        pieces += 1
                        text = tokens.feed(chunk.delta.content)
                        chars += len(text)
                        chunk = chunk.model_copy(update={"delta": chunk.delta.model_copy(update={"content": text})})
                if chunk.usage is not None:
                    counted = True
                    if chunk.usage.completion_tokens >= limits.max_tokens and not tooled:
                        cut = "the reply reached its length limit"
                if chunk.has_response() or chunk.usage is not None or chunk.delta is None:
                    yield chunk
            else:
                yield chunk
            if chars >= limits.max_chars:
                cut = "the reply reached its length limit"
                break
        if cut is None and not counted and not tooled and pieces >= limits.max_tokens:
            # A server that reports no usage streams about a token a piece: as many pieces as the limit is a cut.
            cut = "the reply reached its length limit"
        if rest := tokens.flush():
            yield rest
        ending = "answered" if cut is None else "cut"
        if cut is not None:
            log.warning("call %s: an LLM reply was ended (%s) after %d characters", call_id, cut, chars)
            if not tooled:
                yield (" " if chars else "") + RECOVERY_LINE
    finally:
        closing = getattr(chunks, "aclose", None)
        if closing is not None:
            await closing()
        if on_end is not None:
            on_end(ending)
