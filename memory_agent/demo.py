"""The offline demo: two scripted calls of one caller through the real agents and a real SQLite file.

Only the LLM's turns are scripted; the agents, tools, session, memory and database are the product's.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from livekit.agents import RunResult, llm

from db import Repository, open_repository
from memory_agent.call import Call, start_call
from memory_agent.identity import Caller
from memory_agent.memory import memory_text
from memory_agent.scripted_llm import Say, ScriptedLLM, Step, ToolCall

FIRST_CALL_STEPS: list[Step] = [
    Say("Welcome to Bella Vista! May I have your name?"),
    ToolCall("remember_allergy", {"allergen": "pine nuts"}),
    ToolCall("save_customer_name", {"name": "Maria"}),
    Say("Lovely to meet you, Maria; I've noted your pine nut allergy. What can I get you?"),
    (
        ToolCall("add_to_order", {"item": "margherita", "quantity": 2, "modifications": ["extra basil"]}),
        ToolCall("add_to_order", {"item": "Tiramisu"}),
    ),
    Say("Two Margherita Pizzas with extra basil and a Tiramisu: $36.50. Shall I place it?"),
    ToolCall("confirm_order"),
    Say("Your order is placed and will be ready in about 25 minutes. How would you rate your experience, 1 to 5?"),
    ToolCall("record_feedback", {"rating": 2, "comment": "the pizza arrived cold"}),
    Say("I'm sorry to hear that, Maria. Thank you for telling us. Goodbye!"),
]
FIRST_CALL_LINES = [
    "Hi, I'm Maria. I'm allergic to pine nuts",
    "Two margheritas with extra basil and a tiramisu",
    "Yes please",
    "Two. The pizza arrived cold",
]

RETURN_CALL_STEPS: list[Step] = [
    Say("Welcome back to Bella Vista! Who am I speaking with?"),
    ToolCall("save_customer_name", {"name": "Maria Rossi"}),
    Say("Maria, welcome back! I'm sorry the pizza was cold last time. Would you like the same as last time?"),
    ToolCall("reorder_last_order"),
    Say("That's two Margherita Pizzas with extra basil and a Tiramisu: $36.50. Anything else?"),
    ToolCall("add_to_order", {"item": "pesto pizza"}),
    Say("Our Pesto Pizza has pine nuts, so I've left it off. Are you still allergic to tree nuts?"),
    ToolCall("confirm_order", {"allergies_checked": True}),
    Say("Placed, with your allergy noted for the kitchen! It will be hot this time, Maria. See you soon."),
]
RETURN_CALL_LINES = [
    "Hi, it's Maria Rossi",
    "Yes, the same as last time",
    "And a pesto pizza",
    "Yes, still. Please place it",
]

Printer = Callable[[str], None]


def print_events(result: RunResult, out: Printer) -> None:
    """The turn as a reader wants to see it: what was said, and what the tools did."""
    for event in result.events:
        item = event.item
        if isinstance(item, llm.ChatMessage) and item.role == "assistant":
            out(f"  agent:  {item.text_content}")
        elif isinstance(item, llm.FunctionCall):
            out(f"    · {item.name}({item.arguments})")
        elif isinstance(item, llm.FunctionCallOutput) and item.output:
            out(f"      {'error' if item.is_error else '->'} {item.output}")
        elif isinstance(item, llm.AgentHandoff) and item.old_agent_id is not None:
            out(f"    · handoff to {item.new_agent_id}")


async def play(repo: Repository, identity: str, steps: Iterable[Step], lines: Iterable[str], out: Printer) -> Call:
    call = await start_call(repo, Caller.typed(identity), llm=ScriptedLLM(steps))
    assert call.greeting is not None
    print_events(await call.greeting, out)
    for line in lines:
        out(f"  caller: {line}")
        print_events(await call.session.run(user_input=line), out)
    await call.finish("caller_hung_up")
    return call


async def run_demo(db: Path, out: Printer = print) -> None:
    identity = f"+1415555{secrets.randbelow(10_000):04d}"  # a made-up phone caller: caller ID alone proves nothing
    async with open_repository(db) as repo:
        out("memory-agent demo: the LLM's turns are scripted (offline, no keys);")
        out("the agents, tools, session and SQLite database are the real product.")
        out(f"Database: {db}   Caller ID: {identity}\n")
        out("== Call 1: a new caller ==")
        first = await play(repo, identity, FIRST_CALL_STEPS, FIRST_CALL_LINES, out)

        out("\n== What the agent remembered before call 2 (read from SQLite, given to the LLM) ==")
        out("  " + memory_text(await repo.recall(identity)).replace("\n", "\n  "))

        out("\n== Call 2: the same number, a week later: memory only once the caller says the name on file ==")
        second = await play(repo, identity, RETURN_CALL_STEPS, RETURN_CALL_LINES, out)

        out("\n== Rows written ==")
        for line in await _rows_report(repo, identity, [first.call_id, second.call_id]):
            out("  " + line)


async def _rows_report(repo: Repository, identity: str, call_ids: list[str]) -> list[str]:
    c = await repo.customer(identity)
    assert c is not None
    lines = [
        f"customers: id={c['id']} name={c['name']!r} calls={c['call_count']} orders={c['order_count']}"
        f" lifetime_spend_cents={c['lifetime_spend_cents']} last_rating={c['last_rating']}"
    ]
    for n, call_id in enumerate(call_ids, start=1):
        s = await repo.call_summary(call_id)
        lines.append(
            f"call {n}: order id={s['order_id']} status={s['status']} total_cents={s['total_cents']}"
            f" items: {s['items']}; kitchen note={s['kitchen_note']!r}; feedback rating={s['rating']};"
            f" {s['messages']} transcript rows"
        )
    return lines
