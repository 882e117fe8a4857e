"""Guessing a name on someone's number is bounded, leaves no profiles behind, and look-alikes are the same name."""

from __future__ import annotations

import pytest
from test_trust import MARIA, maria_called_once, told

from conftest import scripted_call
from db.schema.models import name_key
from memory_agent.scripted_llm import Say, ToolCall
from memory_agent.settings import GuessLimits

MEMORY = "2x Margherita Pizza (extra basil)"  # what the order taker is told of Maria, once she is known


async def values(repo, sql: str) -> list[tuple]:
    return [tuple(row) for row in await repo.read(sql, ())]


def naming(*names: str) -> list:
    """A call where the caller gives ``names`` (several at once: in one turn), then says goodbye."""
    calls = tuple(ToolCall("save_customer_name", {"name": name}) for name in names)
    return [Say("Welcome back! Who's calling?"), calls if len(calls) > 1 else calls[0], Say("Hello!")]


async def test_twelve_wrong_names_then_the_right_one_are_bounded_and_leave_no_profiles(any_repo):
    await maria_called_once(any_repo)
    limits = GuessLimits(per_call=2, per_day=5)

    for n in range(12):
        _, llm = await scripted_call(any_repo, MARIA, naming(f"Guess{n}"), ["it's me"], guess_limits=limits)
        assert MEMORY not in told(llm)
    _, llm = await scripted_call(any_repo, MARIA, naming("Maria"), ["Maria"], guess_limits=limits)

    assert MEMORY not in told(llm)  # past the day's limit, even the right name brings nothing
    assert "who is speaking is not confirmed" not in llm.requests[-1].instructions  # nor asks for a name again
    assert await values(any_repo, "SELECT participant_identity, name, call_count FROM customers") == [
        (MARIA, "Maria", 1)
    ]
    counted = "SELECT outcome, count(*), count(DISTINCT call_id) FROM identity_attempts GROUP BY outcome ORDER BY 1"
    assert await values(any_repo, counted) == [("refused", 8, 8), ("wrong_name", 5, 5)]
    kept = " ".join(map(str, await values(any_repo, "SELECT * FROM identity_attempts")))
    assert "Guess" not in kept and "4155550134" not in kept  # nothing personal: a keyed hash of the number


async def test_wrong_names_in_one_call_are_bounded_and_make_one_profile_at_most(any_repo):
    await maria_called_once(any_repo)

    steps = naming("Anna", "Bea", "Maria")  # in one turn, as a guesser would rattle them off
    await scripted_call(any_repo, MARIA, steps, ["Anna? Bea? Maria?"], guess_limits=GuessLimits(per_call=2))

    assert await values(any_repo, "SELECT name, call_count FROM customers") == [("Maria", 1)]  # not hers
    # names are compared in the order said: the third is past the call's tries, even the right one
    assert await values(any_repo, "SELECT outcome, count(*) FROM identity_attempts GROUP BY outcome ORDER BY 1") == [
        ("refused", 1),
        ("wrong_name", 2),
    ]


async def test_two_names_in_one_turn_make_no_extra_profile(any_repo):
    await maria_called_once(any_repo)

    await scripted_call(any_repo, MARIA, naming("Mary", "Maria"), ["Mary... Maria, sorry"])

    # the second was the name on file, within the call's tries: the call is hers, and no twin is made
    assert await values(any_repo, "SELECT name, call_count FROM customers") == [("Maria", 2)]
    assert await values(any_repo, "SELECT outcome FROM identity_attempts") == [("wrong_name",)]


async def test_a_new_person_of_the_household_gets_a_profile_once_they_order(any_repo):
    await maria_called_once(any_repo)
    steps = [
        *naming("Tom"),
        ToolCall("add_to_order", {"item": "tiramisu"}),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]

    await scripted_call(any_repo, MARIA, naming("Tom"), ["Tom here", "bye"])
    assert await values(any_repo, "SELECT name FROM customers") == [("Maria",)]
    await scripted_call(any_repo, MARIA, steps, ["Tom here", "a tiramisu"])

    assert await values(any_repo, "SELECT participant_identity, name, order_count FROM customers ORDER BY id") == [
        (MARIA, "Maria", 1),
        (f"{MARIA}#2", "Tom", 1),
    ]


LOOK_ALIKES = {
    "a Cyrillic a": "M\u0430ria",
    "Greek capitals": "\u039c\u0391RIA",
    "spelled out": "M a r i a",
    "full-width": "\uff2d\uff41\uff52\uff49\uff41",
    "mathematical bold": "\U0001d40caria",
    "a zero-width space": "Mar\u200bia",
}


@pytest.mark.parametrize("name", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
async def test_a_look_alike_of_the_name_on_file_is_that_name_and_never_a_twin(any_repo, name):
    await maria_called_once(any_repo)

    _, llm = await scripted_call(any_repo, MARIA, naming(name), ["it's Maria"])

    assert MEMORY in told(llm)
    assert await values(any_repo, "SELECT name, call_count FROM customers") == [("Maria", 2)]
    assert await values(any_repo, "SELECT count(*) FROM identity_attempts") == [(0,)]


@pytest.mark.parametrize(
    ("said", "other"),
    [("Мария", "Maria"), ("Tom", "Maria"), ("Mario", "Maria"), ("Anna Maria", "Maria"), ("M", "Maria")],
)
def test_different_names_stay_different(said, other):
    assert name_key(said) != name_key(other)
