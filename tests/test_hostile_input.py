"""Hostile input: tools refuse bad arguments with a ToolError the LLM can act on, or store them safely."""

from __future__ import annotations

from dataclasses import dataclass
from unittest.mock import MagicMock

import pytest

from conftest import rows, scripted_call
from memory_agent import start_call
from memory_agent.call import CallConfig
from memory_agent.demo import FIRST_CALL_LINES, FIRST_CALL_STEPS
from memory_agent.identity import Caller, caller_key
from memory_agent.scripted_llm import Say, ScriptedLLM, ToolCall

GENERIC_ERROR = "An internal error occurred"
LONG = "x" * 10_000
SQL = "Robert'); DROP TABLE customers;--"
RTL = "مريم"
HOSTILE = "(SELECT id FROM customers WHERE participant_identity = 'hostile')"
NAME = f"SELECT name FROM customers WHERE id = {HOSTILE}"


@dataclass(frozen=True)
class Case:
    agent: str  # which agent's tool: greeter, order_taker, feedback
    tool: str
    arguments: dict
    stored: tuple[str, list[tuple]] | None = None  # (query, rows) when the input is stored, not refused
    before: tuple[ToolCall, ...] = ()  # tool calls that set the scene first


def refused(agent: str, tool: str, **arguments) -> Case:
    return Case(agent, tool, arguments)


CASES = {
    # the Greeter
    "name empty": refused("greeter", "save_customer_name", name=""),
    "name whitespace": refused("greeter", "save_customer_name", name=" \t\n "),
    "name 10,000 chars": refused("greeter", "save_customer_name", name=LONG),
    "name a number": refused("greeter", "save_customer_name", name=123),
    "name null": refused("greeter", "save_customer_name", name=None),
    "name missing": refused("greeter", "save_customer_name"),
    "name SQL": Case("greeter", "save_customer_name", {"name": SQL}, stored=(NAME, [(SQL,)])),
    "name control chars": Case(
        "greeter", "save_customer_name", {"name": "Ma\x00ri\x07a\x1b\u202e"}, stored=(NAME, [("Maria",)])
    ),
    "name emoji": Case("greeter", "save_customer_name", {"name": "Zoë 🍕"}, stored=(NAME, [("Zoë 🍕",)])),
    "name right-to-left": Case("greeter", "save_customer_name", {"name": RTL}, stored=(NAME, [(RTL,)])),
    # the OrderTaker
    "item unknown": refused("order_taker", "add_to_order", item="unicorn steak"),
    "item empty": refused("order_taker", "add_to_order", item=""),
    "item 10,000 chars": refused("order_taker", "add_to_order", item=LONG),
    "item SQL": refused("order_taker", "add_to_order", item="margherita'; DELETE FROM orders;--"),
    "item emoji": refused("order_taker", "add_to_order", item="🍕"),
    "item a list": refused("order_taker", "add_to_order", item=["margherita"]),
    "quantity 0": refused("order_taker", "add_to_order", item="tiramisu", quantity=0),
    "quantity 21": refused("order_taker", "add_to_order", item="tiramisu", quantity=21),
    "quantity negative": refused("order_taker", "add_to_order", item="tiramisu", quantity=-3),
    "quantity 'two'": refused("order_taker", "add_to_order", item="tiramisu", quantity="two"),
    "quantity 2.5": refused("order_taker", "add_to_order", item="tiramisu", quantity=2.5),
    "quantity 10**30": refused("order_taker", "add_to_order", item="tiramisu", quantity=10**30),
    "long modification": refused("order_taker", "add_to_order", item="tiramisu", modifications=[LONG]),
    "six modifications": refused("order_taker", "add_to_order", item="tiramisu", modifications=["a"] * 6),
    "modifications a number": refused("order_taker", "add_to_order", item="tiramisu", modifications=7),
    "modifications hostile text": Case(
        "order_taker",
        "add_to_order",
        {"item": "pepperoni", "modifications": ["no onions\x00\n\t", "🌶️ extra spicy", "بدون بصل", SQL]},
        stored=(
            f"SELECT modifications FROM order_items JOIN orders ON orders.id = order_id WHERE customer_id = {HOSTILE}",
            [('["no onions", "🌶️ extra spicy", "بدون بصل", "Robert\'); DROP TABLE customers;--"]',)],
        ),
    ),
    "remove what is not there": refused("order_taker", "remove_from_order", item="tiramisu"),
    "remove null": refused("order_taker", "remove_from_order", item=None),
    "pay by bitcoin": refused("order_taker", "set_payment_method", method="bitcoin"),
    "pay SQL": refused("order_taker", "set_payment_method", method="card'; DROP TABLE orders;--"),
    "tip 31%": refused("order_taker", "set_payment_method", method="card", tip_percent=31),
    "tip negative": refused("order_taker", "set_payment_method", method="cash", tip_percent=-1),
    "confirm an empty order": refused("order_taker", "confirm_order"),
    "reorder with no past order": refused("order_taker", "reorder_last_order"),
    "leave with an unplaced order": Case(
        "order_taker", "transfer_to_feedback", {}, before=(ToolCall("add_to_order", {"item": "tiramisu"}),)
    ),
    "change a placed order": Case(
        "order_taker",
        "add_to_order",
        {"item": "tiramisu"},
        before=(ToolCall("add_to_order", {"item": "tiramisu"}), ToolCall("confirm_order")),
    ),
    # Feedback
    "rating 0": refused("feedback", "record_feedback", rating=0),
    "rating 6": refused("feedback", "record_feedback", rating=6),
    "rating 'five'": refused("feedback", "record_feedback", rating="five"),
    "rating 4.5": refused("feedback", "record_feedback", rating=4.5),
    "comment 10,000 chars": refused("feedback", "record_feedback", rating=3, comment=LONG),
    "comment hostile text": Case(
        "feedback",
        "record_feedback",
        {"rating": 5, "comment": f"great\x00\x1b {SQL} 😀 {RTL}"},
        stored=(f"SELECT rating, comment FROM feedback WHERE customer_id = {HOSTILE}", [(5, f"great {SQL} 😀 {RTL}")]),
    ),
    "email not one": refused("feedback", "save_email", email="not an email"),
    "email empty": refused("feedback", "save_email", email=""),
    "email without a domain dot": refused("feedback", "save_email", email="maria@localhost"),
    "email 10,000 chars": refused("feedback", "save_email", email=LONG + "@example.com"),
    "email SQL": refused("feedback", "save_email", email="maria@example.com'; DROP TABLE customers;--"),
    "email a number": refused("feedback", "save_email", email=42),
    "email upper case": Case(
        "feedback",
        "save_email",
        {"email": "Maria@Example.COM"},
        stored=(f"SELECT email FROM customers WHERE id = {HOSTILE}", [("Maria@example.com",)]),
    ),
}


def script(case: Case) -> tuple[list, list[str]]:
    """Steps and caller lines that bring the call to the case's agent, then make the hostile call."""
    steps: list = [Say("Welcome to Bella Vista!")]
    lines: list[str] = []
    if case.agent in ("order_taker", "feedback"):
        steps += [ToolCall("transfer_to_order_taker"), Say("What would you like?")]
        lines.append("I'd like to order")
    if case.agent == "feedback":
        steps += [ToolCall("transfer_to_feedback"), Say("How would you rate us?")]
        lines.append("Actually, nothing today")
    for before in case.before:
        steps += [before, Say("Done.")]
        lines.append("go on")
    steps += [ToolCall(case.tool, case.arguments), Say("Let me fix that.")]
    return steps, lines


def snapshot(db_path) -> dict[str, list[tuple]]:
    """Everything the other caller owns."""
    mine = "(SELECT id FROM customers WHERE participant_identity = 'neighbour')"
    return {
        "customer": rows(db_path, f"SELECT * FROM customers WHERE id = {mine}"),
        "orders": rows(db_path, f"SELECT * FROM orders WHERE customer_id = {mine}"),
        "items": rows(
            db_path, f"SELECT i.* FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.customer_id = {mine}"
        ),
        "feedback": rows(db_path, f"SELECT * FROM feedback WHERE customer_id = {mine}"),
        "messages": rows(
            db_path, f"SELECT m.* FROM messages m JOIN calls c ON c.id = m.call_id WHERE c.customer_id = {mine}"
        ),
    }


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_hostile_tool_arguments_are_refused_or_stored_safely(repo, db_path, case):
    await scripted_call(repo, "neighbour", FIRST_CALL_STEPS, FIRST_CALL_LINES)
    neighbour = snapshot(db_path)
    steps, lines = script(case)
    call, llm = await scripted_call(repo, "hostile", steps, lines, finish=False)

    result = await call.session.run(user_input="the hostile turn")
    await call.finish()

    outputs = [e.item for e in result.events if e.type == "function_call_output"]
    assert [o.name for o in outputs] == [case.tool]
    [output] = outputs
    if case.stored is None:
        assert output.is_error, f"accepted: {output.output}"
        assert output.output != GENERIC_ERROR and len(output.output) > 20  # says what to do
        assert LONG not in output.output  # never echoes a 10,000-character argument back
    else:
        assert not output.is_error, output.output
        query, expected = case.stored
        assert rows(db_path, query) == expected
    assert llm.remaining == 0  # the LLM was given the outcome and answered
    assert rows(db_path, "PRAGMA integrity_check") == [("ok",)]
    assert snapshot(db_path) == neighbour


def test_there_are_at_least_thirty_hostile_cases_across_all_tools():
    tools = {case.tool for case in CASES.values()}
    assert len(CASES) >= 30
    assert tools >= {
        "save_customer_name",
        "add_to_order",
        "remove_from_order",
        "set_payment_method",
        "confirm_order",
        "reorder_last_order",
        "transfer_to_feedback",
        "record_feedback",
        "save_email",
    }


# -- identities -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "identity",
    ["", "   ", "\t\n", LONG, "mock_user", "console", None, 12345, "caller\x00name", MagicMock()],
    ids=[
        "empty",
        "spaces",
        "control whitespace",
        "10,000 chars",
        "console mock",
        "console",
        "None",
        "a number",
        "NUL inside",
        "MagicMock",
    ],
)
async def test_unusable_identity_is_served_without_memory(repo, db_path, identity):
    key = caller_key(identity, is_sip=False, attributes=MagicMock())
    assert key is None

    await scripted_call(repo, key, [Say("Welcome! What is your name?")], ["hi"])

    assert rows(db_path, "SELECT count(*) FROM customers") == [(0,)]
    assert rows(db_path, "SELECT customer_id, ended_at IS NOT NULL FROM calls") == [(None, 1)]


async def test_sql_in_an_identity_is_just_a_key(repo, db_path):
    identity = "x'); DROP TABLE customers; --"
    key = caller_key(identity, is_sip=False)
    await scripted_call(repo, key, [Say("Welcome!")], ["hi"])
    await scripted_call(repo, key, [Say("Welcome back!")], ["hi"])

    assert rows(db_path, "SELECT participant_identity, call_count FROM customers") == [(identity, 2)]
    assert rows(db_path, "PRAGMA integrity_check") == [("ok",)]


SIP_FORMS = [
    ("sip_+15551234567", {"sip.phoneNumber": "+15551234567"}),
    ("sip_+15551234567", {"sip.phoneNumber": "+1 (555) 123-4567"}),
    ("sip_5551234567", {"sip.phoneNumber": "555.123.4567"}),
    ("sip_+15551234567", {}),
    ("caller-42", {"sip.phoneNumber": "tel:+1-555-123-4567"}),
    ("sip:+15551234567@pbx.example.com", MagicMock()),  # attributes not arrived: the identity is used
    ("(555) 123-4567", None),
]


@pytest.mark.parametrize(
    ("identity", "attributes"),
    [
        ("sip_anonymous", {"sip.phoneNumber": "anonymous"}),
        ("sip_anonymous", {}),
        ("sip_restricted", MagicMock()),
        ("sip_5551234", {"sip.phoneNumber": "555-1234"}),  # no area code: could be anyone's
    ],
)
def test_sip_caller_without_a_full_number_is_anonymous(identity, attributes):
    assert caller_key(identity, is_sip=True, attributes=attributes) is None


@pytest.mark.parametrize("identity", ["+15551234567", "555-123-4567", "(555) 123 4567"])
def test_a_web_identity_that_looks_like_a_phone_number_never_gets_that_callers_memory(identity):
    assert caller_key(identity, is_sip=False) is None


async def test_sip_numbers_in_every_format_are_one_customer(repo, db_path):
    keys = {caller_key(identity, is_sip=True, attributes=attributes) for identity, attributes in SIP_FORMS}
    assert keys == {"+15551234567"}

    for identity, attributes in SIP_FORMS:
        key = caller_key(identity, is_sip=True, attributes=attributes)
        call = await start_call(
            repo, Caller.typed(key), CallConfig(trust_caller_id=True), llm=ScriptedLLM([Say("Hello!")])
        )
        await call.greeting
        await call.finish()

    assert rows(db_path, "SELECT participant_identity, call_count FROM customers") == [("+15551234567", len(SIP_FORMS))]
