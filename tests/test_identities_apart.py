"""Identities never collide: a participant can't present a household member's key, and a caller on a
number whose lookup failed can't take or change the number owner's profile by giving another name."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from test_trust import FIRST, FIRST_LINES, MARIA, PERSONAL, told

from conftest import rows, scripted_call
from memory_agent.identity import caller_key
from memory_agent.scripted_llm import Say, ToolCall

TOM = f"{MARIA}#2"  # the second person of Maria's household

TOMS_CALL = [
    Say("Welcome! Who's calling?"),
    ToolCall("save_customer_name", {"name": "Tom"}),
    Say("Hi Tom! What would you like?"),
    ToolCall("add_to_order", {"item": "tiramisu", "modifications": ["no cocoa on top"]}),
    ToolCall("confirm_order"),
    Say("Placed."),
]


async def a_household(repo) -> None:
    """Maria (the number's first profile) and Tom (its second, keyed ``+1…#2``), each with a placed order."""
    await scripted_call(repo, MARIA, FIRST, FIRST_LINES, trust_caller_id=True)
    await scripted_call(repo, MARIA, TOMS_CALL, ["Tom here", "a tiramisu"])
    profiles = await repo.read("SELECT participant_identity, name FROM customers ORDER BY id", ())
    assert [tuple(row) for row in profiles] == [(MARIA, "Maria"), (TOM, "Tom")]


@pytest.mark.parametrize("identity", [TOM, "+14155550134#12", "alice#2"])
def test_a_participant_presenting_a_household_members_key_is_refused_in_one_line(identity, caplog):
    caplog.set_level(logging.WARNING)

    assert caller_key(identity, is_sip=False) is None

    [record] = caplog.records
    assert "household member's key was refused" in record.getMessage()
    assert not any(ch.isdigit() for ch in record.getMessage())  # nothing of the identity in the log


async def test_a_web_identity_equal_to_a_household_key_reads_and_erases_nothing(any_repo, backend, caplog):
    await a_household(any_repo)
    before = backend.rows("SELECT * FROM customers ORDER BY id")
    steps = [
        Say("Welcome! How can I help?"),
        ToolCall("transfer_to_order_taker"),
        Say("What would you like?"),
        ToolCall("recall_past_orders"),
        Say("I can't see any."),
        ToolCall("forget_me", {"confirmed": True}),
        Say("I can't do that yet."),
    ]

    _, llm = await scripted_call(any_repo, TOM, steps, ["order", "what did I have last time?", "forget me"])

    said = told(llm)
    for secret in ["Tom", "no cocoa on top", *PERSONAL]:
        assert secret not in said, secret
    outputs = [i for i in llm.requests[-1].chat_ctx.items if i.type == "function_call_output"]
    assert all(output.is_error for output in outputs[-2:])  # no past orders; no erasure
    assert backend.rows("SELECT * FROM customers ORDER BY id") == before
    assert backend.rows("SELECT customer_id, caller_number FROM calls ORDER BY started_at DESC LIMIT 1") == [
        (None, None)
    ]
    assert "household member's key was refused" in caplog.text


async def test_an_unvouched_caller_whose_lookup_failed_and_who_gives_another_name_leaves_the_owner_untouched(
    repo, db_path
):
    await scripted_call(repo, MARIA, FIRST, FIRST_LINES, trust_caller_id=True)
    await scripted_call(
        repo,
        MARIA,
        [Say("Hi Maria"), ToolCall("remember_allergy", {"allergen": "peanuts"}), Say("Noted.")],
        ["I'm allergic to peanuts"],
        trust_caller_id=True,
    )
    owner = rows(db_path, "SELECT * FROM customers")
    facts = rows(db_path, "SELECT * FROM caller_facts ORDER BY id")
    assert facts, "the owner stated no fact"

    def refuse(action: int, table: str | None, *_: object) -> int:
        return sqlite3.SQLITE_DENY if table == "customers" else sqlite3.SQLITE_OK

    await repo.reader.set_authorizer(refuse)  # every caller lookup of this call fails, in SQLite itself
    steps = [
        Say("Welcome! Who's calling?"),
        ToolCall("save_customer_name", {"name": "Tom"}),
        Say("Hi Tom! What would you like?"),
        (
            ToolCall("remember_allergy", {"allergen": "shellfish"}),
            ToolCall("remember_preference", {"about": "crust", "preference": "burnt"}),
        ),
        Say("Noted."),
        ToolCall("forget_me", {"confirmed": True}),
        Say("I can't yet."),
    ]
    try:
        _, llm = await scripted_call(repo, MARIA, steps, ["Tom here", "no shellfish, burnt crust", "forget me"])
    finally:
        await repo.reader.set_authorizer(None)

    for secret in PERSONAL:
        assert secret not in told(llm), secret
    forget_me = [i for i in llm.requests[-1].chat_ctx.items if i.type == "function_call_output"][-1]
    assert forget_me.is_error and "do not know who is calling" in forget_me.output
    assert rows(db_path, "SELECT * FROM customers") == owner  # name, counts, email, last order: all as they were
    assert rows(db_path, "SELECT * FROM caller_facts ORDER BY id") == facts
    assert rows(
        db_path, "SELECT customer_id, caller_name, caller_number FROM calls ORDER BY started_at DESC LIMIT 1"
    ) == [(None, "Tom", MARIA)]
