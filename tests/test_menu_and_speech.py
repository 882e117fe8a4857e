"""The menu is validated data matched by what callers say; money is spoken from integer cents."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from memory_agent.menu import Menu, load_menu
from memory_agent.speech import format_cents, join_words

MENU = load_menu()


def test_default_menu_has_bella_vista_prices_in_cents():
    prices = {item.name: item.price_cents for item in MENU.items}
    assert prices == {
        "Margherita Pizza": 1450,
        "Pepperoni Pizza": 1600,
        "Pesto Pizza": 1550,
        "Caesar Salad": 975,
        "Spaghetti Carbonara": 1525,
        "Tiramisu": 750,
        "Sparkling Water": 300,
    }


@pytest.mark.parametrize(
    ("spoken", "item_id"),
    [
        ("margherita", "margherita_pizza"),
        ("Margherita Pizza", "margherita_pizza"),
        ("MARGHERITA_PIZZA", "margherita_pizza"),
        ("a carbonara", "spaghetti_carbonara"),
        ("the spaghetti carbonara", "spaghetti_carbonara"),
        ("tiramisù", "tiramisu"),
        ("tiramisus", "tiramisu"),
        ("pesto", "pesto_pizza"),
        ("a pesto pizza", "pesto_pizza"),
        ("two caesar salads", None),
        ("caesar salads", "caesar_salad"),
        ("pizza", None),
        ("sushi", None),
        ("", None),
    ],
)
def test_items_are_found_by_spoken_variants(spoken, item_id):
    found = MENU.find(spoken)
    assert (found.id if found else None) == item_id


def test_menu_prompt_lists_every_item_with_its_price_and_allergens_one_line_each():
    listing = MENU.prompt_listing().splitlines()
    assert len(listing) == len(MENU.items)
    for item in MENU.items:
        allergens = ", ".join(item.allergens) or "none"
        assert f"- {item.id}: {item.name} {format_cents(item.price_cents)} [{allergens}]" in listing
    assert "- pesto_pizza: Pesto Pizza $15.50 [tree nuts, milk, wheat]" in listing
    assert "- sparkling_water: Sparkling Water $3.00 [none]" in listing


@pytest.mark.parametrize(
    "bad_item",
    [
        {"id": "free", "name": "Free", "category": "X", "price_cents": 0, "allergens": []},
        {"id": "float", "name": "Float", "category": "X", "price_cents": 9.99, "allergens": []},
        {"id": "Bad Id", "name": "Bad", "category": "X", "price_cents": 100, "allergens": []},
        {"id": "dup", "name": "Tiramisu", "category": "X", "price_cents": 100, "allergens": []},
        {"id": "typo", "name": "Typo", "category": "X", "price_cents": 100, "allergens": ["sesamee"]},
    ],
)
def test_invalid_menus_are_refused(bad_item):
    items = [item.model_dump() for item in MENU.items] + [bad_item]
    with pytest.raises(ValidationError):
        Menu.model_validate({"restaurant": "X", "items": items})


@pytest.mark.parametrize(
    ("cents", "shown"),
    [(1450, "$14.50"), (300, "$3.00"), (1, "$0.01"), (123456, "$1,234.56"), (0, "$0.00"), (-250, "-$2.50")],
)
def test_cents_are_formatted_as_dollars(cents, shown):
    assert format_cents(cents) == shown


def test_join_words():
    assert join_words(["a"]) == "a"
    assert join_words(["a", "b", "c"]) == "a, b and c"
