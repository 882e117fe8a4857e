"""Callers never see each other's memory; anonymous callers are served but never remembered."""

from __future__ import annotations

import pytest

from conftest import rows, scripted_call
from memory_agent.demo import FIRST_CALL_LINES, FIRST_CALL_STEPS
from memory_agent.identity import caller_key, normalize_phone, redact
from memory_agent.scripted_llm import Say, ToolCall


async def test_two_identities_stay_apart(repo, db_path):
    await scripted_call(repo, "alice", FIRST_CALL_STEPS, FIRST_CALL_LINES)

    _, llm = await scripted_call(repo, "bob", [Say("Welcome to Bella Vista! May I have your name?")])

    told = llm.requests[0].instructions
    assert "Maria" not in told
    assert "Margherita" not in told.split("You greet callers")[0]
    assert rows(db_path, "SELECT participant_identity, name FROM customers ORDER BY id") == [
        ("alice", "Maria"),
        ("bob", None),
    ]


@pytest.mark.parametrize("identity", [None, "", "   ", "mock_user", "x" * 10_000, "bad\x00id"])
async def test_anonymous_caller_order_is_stored_but_never_remembered(repo, db_path, identity):
    await scripted_call(repo, identity, FIRST_CALL_STEPS, FIRST_CALL_LINES)
    _, llm = await scripted_call(repo, identity, [Say("Welcome to Bella Vista!")])

    assert "Maria" not in llm.requests[0].instructions
    assert rows(db_path, "SELECT count(*) FROM customers") == [(0,)]
    assert rows(db_path, "SELECT customer_id, caller_name FROM calls ORDER BY started_at") == [
        (None, "Maria"),
        (None, None),
    ]
    assert rows(db_path, "SELECT customer_id, status, total_cents FROM orders") == [(None, "placed", 3650)]


async def test_sql_in_identity_is_just_a_name(repo, db_path):
    identity = "'; DROP TABLE customers; --"
    await scripted_call(repo, identity, FIRST_CALL_STEPS, FIRST_CALL_LINES)
    _, llm = await scripted_call(repo, identity, [Say("Welcome back!")])

    assert '"Maria"' in llm.requests[0].instructions
    assert rows(db_path, "SELECT participant_identity FROM customers") == [(identity,)]


@pytest.mark.parametrize(
    "raw",
    [
        "+1 (415) 555-0134",
        "+14155550134",
        "sip:+14155550134@pbx.example.com",
        "tel:+1-415-555-0134",
        "(415) 555-0134",
        "sip_+14155550134",
    ],
)
def test_sip_numbers_in_any_format_map_to_one_key(raw):
    assert caller_key("sip_whatever", is_sip=True, attributes={"sip.phoneNumber": raw}) == "+14155550134"
    assert normalize_phone(raw) == "+14155550134"


def test_sip_caller_falls_back_to_identity_when_attribute_is_not_text():
    class Anything:  # a console mock room answers every attribute with a truthy object
        pass

    assert caller_key("sip_+14155550134", is_sip=True, attributes={"sip.phoneNumber": Anything()}) == ("+14155550134")


def test_phone_numbers_are_redacted_in_logs():
    assert redact("+14155550134") == "+*********34"
    assert redact("room-14155550134-x") == "room-*********34-x"
    assert redact("alice") == "alice"
    assert redact(None) == "anonymous"


async def test_one_sip_caller_in_two_formats_is_one_customer(repo, db_path):
    steps = [Say("Hello!"), ToolCall("save_customer_name", {"name": "Ana"}), Say("Thanks Ana")]
    first = caller_key("a", is_sip=True, attributes={"sip.phoneNumber": "+1 415 555 0134"})
    await scripted_call(repo, first, steps, ["I'm Ana"])
    second = caller_key("b", is_sip=True, attributes={"sip.phoneNumber": "tel:+14155550134"})
    _, llm = await scripted_call(repo, second, [Say("Welcome back, Ana!")], trust_caller_id=True)

    assert '"Ana"' in llm.requests[0].instructions
    assert rows(db_path, "SELECT participant_identity FROM customers") == [("+14155550134",)]
