"""Memory worth having, over several calls through the real agents: allergies that protect the
order, preferences that supersede each other, "my usual", the past on request, and a memory
text that stays short and reaches only the caller it belongs to."""

from __future__ import annotations

import json

from conftest import scripted_call
from db import CallSnapshot, Order, OrderLine
from db.schema.models import CallerFact
from memory_agent.agents.base import instructions
from memory_agent.memory import DATA_NOTE, MAX_TEXT, memory_text
from memory_agent.menu import Menu, load_menu
from memory_agent.scripted_llm import Say, ToolCall

ANNA = "+14155550177"  # trusted caller ID in these calls: known before the first word

GREET = [Say("Hello Anna!"), ToolCall("transfer_to_order_taker"), Say("What would you like?")]


def outputs(llm) -> list[tuple[str, bool]]:
    """Every tool output the LLM was shown in the call (a handoff has none), with whether it was an error."""
    seen: dict[str, tuple[str, bool]] = {}
    for request in llm.requests:
        for item in request.chat_ctx.items:
            if item.type == "function_call_output":
                seen.setdefault(item.call_id, (item.output, item.is_error))
    return list(seen.values())


def data_of(text: str) -> dict:
    block = text.split("<caller-data>\n", 1)[1].split("\n</caller-data>", 1)[0]
    return json.loads(block)


def caller_data(llm, n: int = 0) -> dict:
    """The caller-data block of the instructions of request ``n``."""
    return data_of(llm.requests[n].instructions)


def everything_told(llm) -> str:
    return "\n".join(
        (item.text_content or "") if item.type == "message" else str(getattr(item, "output", ""))
        for request in llm.requests
        for item in request.chat_ctx.items
    )


def menu_with(**changes: dict) -> Menu:
    """The Bella Vista menu with some items changed (e.g. unavailable, repriced)."""
    menu = load_menu()
    items = [item.model_copy(update=changes.get(item.id, {})) for item in menu.items]
    return menu.model_copy(update={"items": tuple(items)})


async def call(repo, steps, lines=(), identity=ANNA, **options):
    return await scripted_call(repo, identity, steps, lines or ["..."] * 8, trust_caller_id=True, **options)


# -- allergies ----------------------------------------------------------------------------------


async def test_an_allergy_said_once_protects_every_later_order_until_withdrawn(any_repo, backend):
    await call(
        any_repo,
        [
            Say("Hi! Your name?"),
            ToolCall("save_customer_name", {"name": "Anna"}),
            Say("Hi Anna."),
            ToolCall("remember_allergy", {"allergen": "pine nuts"}),
            Say("Noted."),
        ],
    )
    assert backend.rows("SELECT kind, topic, value FROM caller_facts") == [("allergy", "tree nuts", "pine nuts")]

    steps = [
        *GREET,
        ToolCall("add_to_order", {"item": "pesto_pizza"}),
        Say("That has tree nuts."),
        ToolCall("add_to_order", {"item": "pesto_pizza", "accept_allergens": True}),
        Say("Added. Place it?"),
        ToolCall("confirm_order"),
        Say("Still allergic to tree nuts?"),
        ToolCall("confirm_order", {"allergies_checked": True}),
        Say("Placed."),
    ]
    _, llm = await call(any_repo, steps)

    assert caller_data(llm)["allergies"] == ["tree nuts"]
    told = outputs(llm)
    refused, accepted, unchecked = told  # then the order is placed, and the call goes on to feedback
    assert refused[1] and "Pesto Pizza" in refused[0] and "tree nuts" in refused[0]
    assert not accepted[1]
    assert unchecked[1] and "still allergic" in unchecked[0] and "tree nuts" in unchecked[0]
    assert backend.rows("SELECT menu_item, accepted_allergens FROM order_items") == [("pesto_pizza", '["tree nuts"]')]
    assert backend.rows("SELECT status, kitchen_note FROM orders") == [("placed", "Allergies: tree nuts")]

    await call(any_repo, [*GREET, ToolCall("forget_allergy", {"allergen": "nuts"}), Say("Dropped.")])
    _, llm = await call(
        any_repo,
        [
            *GREET,
            ToolCall("add_to_order", {"item": "pesto_pizza"}),
            Say("Added."),
            ToolCall("confirm_order"),
            Say("Placed."),
        ],
    )
    assert "allergies" not in caller_data(llm)
    assert "nuts" not in llm.requests[0].instructions
    assert [error for _, error in outputs(llm)] == [False]
    assert backend.rows("SELECT kitchen_note FROM orders ORDER BY id")[-1] == (None,)
    assert backend.rows("SELECT topic, value, superseded_at IS NULL FROM caller_facts ORDER BY id") == [
        ("tree nuts", "pine nuts", 0),
        ("tree nuts", None, 1),
    ]


async def test_an_allergy_stated_on_this_call_is_not_asked_again_and_reaches_the_kitchen(any_repo, backend):
    steps = [
        *GREET,
        ToolCall("remember_allergy", {"allergen": "Dairy"}),
        Say("Noted."),
        ToolCall("remember_allergy", {"allergen": "mustard"}),
        Say("Noted."),
        ToolCall("add_to_order", {"item": "tiramisu"}),
        Say("Tiramisu has milk."),
        ToolCall("add_to_order", {"item": "sparkling_water"}),
        Say("We can't check it for mustard; still want it?"),
        ToolCall("add_to_order", {"item": "sparkling_water", "accept_allergens": True}),
        Say("Water added."),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    _, llm = await call(any_repo, steps)
    told = outputs(llm)
    assert "milk" in told[0][0] and "Tiramisu" in told[0][0]
    assert 'not checked for ["mustard"]' in told[1][0]
    assert told[2][1] and "milk" in told[2][0]
    assert told[3][1] and 'not checked for ["mustard"]' in told[3][0] and "Sparkling Water" in told[3][0]
    assert len(told) == 5 and not told[4][1]
    assert backend.rows("SELECT kitchen_note FROM orders") == [("Allergies: milk, mustard",)]
    assert backend.rows("SELECT menu_item, accepted_allergens FROM order_items") == [("sparkling_water", '["mustard"]')]


async def test_a_caller_not_yet_known_is_protected_on_this_call_but_nothing_is_remembered(any_repo, backend):
    steps = [
        Say("Hello! Your name?"),
        ToolCall("transfer_to_order_taker"),
        Say("Sure."),
        ToolCall("remember_allergy", {"allergen": "sesame seeds"}),
        Say("Noted."),
        ToolCall("add_to_order", {"item": "margherita_pizza"}),
        Say("Added."),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    _, llm = await scripted_call(any_repo, None, steps, ["..."] * 5)
    assert "for this call only" in outputs(llm)[0][0]
    assert backend.rows("SELECT kitchen_note FROM orders") == [("Allergies: sesame",)]
    assert backend.rows("SELECT count(*) FROM caller_facts") == [(0,)]


# -- preferences --------------------------------------------------------------------------------


async def test_a_new_preference_on_the_same_subject_supersedes_the_old(any_repo, backend):
    await call(
        any_repo, [*GREET, ToolCall("remember_preference", {"about": "diet", "preference": "vegetarian"}), Say("Ok.")]
    )
    _, llm = await call(
        any_repo,
        [
            *GREET,
            ToolCall("remember_preference", {"about": "Diet", "preference": "eats meat again"}),
            Say("Ok."),
            ToolCall("remember_preference", {"about": "crust", "preference": "well done"}),
            Say("Ok."),
        ],
    )
    assert caller_data(llm)["preferences"] == ["diet: vegetarian"]

    _, llm = await call(any_repo, [*GREET, ToolCall("forget_preference", {"about": "crust"}), Say("Dropped.")])
    assert caller_data(llm)["preferences"] == ["crust: well done", "diet: eats meat again"]
    assert "vegetarian" not in llm.requests[0].instructions

    _, llm = await call(any_repo, [*GREET, ToolCall("forget_preference", {"about": "onions"}), Say("None.")])
    assert caller_data(llm)["preferences"] == ["diet: eats meat again"]
    assert outputs(llm)[0][1]  # nothing about onions on record
    assert backend.rows("SELECT topic, value, superseded_at IS NULL FROM caller_facts ORDER BY id") == [
        ("diet", "vegetarian", 0),
        ("diet", "eats meat again", 1),
        ("crust", "well done", 0),
        ("crust", None, 1),
    ]


# -- the usual and the past ---------------------------------------------------------------------


def order_steps(*items: str) -> list:
    return [
        *GREET,
        *[ToolCall("add_to_order", {"item": item}) for item in items],
        Say("Place it?"),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]


async def test_my_usual_is_the_most_frequent_order_checked_against_todays_menu(any_repo, backend):
    for items in [
        ("margherita_pizza", "tiramisu"),
        ("caesar_salad",),
        ("margherita_pizza", "tiramisu"),
        ("spaghetti_carbonara",),
        ("tiramisu", "margherita_pizza"),
    ]:
        await call(any_repo, order_steps(*items))

    today = menu_with(tiramisu={"available": False}, margherita_pizza={"price_cents": 1500})
    _, llm = await call(
        any_repo,
        [*GREET, ToolCall("reorder_usual"), Say("Added."), ToolCall("confirm_order"), Say("Placed.")],
        menu=today,
    )
    said = outputs(llm)[0][0]
    assert "Tiramisu" in said.split("Not available today")[1]
    assert "Margherita Pizza now $15.00 (was $14.50)" in said
    assert backend.rows(
        "SELECT menu_item, unit_price_cents FROM order_items WHERE order_id = (SELECT max(id) FROM orders)"
    ) == [("margherita_pizza", 1500)]


async def test_the_same_as_last_time_leaves_out_what_is_unavailable_or_unsafe(any_repo, backend):
    await call(any_repo, order_steps("pesto_pizza", "tiramisu", "sparkling_water"))
    steps = [
        *GREET,
        ToolCall("remember_allergy", {"allergen": "walnuts"}),
        Say("Noted."),
        ToolCall("reorder_last_order"),
        Say("Added."),
    ]
    _, llm = await call(any_repo, steps, menu=menu_with(tiramisu={"available": False}))
    said = outputs(llm)[1][0]
    assert "Not available today, left out: Tiramisu" in said
    assert "Left out, it has their allergen: Pesto Pizza (tree nuts)" in said
    assert "1x Sparkling Water" in said


async def test_past_orders_on_request_newest_first_and_bounded(any_repo):
    for item in ["caesar_salad", "spaghetti_carbonara", "tiramisu", "pepperoni_pizza"]:
        await call(any_repo, order_steps(item))
    _, llm = await call(
        any_repo,
        [
            *GREET,
            ToolCall("recall_past_orders", {"limit": 3}),
            Say("You had..."),
            ToolCall("recall_past_orders", {"limit": 500}),
            Say("Hm."),
        ],
        timezone="America/New_York",
    )
    (listed, ok), (_, too_many) = outputs(llm)
    assert not ok and too_many
    orders = json.loads(listed.split("(caller data): ", 1)[1])
    assert [o["items"] for o in orders] == [["1x Pepperoni Pizza"], ["1x Tiramisu"], ["1x Spaghetti Carbonara"]]
    assert all(o["days_ago"] == 0 for o in orders)


# -- the memory text ----------------------------------------------------------------------------


async def test_the_memory_text_stays_bounded_for_a_long_history(any_repo):
    lines = [OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=2, unit_price_cents=750)]
    for n in range(1000):
        await any_repo.save_call(
            CallSnapshot(
                call_id=f"c{n}",
                identity=ANNA,
                started_at=f"2025-01-01T00:00:{n % 60:02d}.{n:06d}+00:00",
                ended_at="2025-01-01T01:00:00+00:00",
                end_reason="done",
                order=Order(status="placed", items=lines * 1),
                facts=[
                    CallerFact(
                        kind="allergy" if n % 2 else "preference",
                        topic=f"topic {n % 50}",
                        value=f"something rather long said on call {n} " * 3,
                        stated_at=f"2025-01-01T{n:06d}",
                    )
                ]
                if n < 50
                else [],
            )
        )
    memory = await any_repo.recall(ANNA)
    assert memory is not None and memory.order_count == 1000 and len(memory.facts) == 50
    text = memory_text(memory)
    assert len(text) <= MAX_TEXT
    data = data_of(text)
    assert list(data)[:2] == ["allergies", "preferences"]
    assert data["allergies"][-1].startswith("and ")


async def test_a_stranger_and_another_household_member_never_see_a_callers_facts(any_repo):
    await call(
        any_repo,
        [
            Say("Hi! Name?"),
            ToolCall("save_customer_name", {"name": "Anna"}),
            Say("Hi Anna."),
            ToolCall("remember_allergy", {"allergen": "shrimp"}),
            ToolCall("remember_preference", {"about": "olives", "preference": "extra olives"}),
            Say("Ok."),
        ],
    )
    # The same number, caller ID not trusted, nobody says a name.
    _, stranger = await scripted_call(
        any_repo,
        ANNA,
        [Say("Welcome back! Who is it?"), ToolCall("transfer_to_order_taker"), Say("Sure.")],
        ["hi", "order"],
    )
    # The same number, another person of the household.
    _, brother = await scripted_call(
        any_repo,
        ANNA,
        [
            Say("Who is it?"),
            ToolCall("save_customer_name", {"name": "Luca"}),
            Say("Hi Luca."),
            Say("Sure."),
        ],
        ["Luca", "order"],
    )
    for llm in (stranger, brother):
        said = everything_told(llm)
        assert "shrimp" not in said and "crustacean" not in said and "olives" not in said


async def test_the_feedback_agent_gets_the_name_only(any_repo):
    await call(
        any_repo,
        [
            Say("Hi! Name?"),
            ToolCall("save_customer_name", {"name": "Anna"}),
            ToolCall("remember_allergy", {"allergen": "egg"}),
            Say("Ok."),
            Say("What would you like?"),
            ToolCall("add_to_order", {"item": "margherita_pizza"}),
            ToolCall("confirm_order"),
            Say("Placed."),
        ],
    )
    steps = [
        *GREET,
        ToolCall("add_to_order", {"item": "sparkling_water"}),
        Say("Still allergic to egg?"),
        ToolCall("confirm_order", {"allergies_checked": True}),
        Say("Placed, ready in 25 minutes. Rate us?"),
    ]
    _, llm = await call(any_repo, steps)
    by_agent = {r.instructions.split("\n\n")[1][:40]: r.instructions for r in llm.requests}
    feedback = next(text for task, text in by_agent.items() if task.startswith("The order is done"))
    # The name, and this call's order just placed; nothing of the caller's past.
    assert "Anna" in feedback and "Sparkling" in feedback
    assert "egg" not in feedback and "Margherita" not in feedback
    ordering = next(text for task, text in by_agent.items() if task.startswith("You take the caller's order"))
    assert '"allergies": ["egg"]' in ordering


def test_instructions_put_everything_about_the_caller_after_the_static_part():
    from memory_agent.agents.order_taker import INSTRUCTIONS
    from memory_agent.state import Userdata

    menu = load_menu()
    task = INSTRUCTIONS.format(menu=menu.prompt_listing())
    ud = Userdata(journal=None, menu=menu, call_id="c", caller=ANNA, started_at="", recall_budget_s=1.0)  # type: ignore[arg-type]
    ud.caller_name = "Anna"
    ud.state_fact("allergy", "egg", "eggs")
    text = instructions(ud, task)
    static = text.split("Anna")[0].split("eggs")[0]
    assert task in static
    assert DATA_NOTE in static  # how to read caller data is said once, before any of it


async def test_an_allergy_stated_after_the_dish_was_added_stops_the_order_until_resolved(any_repo, backend):
    steps = [
        *GREET,
        ToolCall("add_to_order", {"item": "pesto_pizza"}),
        Say("Added."),
        ToolCall("remember_allergy", {"allergen": "pine nuts"}),
        Say("Noted; the pesto pizza has them."),
        ToolCall("confirm_order"),
        Say("It has pine nuts. Remove it?"),
        ToolCall("remove_from_order", {"item": "pesto_pizza"}),
        ToolCall("add_to_order", {"item": "pesto_pizza", "accept_allergens": True}),
        Say("Added anyway. Place it?"),
        ToolCall("confirm_order"),
        Say("Placed."),
    ]
    _, llm = await call(any_repo, steps, identity=None)
    told = outputs(llm)
    assert "The order has Pesto Pizza" in told[1][0]
    refused = told[2]
    assert refused[1] and "Pesto Pizza (tree nuts)" in refused[0] and "allergic" in refused[0]
    assert backend.rows(
        "SELECT o.status, i.accepted_allergens FROM orders AS o JOIN order_items AS i ON i.order_id = o.id"
    ) == [("placed", '["tree nuts"]')]
