"""What the LLM is sent per call: characters per request, as the openai plugin serializes them, and
how much of each request a provider's prompt cache could reuse across callers.

    python scripts/bench_tokens.py                     # prints a Markdown report
    python scripts/bench_tokens.py --json tokens.json  # and writes the figures

The calls are the scripted new-caller and returning-caller calls (``bench_calls.NEW_CALLER`` and
``RETURNING_CALLER``, which play ``memory_agent.demo``'s scripts), through ``start_call``, the real
agents, a real SQLite file in a temporary directory and the real ``livekit.plugins.openai.LLM``
pointed at a loopback OpenAI-compatible server that answers from the script and keeps every body.

A second caller plays the same two calls under another name on another number. A request's static
prefix is the longest prefix it shares with any request of that other caller's two calls, with the
request read as a prompt cache reads it: the tool schemas, then the messages in order. That much a
provider that served the other caller could serve from its cache to this one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
import threading
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench_calls import NEW_CALLER, RETURNING_CALLER, Script
from livekit.agents import llm
from livekit.plugins import openai

from db import open_repository
from memory_agent import start_call
from memory_agent.agents import feedback, greeter, order_taker
from memory_agent.identity import Caller
from memory_agent.menu import load_menu
from memory_agent.scripted_llm import Fail, Say, Step, ToolCall

# The calls measured, and how the second caller differs from the first: every occurrence of each
# key in the scripts (what the LLM says, the tools' arguments, the caller's lines) is replaced.
SCRIPTS: tuple[Script, ...] = (NEW_CALLER, RETURNING_CALLER)
OTHER_CALLER = {"Maria": "Tom"}
IDENTITIES = ("+14155550101", "+14155550202")  # the first caller's number, the second's

GOAL_CALL_CHARS = 30_000  # per call, instructions + history + tool schemas
GOAL_PREFIX_SHARE = 0.70  # of every request
MODEL = "gpt-4o-mini"
CHARS_PER_TOKEN = 4  # English text and JSON with OpenAI's tokenizers, roughly
# OpenAI's list prices in US dollars per million input tokens (uncached, cached), as published for
# gpt-4o-mini (July 2024) and gpt-4.1-mini (April 2025); check the provider's page for today's.
PRICES = {"gpt-4o-mini (2024-07)": (0.15, 0.075), "gpt-4.1-mini (2025-04)": (0.40, 0.10)}
CACHE_MIN_TOKENS, CACHE_STEP_TOKENS = 1024, 128  # OpenAI caches prompts of 1,024 tokens or more, by 128


# -- the OpenAI-compatible server --------------------------------------------------------------


class ScriptServer:
    """POST /v1/chat/completions on loopback, streamed; each request takes the next scripted step.

    ``bodies`` holds every request body as sent (text). Past the script it answers with text.
    """

    def __init__(self) -> None:
        self.steps: deque[Step] = deque()
        self.bodies: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8")
                server.bodies.append(body)
                step = server.steps.popleft() if server.steps else Say("Is there anything else?")
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for chunk in _chunks(step, len(server.bodies)):
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def play(self, steps: Sequence[Step]) -> None:
        self.steps = deque(steps)
        self.bodies = []

    @contextmanager
    def running(self) -> Iterator[ScriptServer]:
        thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._http.shutdown()
            self._http.server_close()


def _chunks(step: Step, n: int) -> list[dict[str, Any]]:
    base = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": 0, "model": MODEL}
    delta: dict[str, Any]
    if isinstance(step, Fail):
        raise ValueError("a scripted provider failure has no place in a token count")
    if isinstance(step, Say):
        delta, finish = {"role": "assistant", "content": step.text}, "stop"
    else:
        calls = (step,) if isinstance(step, ToolCall) else step
        delta = {
            "role": "assistant",
            "tool_calls": [
                {
                    "index": i,
                    "id": f"call_{n}_{i}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for i, call in enumerate(calls)
            ],
        }
        finish = "tool_calls"
    return [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
    ]


# -- the calls --------------------------------------------------------------------------------


def other_caller(script: Script, names: dict[str, str]) -> Script:
    """The same call by another caller: each name in ``names`` replaced wherever it appears."""

    def swap(value: Any) -> Any:
        if isinstance(value, str):
            for old, new in names.items():
                value = value.replace(old, new)
            return value
        if isinstance(value, dict):
            return {key: swap(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(swap(item) for item in value)
        if isinstance(value, Say):
            return Say(swap(value.text))
        if isinstance(value, ToolCall):
            return ToolCall(value.name, swap(value.arguments))
        return value

    return replace(script, steps=[swap(step) for step in script.steps], lines=[swap(line) for line in script.lines])


@dataclass
class Played:
    """One call as the LLM saw it: every request body, what went off the script, and the tools'
    errors (a script may mean them: an item refused for an allergen)."""

    kind: str
    bodies: list[str]
    off_script: list[str]
    tool_errors: list[str]


async def play(server: ScriptServer, repo: Any, identity: str, script: Script) -> Played:
    server.play(script.steps)
    model = openai.LLM(model=MODEL, base_url=server.base_url, api_key="unused")
    call = await start_call(repo, Caller.typed(identity), llm=model)
    assert call.greeting is not None
    await call.greeting
    for line in script.lines:
        await call.session.run(user_input=line)
    await call.finish("caller_hung_up")
    off: list[str] = []
    if server.steps:
        off.append(f"{len(server.steps)} scripted LLM steps unused")
    if len(server.bodies) > len(script.steps):
        off.append(f"{len(server.bodies) - len(script.steps)} requests past the end of the script")
    errors = [
        f"{item.name}: {item.output[:100]}"
        for item in call.session.history.items
        if isinstance(item, llm.FunctionCallOutput) and item.is_error
    ]
    return Played(script.kind, list(server.bodies), off, errors)


async def play_all(db_dir: Path) -> tuple[list[Played], list[Played]]:
    """The scripts by the first caller, then by the second: each caller's calls on one number."""
    callers: list[list[Played]] = [[], []]
    async with open_repository(db_dir / "tokens.db") as repo:
        with ScriptServer().running() as server:
            for n, identity in enumerate(IDENTITIES):
                for script in SCRIPTS:
                    script = script if n == 0 else other_caller(script, OTHER_CALLER)
                    callers[n].append(await play(server, repo, identity, script))
    return callers[0], callers[1]


# -- measuring --------------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Request:
    """One request body, read as a prompt cache reads it."""

    body: str
    tools: tuple[dict[str, Any], ...]
    messages: tuple[dict[str, Any], ...]
    tool_choice: str

    @classmethod
    def parse(cls, body: str) -> Request:
        data = json.loads(body)
        choice = data.get("tool_choice", "")
        return cls(
            body,
            tuple(data.get("tools") or ()),
            tuple(data["messages"]),
            choice if isinstance(choice, str) else _json(choice),
        )

    @property
    def tool_names(self) -> frozenset[str]:
        return frozenset(tool["function"]["name"] for tool in self.tools)

    @property
    def instructions(self) -> str:
        first = self.messages[0] if self.messages else {}
        content = first.get("content") if first.get("role") in ("system", "developer") else None
        return content if isinstance(content, str) else ""

    @property
    def prompt(self) -> str:
        """Tools first, then the messages in order: the order in which a cache matches prefixes."""
        return _json(list(self.tools)) + "".join(_json(message) for message in self.messages)

    @property
    def tools_chars(self) -> int:
        return len(_json(list(self.tools))) if self.tools else 0

    @property
    def history_chars(self) -> int:
        skip = 1 if self.instructions else 0
        return sum(len(_json(message)) for message in self.messages[skip:])


def agent_tools() -> dict[str, str]:
    """Each agent class of the product, by name, with the opening of its task in its instructions (the
    tools offered change with the step of the call, so they no longer tell the agents apart)."""
    tasks = {"Greeter": greeter.INSTRUCTIONS, "OrderTaker": order_taker.INSTRUCTIONS, "Feedback": feedback.INSTRUCTIONS}
    return {name: task.split(".")[0] for name, task in tasks.items()}


def agent_of(request: Request, agents: dict[str, str]) -> str:
    """The agent whose task the request's instructions carry."""
    return next((agent for agent, task in agents.items() if task in request.instructions), "?")


def common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def turns(requests: list[Request], agents: dict[str, str]) -> list[tuple[str, int]]:
    """Each request's agent and its ordinal among that agent's requests in the call."""
    seen: Counter[str] = Counter()
    out = []
    for request in requests:
        agent = agent_of(request, agents)
        out.append((agent, seen[agent]))
        seen[agent] += 1
    return out


def static_prefix(request: Request, theirs: list[Request]) -> int:
    """The longest prefix this request shares with any request of the other caller's calls: what a
    provider's prompt cache, having served that caller, holds for this one (tools offered per step of
    the call make the same agent's requests differ with the step, not with the caller)."""
    return max((common_prefix(request.prompt, other.prompt) for other in theirs), default=0)


def measure_call(mine: Played, theirs: list[Played], agents: dict[str, str], menu: str) -> dict[str, Any]:
    requests = [Request.parse(body) for body in mine.bodies]
    other_requests = [Request.parse(body) for call in theirs for body in call.bodies]
    rows: list[dict[str, Any]] = []
    for n, (request, (agent, _)) in enumerate(zip(requests, turns(requests, agents), strict=True), start=1):
        prompt = request.prompt
        prefix = static_prefix(request, other_requests)
        static_instructions = max(0, min(len(request.instructions), prefix - request.tools_chars - 2))
        rows.append(
            {
                "n": n,
                "agent": agent,
                "tool_choice": request.tool_choice,
                "body_chars": len(request.body),
                "chars": len(prompt),
                "tools_chars": request.tools_chars,
                "instructions_chars": len(request.instructions),
                "menu_chars": len(menu) if menu and menu in request.instructions else 0,
                "caller_instructions_chars": len(request.instructions) - static_instructions,
                "history_chars": request.history_chars,
                "messages": len(request.messages),
                "prefix_chars": prefix,
                "prefix_share": prefix / len(prompt),
            }
        )
    shares = [row["prefix_share"] for row in rows]
    chars = sum(row["chars"] for row in rows)
    tokens = sum(row["body_chars"] for row in rows) / CHARS_PER_TOKEN
    cached = sum(cached_tokens(row["body_chars"], row["prefix_chars"]) for row in rows)
    return {
        "requests": len(rows),
        "body_chars": sum(row["body_chars"] for row in rows),
        "chars": chars,
        "prefix_share": {
            "min": min(shares, default=0.0),
            "mean": sum(shares) / len(shares) if shares else 0.0,
            "weighted": sum(row["prefix_chars"] for row in rows) / chars if chars else 0.0,
        },
        "prompt_tokens": round(tokens),
        "cached_tokens": round(cached),
        "input_cost_usd": {
            name: {"uncached": tokens * full / 1e6, "cached": ((tokens - cached) * full + cached * hit) / 1e6}
            for name, (full, hit) in PRICES.items()
        },
        "off_script": mine.off_script,
        "tool_errors": mine.tool_errors,
        "per_request": rows,
    }


def cached_tokens(body_chars: int, prefix_chars: int) -> int:
    """What a provider's prompt cache could serve of one request: its static prefix, in whole steps, if the
    prompt is long enough to be cached at all."""
    if body_chars / CHARS_PER_TOKEN < CACHE_MIN_TOKENS:
        return 0
    return int(prefix_chars / CHARS_PER_TOKEN) // CACHE_STEP_TOKENS * CACHE_STEP_TOKENS


def agent_breakdown(played: list[Played], agents: dict[str, str], menu: str) -> dict[str, Any]:
    """Per agent: requests across the calls, and what each of its requests carries every time."""
    out: dict[str, Any] = {}
    for call in played:
        for body in call.bodies:
            request = Request.parse(body)
            agent = agent_of(request, agents)
            entry = out.setdefault(agent, {"requests": Counter(), "tools": {}, "instructions_chars": 0})
            entry["requests"][call.kind] += 1
            for tool in request.tools:
                entry["tools"][tool["function"]["name"]] = len(_json(tool))
            entry["instructions_chars"] = max(entry["instructions_chars"], len(request.instructions))
            entry["menu_chars"] = len(menu) if menu and menu in request.instructions else entry.get("menu_chars", 0)
    for entry in out.values():
        entry["requests"] = dict(entry["requests"])
        entry["tools_chars"] = (
            len(_json([0] * len(entry["tools"]))) - len(entry["tools"]) + sum(entry["tools"].values())
        )
    return out


def measure(first: list[Played], second: list[Played]) -> dict[str, Any]:
    agents = agent_tools()
    menu = load_menu().prompt_listing()
    calls = {mine.kind: measure_call(mine, second, agents, menu) for mine in first}
    met = all(
        call["chars"] <= GOAL_CALL_CHARS and call["prefix_share"]["min"] >= GOAL_PREFIX_SHARE for call in calls.values()
    )
    return {
        "model": MODEL,
        "calls": calls,
        "agents": agent_breakdown(first, agents, menu),
        "menu_chars": len(menu),
        "goal": {"max_call_chars": GOAL_CALL_CHARS, "min_prefix_share": GOAL_PREFIX_SHARE, "met": met},
    }


# -- the report -------------------------------------------------------------------------------


def render(figures: dict[str, Any]) -> str:
    pct = "{:.0%}".format
    lines = [
        "| call | requests | body chars | instructions + history + tools | static prefix min | mean | overall |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, call in figures["calls"].items():
        share = call["prefix_share"]
        lines.append(
            f"| {kind} | {call['requests']} | {call['body_chars']:,} | {call['chars']:,} | {pct(share['min'])}"
            f" | {pct(share['mean'])} | {pct(share['weighted'])} |"
        )
    lines += ["", "| call | prompt tokens (chars / 4) | cacheable | " + " | ".join(PRICES) + " |", "|---|---:|---:|"]
    lines[-1] += "---:|" * len(PRICES)
    for kind, call in figures["calls"].items():
        costs = " | ".join(
            f"${cost['uncached'] * 1000:.2f} (cached ${cost['cached'] * 1000:.2f})"
            for cost in call["input_cost_usd"].values()
        )
        lines.append(f"| {kind} | {call['prompt_tokens']:,} | {call['cached_tokens']:,} | {costs} |")
    lines.append(
        "\nInput cost per 1,000 calls, US dollars, at the list prices named (without and with prompt caching)."
    )
    goal = figures["goal"]
    lines.append(
        f"\nGoal: each call at most {goal['max_call_chars']:,} characters, every request's static prefix at least "
        f"{pct(goal['min_prefix_share'])}: {'met' if goal['met'] else 'not met'}."
    )
    for kind, call in figures["calls"].items():
        for problem in call["off_script"]:
            lines.append(f"\nWarning: the {kind}'s call went off script: {problem}")
        for error in call["tool_errors"]:
            lines.append(f"\nA tool refused in the {kind}'s call (scripted or not): {error}")
        lines += [
            f"\n**{kind}**, per request (chars of tools + messages; instructions of which caller-specific):\n",
            "| # | agent | tool_choice | chars | tools | instructions | of which caller | history | static prefix |",
            "|---:|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for row in call["per_request"]:
            lines.append(
                f"| {row['n']} | {row['agent']} | {row['tool_choice'] or '-'} | {row['chars']:,}"
                f" | {row['tools_chars']:,} | {row['instructions_chars']:,} | {row['caller_instructions_chars']:,}"
                f" | {row['history_chars']:,}"
                f" | {row['prefix_chars']:,} ({pct(row['prefix_share'])}) |"
            )
    lines += [
        f"\n**Per agent**, carried by each of its requests (menu listing: {figures['menu_chars']:,} chars):\n",
        "| agent | requests | instructions (max) | tools | tool schemas |",
        "|---|---|---:|---:|---|",
    ]
    for agent, entry in figures["agents"].items():
        requests = ", ".join(f"{kind}: {n}" for kind, n in entry["requests"].items())
        tools = ", ".join(f"{name} {chars}" for name, chars in sorted(entry["tools"].items(), key=lambda t: -t[1]))
        lines.append(f"| {agent} | {requests} | {entry['instructions_chars']:,} | {entry['tools_chars']:,} | {tools} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_tokens", description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--markdown", type=Path, help="write the report to this file instead of printing it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-tokens-") as tmp:
        first, second = asyncio.run(play_all(Path(tmp)))
    figures = measure(first, second)
    report = render(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(report, encoding="utf-8")
    else:
        print(report, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
