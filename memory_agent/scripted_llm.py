"""A deterministic LLM that plays a script: the offline demo, the tests and the benchmarks use it.

Each ``chat()`` call is one LLM turn and takes the next step of the script. Every request is
recorded, so a test can assert on exactly what the LLM was told.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import APIConnectionError, llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr


@dataclass(frozen=True)
class Say:
    """The LLM answers with text."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """The LLM calls a tool; several ``ToolCall`` in one step are parallel tool calls."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fail:
    """The provider fails (after the framework's retries)."""

    message: str = "scripted provider failure"


Step = Say | ToolCall | Fail | tuple[ToolCall, ...]


@dataclass(frozen=True)
class Request:
    """What one LLM turn was given."""

    chat_ctx: llm.ChatContext
    tool_names: tuple[str, ...]
    tool_choice: object

    @property
    def instructions(self) -> str:
        """The system/developer text the agent was running with."""
        return "\n".join(
            item.text_content or ""
            for item in self.chat_ctx.items
            if item.type == "message" and item.role in ("system", "developer")
        )

    @property
    def text(self) -> str:
        """Every message's text, for 'was the LLM told X' assertions."""
        return "\n".join(item.text_content or "" for item in self.chat_ctx.items if item.type == "message")


class ScriptedLLM(llm.LLM):
    """An ``llm.LLM`` whose answers are a fixed list of steps."""

    def __init__(self, steps: Iterable[Step] = (), *, exhausted: str = "Is there anything else?") -> None:
        super().__init__()
        self._steps: deque[Step] = deque(steps)
        self._exhausted = exhausted
        self._ids = itertools.count(1)
        self.requests: list[Request] = []

    @property
    def model(self) -> str:
        return "scripted"

    @property
    def provider(self) -> str:
        return "memory-agent"

    def extend(self, steps: Iterable[Step]) -> None:
        self._steps.extend(steps)

    @property
    def remaining(self) -> int:
        return len(self._steps)

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        tools = tools or []
        names = tuple(sorted(getattr(t, "id", getattr(t, "name", "")) for t in tools))
        self.requests.append(Request(chat_ctx.copy(), names, tool_choice))
        step: Step = self._steps.popleft() if self._steps else Say(self._exhausted)
        return _ScriptedStream(self, step, next(self._ids), chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)


class _ScriptedStream(llm.LLMStream):
    def __init__(self, owner: ScriptedLLM, step: Step, n: int, **kwargs: Any) -> None:
        kwargs["conn_options"] = APIConnectOptions(max_retry=0, retry_interval=0, timeout=5)
        super().__init__(owner, **kwargs)
        self._step = step
        self._n = n

    async def _run(self) -> None:
        step = self._step
        if isinstance(step, Fail):
            raise APIConnectionError(step.message, retryable=False)
        if isinstance(step, Say):
            delta = llm.ChoiceDelta(role="assistant", content=step.text)
        else:
            calls = (step,) if isinstance(step, ToolCall) else step
            delta = llm.ChoiceDelta(
                role="assistant",
                tool_calls=[
                    llm.FunctionToolCall(name=c.name, arguments=json.dumps(c.arguments), call_id=f"call_{self._n}_{i}")
                    for i, c in enumerate(calls)
                ],
            )
        self._event_ch.send_nowait(llm.ChatChunk(id=f"scripted_{self._n}", delta=delta))
