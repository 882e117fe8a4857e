"""Allergies as callers say them, through the real agents: several in one statement, everyday words,
allergies the menu cannot be checked for, and modifications that add an allergen."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from conftest import rows, scripted_call
from db import CallSnapshot
from db.schema.models import CallerFact
from memory_agent.scripted_llm import Say, ToolCall

ANNA = "+14155550177"  # trusted caller ID: known before the first word
AN_HOUR_AGO = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
GREET = [Say("Hello!"), ToolCall("transfer_to_order_taker"), Say("What would you like?")]


def outputs(llm) -> list[tuple[str, bool]]:
    """Every tool output the LLM was shown in the call, with whether it was an error."""
    seen: dict[str, tuple[str, bool]] = {}
    for request in llm.requests:
        for item in request.chat_ctx.items:
            if item.type == "function_call_output":
                seen.setdefault(item.call_id, (item.output, item.is_error))
    return list(seen.values())


async def call(repo, steps, identity=ANNA, **options):
    return await scripted_call(repo, identity, steps, ["..."] * 10, trust_caller_id=True, **options)


def placed(db_path) -> list[tuple]:
    """Each placed order's lines: item, modifications, what the caller accepted; and the kitchen note."""
    return rows(
        db_path,
        "SELECT i.menu_item, i.modifications, i.accepted_allergens, o.kitchen_note FROM orders AS o"
        " JOIN order_items AS i ON i.order_id = o.id WHERE o.status = 'placed' ORDER BY i.position",
    )


@pytest.mark.parametrize(
    ("said", "dish", "contains", "note"),
    [
        ("nuts and dairy", "pesto_pizza", ["milk", "tree nuts"], "tree nuts, peanuts, milk"),
        ("I can't have nuts or dairy", "pesto_pizza", ["milk", "tree nuts"], "tree nuts, peanuts, milk"),
        ("dairy, eggs", "tiramisu", ["milk", "egg"], "milk, egg"),
        ("fish and shellfish", "caesar_salad", ["fish"], "fish, crustacean shellfish"),
        ("peanuts and tree nuts", "pesto_pizza", ["tree nuts"], "peanuts, tree nuts"),
        ("seafood", "caesar_salad", ["fish"], "fish, crustacean shellfish"),
        ("no seafood please", "caesar_salad", ["fish"], "fish, crustacean shellfish"),
        ("celiac", "spaghetti_carbonara", ["wheat"], "wheat"),
        ("coeliac disease", "margherita_pizza", ["wheat"], "wheat"),
        ("I'm coeliac", "tiramisu", ["wheat"], "wheat"),
        ("mozzarella", "margherita_pizza", ["milk"], "milk"),
        ("parmesan", "caesar_salad", ["milk"], "milk"),
        ("ricotta", "pepperoni_pizza", ["milk"], "milk"),
        ("mascarpone", "tiramisu", ["milk"], "milk"),
        ("cream", "spaghetti_carbonara", ["milk"], "milk"),
        ("pasta", "spaghetti_carbonara", ["wheat"], "wheat"),
        ("bread", "caesar_salad", ["wheat"], "wheat"),
        ("semolina", "pesto_pizza", ["wheat"], "wheat"),
        ("mayonnaise", "caesar_salad", ["egg"], "egg"),
        ("pignoli", "pesto_pizza", ["tree nuts"], "tree nuts"),
        ("pesto", "pesto_pizza", ["milk", "tree nuts"], "milk, tree nuts"),
    ],
)
async def test_the_dangerous_dish_is_refused_then_placed_only_with_the_acceptance_on_the_line(
    repo, db_path, said, dish, contains, note
):
    steps = [
        *GREET,
        ToolCall("remember_allergy", {"allergen": said}),
        Say("Noted."),
        ToolCall("add_to_order", {"item": dish}),
        Say("It has your allergen. Still want it?"),
        ToolCall("add_to_order", {"item": dish, "accept_allergens": True}),
        Say("Added. Place it?"),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    _, llm = await call(repo, steps)
    noted, refused, accepted = outputs(llm)  # then the order is placed: a handoff, with no output
    assert not noted[1] and "Noted: allergic to" in noted[0]
    assert refused[1] and f"contains {', '.join(contains)}, which the caller is allergic to" in refused[0]
    assert not accepted[1]
    assert placed(db_path) == [(dish, "[]", json.dumps(contains), f"Allergies: {note}")]
    facts = rows(db_path, "SELECT topic FROM caller_facts WHERE superseded_at IS NULL ORDER BY id")
    assert ", ".join(topic for (topic,) in facts) == note  # each allergen its own fact


@pytest.mark.parametrize(
    ("said", "means"), [("seafood", "fish or crustacean shellfish"), ("nuts", "tree nuts or peanuts")]
)
async def test_a_broad_word_is_noted_as_every_allergen_it_can_mean_and_the_llm_asks_which(repo, said, means):
    _, llm = await call(repo, [*GREET, ToolCall("remember_allergy", {"allergen": said}), Say("Which?")])
    (noted, is_error), *_ = outputs(llm)
    assert not is_error
    assert f'"{said}" can mean {means}: all are noted' in noted and "ask which they mean" in noted


async def test_a_broad_word_narrowed_by_the_caller_protects_only_what_they_keep(repo, db_path):
    steps = [
        *GREET,
        ToolCall("remember_allergy", {"allergen": "seafood"}),
        Say("Fish, shellfish, or both?"),
        ToolCall("forget_allergy", {"allergen": "fish"}),
        Say("Shellfish only, then."),
        ToolCall("add_to_order", {"item": "caesar_salad"}),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    await call(repo, steps)
    assert placed(db_path) == [("caesar_salad", "[]", "[]", "Allergies: crustacean shellfish")]


async def test_an_unmapped_allergy_is_said_to_be_unchecked_and_every_dish_needs_the_go_ahead(repo, db_path):
    steps = [
        *GREET,
        ToolCall("remember_allergy", {"allergen": "I'm allergic to mustard and dairy"}),
        Say("Noted; we can't check the menu for mustard."),
        ToolCall("add_to_order", {"item": "margherita_pizza"}),
        Say("Milk, and we can't check it for mustard."),
        ToolCall("add_to_order", {"item": "margherita_pizza", "accept_allergens": True}),
        ToolCall("add_to_order", {"item": "sparkling_water"}),
        Say("We can't check the water for mustard either."),
        ToolCall("add_to_order", {"item": "sparkling_water", "accept_allergens": True}),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    _, llm = await call(repo, steps)
    noted, pizza, pizza_ok, water, water_ok = outputs(llm)
    assert 'Noted: allergic to "milk", "mustard".' in noted[0]
    assert 'Our menu is not checked for ["mustard"]: tell the caller' in noted[0]
    assert pizza[1] and "Margherita Pizza contains milk" in pizza[0]
    assert 'not checked for ["mustard"]' in pizza[0] and "whether Margherita Pizza has it" in pizza[0]
    assert water[1] and 'not checked for ["mustard"]' in water[0] and "contains" not in water[0]
    assert not (pizza_ok[1] or water_ok[1])
    assert placed(db_path) == [
        ("margherita_pizza", "[]", '["milk", "mustard"]', "Allergies: mustard, milk"),
        ("sparkling_water", "[]", '["mustard"]', "Allergies: mustard, milk"),
    ]


async def test_an_unmapped_allergy_said_after_a_dish_was_added_stops_the_order_until_accepted(repo, db_path):
    steps = [
        *GREET,
        ToolCall("add_to_order", {"item": "sparkling_water"}),
        Say("Added."),
        ToolCall("remember_allergy", {"allergen": "celery"}),
        Say("Noted."),
        ToolCall("confirm_order"),
        Say("We can't check the water for celery. Keep it?"),
        ToolCall("remove_from_order", {"item": "sparkling_water"}),
        ToolCall("add_to_order", {"item": "sparkling_water", "accept_allergens": True}),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    _, llm = await call(repo, steps, identity=None)
    told = outputs(llm)
    assert "The order has Sparkling Water: ask whether to remove it." in told[1][0]
    assert told[2][1] and "Sparkling Water (celery)" in told[2][0]
    assert placed(db_path) == [("sparkling_water", "[]", '["celery"]', "Allergies: celery")]


async def test_a_remembered_unmapped_allergy_still_needs_the_go_ahead_on_the_next_call(repo, db_path):
    first = [
        Say("Hi! Your name?"),
        ToolCall("save_customer_name", {"name": "Anna"}),
        Say("Hi Anna."),
        ToolCall("remember_allergy", {"allergen": "lupin"}),
        Say("Noted."),
        ToolCall("add_to_order", {"item": "sparkling_water", "accept_allergens": True}),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    await call(repo, first)
    steps = [
        *GREET,
        ToolCall("reorder_last_order"),
        Say("We can't check it for lupin."),
        ToolCall("add_to_order", {"item": "tiramisu"}),
        Say("Same for the tiramisu."),
    ]
    _, llm = await call(repo, steps)
    reordered, tiramisu = outputs(llm)
    assert "Left out, the menu is not checked for their allergy" in reordered[0]
    assert "Sparkling Water (lupin)" in reordered[0]
    assert tiramisu[1] and 'not checked for ["lupin"]' in tiramisu[0]


async def test_nothing_named_is_a_tool_error_and_records_nothing(repo, db_path):
    _, llm = await call(repo, [*GREET, ToolCall("remember_allergy", {"allergen": "I'm allergic"}), Say("To what?")])
    (said, is_error), *_ = outputs(llm)
    assert is_error and "ask what they are allergic to" in said
    assert rows(db_path, "SELECT count(*) FROM caller_facts") == [(0,)]


# -- modifications ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allergy", "modification", "adds"),
    [
        ("pine nuts", "add pine nuts", "tree nuts"),
        ("pine nuts", "extra pesto", "tree nuts"),
        ("pine nuts", "walnut topping", "tree nuts"),
        ("eggs", "carbonara sauce on top", "egg"),  # a dish of the menu, by its name
        ("eggs", "a spoon of mayo", "egg"),
        ("sesame", "drizzle of tahini", "sesame"),
    ],
)
async def test_a_modification_that_adds_the_callers_allergen_is_refused_then_accepted(
    repo, db_path, allergy, modification, adds
):
    steps = [
        *GREET,
        ToolCall("remember_allergy", {"allergen": allergy}),
        Say("Noted."),
        ToolCall("add_to_order", {"item": "margherita_pizza", "modifications": [modification]}),
        Say("That has your allergen. Still want it?"),
        ToolCall(
            "add_to_order", {"item": "margherita_pizza", "modifications": [modification], "accept_allergens": True}
        ),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    _, llm = await call(repo, steps)
    _, refused, accepted = outputs(llm)
    assert refused[1]
    assert f'The modification "{modification}" adds {adds}, which the caller is allergic to.' in refused[0]
    assert "Margherita Pizza contains" not in refused[0]
    assert not accepted[1]
    assert [row[:3] for row in placed(db_path)] == [
        ("margherita_pizza", json.dumps([modification]), json.dumps([adds]))
    ]


@pytest.mark.parametrize("modification", ["extra cheese", "hold the walnuts", "no pesto", "nutmeg on top"])
async def test_a_modification_without_the_callers_allergen_is_added_at_once(repo, db_path, modification):
    steps = [
        *GREET,
        ToolCall("remember_allergy", {"allergen": "tree nuts"}),
        Say("Noted."),
        ToolCall("add_to_order", {"item": "margherita_pizza", "modifications": [modification]}),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    _, llm = await call(repo, steps)
    assert not any(is_error for _, is_error in outputs(llm))
    assert [row[:3] for row in placed(db_path)] == [("margherita_pizza", json.dumps([modification]), "[]")]


async def test_a_modification_added_before_the_allergy_was_said_stops_the_order(repo, db_path):
    steps = [
        *GREET,
        ToolCall("add_to_order", {"item": "margherita_pizza", "modifications": ["walnut topping"]}),
        Say("Added."),
        ToolCall("remember_allergy", {"allergen": "walnuts"}),
        Say("Noted."),
        ToolCall("confirm_order"),
        Say("The walnut topping has tree nuts."),
    ]
    _, llm = await call(repo, steps)
    _, noted, refused = outputs(llm)
    assert "The order has Margherita Pizza: ask whether to remove it." in noted[0]
    assert refused[1] and "Margherita Pizza (tree nuts)" in refused[0]
    assert placed(db_path) == []


async def test_the_same_as_last_time_leaves_out_a_dish_whose_modification_has_the_allergen(repo, db_path):
    first = [
        Say("Hi! Your name?"),
        ToolCall("save_customer_name", {"name": "Anna"}),
        Say("Hi Anna."),
        ToolCall("add_to_order", {"item": "margherita_pizza", "modifications": ["extra pesto"]}),
        ToolCall("add_to_order", {"item": "sparkling_water"}),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    await call(repo, first)
    steps = [*GREET, ToolCall("remember_allergy", {"allergen": "pignoli"}), ToolCall("reorder_last_order"), Say("Ok.")]
    _, llm = await call(repo, steps)
    said = outputs(llm)[1][0]
    assert "Left out, it has their allergen: Margherita Pizza (tree nuts)" in said
    assert "1x Sparkling Water" in said


async def test_on_either_backend_each_go_ahead_is_on_its_line_and_every_allergy_in_the_note(any_repo):
    steps = [
        *GREET,
        ToolCall("remember_allergy", {"allergen": "seafood and mustard"}),
        Say("Noted."),
        ToolCall("add_to_order", {"item": "caesar_salad"}),
        ToolCall("add_to_order", {"item": "margherita_pizza", "modifications": ["anchovies on top"]}),
        Say("Both have or may have your allergens. Still want them?"),
        ToolCall("add_to_order", {"item": "caesar_salad", "accept_allergens": True}),
        ToolCall(
            "add_to_order",
            {"item": "margherita_pizza", "modifications": ["anchovies on top"], "accept_allergens": True},
        ),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    _, llm = await call(any_repo, steps)
    _, salad, pizza, *_ = outputs(llm)
    assert salad[1] and "Caesar Salad contains fish" in salad[0] and 'not checked for ["mustard"]' in salad[0]
    assert pizza[1] and 'The modification "anchovies on top" adds fish' in pizza[0]
    found = await any_repo.read(
        "SELECT i.menu_item, i.modifications, i.accepted_allergens, o.kitchen_note FROM orders AS o"
        " JOIN order_items AS i ON i.order_id = o.id WHERE o.status = 'placed' ORDER BY i.position",
        (),
    )

    def as_list(value) -> list:
        return value if isinstance(value, list) else json.loads(value)

    note = "Allergies: fish, crustacean shellfish, mustard"
    assert [(r[0], as_list(r[1]), as_list(r[2]), r[3]) for r in found] == [
        ("caesar_salad", [], ["fish", "mustard"], note),
        ("margherita_pizza", ["anchovies on top"], ["fish", "mustard"], note),
    ]


async def test_an_allergy_kept_in_the_callers_words_before_the_vocabulary_knew_them_is_checked(repo, db_path):
    legacy = CallerFact(kind="allergy", topic="nuts and dairy", value="nuts and dairy", stated_at=AN_HOUR_AGO)
    await repo.save_call(CallSnapshot(call_id="before", identity=ANNA, started_at=AN_HOUR_AGO, facts=[legacy]))
    steps = [
        *GREET,
        ToolCall("add_to_order", {"item": "pesto_pizza"}),
        ToolCall("add_to_order", {"item": "sparkling_water"}),
        Say("The pesto pizza has milk and tree nuts."),
        ToolCall("forget_allergy", {"allergen": "nuts and dairy"}),
        ToolCall("add_to_order", {"item": "pesto_pizza"}),
        Say("Added."),
    ]
    _, llm = await call(repo, steps)
    pesto, water, dropped, added = outputs(llm)
    assert pesto[1] and "Pesto Pizza contains milk, tree nuts" in pesto[0] and "not checked" not in pesto[0]
    assert not water[1]  # every word of it is known now: nothing is left unchecked
    assert not dropped[1] and '"nuts and dairy"' in dropped[0]
    assert not added[1]
