"""The allergen vocabulary (the US's nine) and a menu that knows what each item contains."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from memory_agent.allergens import ALLERGENS, normalize_allergen
from memory_agent.menu import Menu, load_menu

MENU = load_menu()


def test_the_vocabulary_is_the_us_nine_major_allergens_in_the_fda_order():
    assert ALLERGENS == (
        "milk",
        "egg",
        "fish",
        "crustacean shellfish",
        "tree nuts",
        "peanuts",
        "wheat",
        "soybeans",
        "sesame",
    )


@pytest.mark.parametrize(
    ("said", "allergen"),
    [
        *[(name, name) for name in ALLERGENS],
        ("nuts", "tree nuts"),
        ("pine nuts", "tree nuts"),
        ("Almonds", "tree nuts"),
        ("walnut", "tree nuts"),
        ("hazelnuts", "tree nuts"),
        ("cashews", "tree nuts"),
        ("pecans", "tree nuts"),
        ("pistachios", "tree nuts"),
        ("a nut allergy", "tree nuts"),
        ("dairy", "milk"),
        ("lactose", "milk"),
        ("cheese", "milk"),
        ("cream", "milk"),
        ("butter", "milk"),
        ("lactose intolerant", "milk"),
        ("goat cheese", "milk"),
        ("eggs", "egg"),
        ("I'm allergic to eggs", "egg"),
        ("gluten", "wheat"),
        ("flour", "wheat"),
        ("shellfish", "crustacean shellfish"),
        ("shrimp", "crustacean shellfish"),
        ("Prawns", "crustacean shellfish"),
        ("crab", "crustacean shellfish"),
        ("lobsters", "crustacean shellfish"),
        ("soy", "soybeans"),
        ("soya", "soybeans"),
        ("peanut", "peanuts"),
        ("PEANUTS", "peanuts"),
        ("groundnuts", "peanuts"),
        ("peanut butter", "peanuts"),
        ("sesame seeds", "sesame"),
        ("Sésame", "sesame"),
        ("anchovies", "fish"),
        ("salmon", "fish"),
        ("tuna", "fish"),
        ("an allergy to walnuts", "tree nuts"),
        ("allergic to dairy", "milk"),
        # Not one of the nine: kept as the caller's words, never checked against the menu.
        ("mustard", None),
        ("celery", None),
        ("strawberries", None),
        ("clams", None),  # molluscs are not crustaceans
        ("nutmeg", None),
        ("coconut", None),
        ("almond milk", None),  # two allergens in one phrase: one fact each
        ("", None),
        ("allergic", None),
    ],
)
def test_what_callers_say_maps_to_the_vocabulary(said, allergen):
    assert normalize_allergen(said) == allergen


def test_default_menu_lists_the_allergens_of_each_item():
    assert {item.name: item.allergens for item in MENU.items} == {
        "Margherita Pizza": ("milk", "wheat"),
        "Pepperoni Pizza": ("milk", "wheat"),
        "Pesto Pizza": ("tree nuts", "milk", "wheat"),
        "Caesar Salad": ("egg", "fish", "milk", "wheat"),
        "Spaghetti Carbonara": ("egg", "milk", "wheat"),
        "Tiramisu": ("egg", "milk", "wheat"),
        "Sparkling Water": (),
    }


def test_pesto_pizza_is_on_the_menu_and_found_by_pesto():
    pesto = MENU.find("pesto")
    assert pesto is not None
    assert (pesto.id, pesto.name, pesto.price_cents) == ("pesto_pizza", "Pesto Pizza", 1550)
    assert "pine nuts" in pesto.description


def test_every_default_item_is_available():
    assert all(item.available for item in MENU.items)


@pytest.mark.parametrize(
    ("item", "asked", "contained"),
    [
        ("caesar_salad", ["wheat", "fish", "milk", "egg"], ["milk", "egg", "fish", "wheat"]),
        ("pesto_pizza", ["sesame", "tree nuts"], ["tree nuts"]),
        ("margherita_pizza", ["tree nuts", "egg"], []),
        ("sparkling_water", list(ALLERGENS), []),
        ("tiramisu", ["mustard", "egg"], ["egg"]),  # a free-text allergy is never found in a dish
    ],
)
def test_contains_names_the_asked_allergens_an_item_has_in_vocabulary_order(item, asked, contained):
    assert MENU.contains(item, asked) == contained
    assert MENU.contains(MENU.get(item), asked) == contained


def test_contains_refuses_an_item_not_on_the_menu():
    with pytest.raises(KeyError, match="sushi"):
        MENU.contains("sushi", ["fish"])


def menu_with_item(**fields) -> dict:
    item = {"id": "x_item", "name": "X", "category": "X", "price_cents": 100, "allergens": [], **fields}
    return {"restaurant": "X", "items": [item]}


@pytest.mark.parametrize(
    ("allergens", "message"),
    [
        (["nuts"], "menu item x_item lists unknown allergen 'nuts': did you mean 'tree nuts'?"),
        (["wheet"], "menu item x_item lists unknown allergen 'wheet': use one of milk, egg,"),
        (["mustard"], "unknown allergen 'mustard'"),
        (["Milk"], "unknown allergen 'Milk': did you mean 'milk'?"),
        (["milk", "milk"], "menu item x_item lists an allergen twice"),
    ],
)
def test_an_allergen_outside_the_vocabulary_is_refused_naming_the_item(allergens, message):
    with pytest.raises(ValidationError, match=message):
        Menu.model_validate(menu_with_item(allergens=allergens))


def test_an_item_must_list_its_allergens_even_if_none():
    data = menu_with_item()
    del data["items"][0]["allergens"]
    with pytest.raises(ValidationError, match="allergens"):
        Menu.model_validate(data)


def test_an_unavailable_item_is_listed_as_such_without_price_or_allergens():
    item = MENU.get("tiramisu")
    assert item is not None
    menu = MENU.model_copy(
        update={"items": tuple(i.model_copy(update={"available": i.id != "tiramisu"}) for i in MENU.items)}
    )
    listing = menu.prompt_listing().splitlines()
    assert "- tiramisu: Tiramisu, not available today" in listing
    assert menu.find("tiramisu") == item.model_copy(update={"available": False})  # still recognized when asked for


def test_unavailable_is_read_from_the_menu_file(tmp_path):
    path = tmp_path / "menu.toml"
    path.write_text(
        'restaurant = "X"\n[[items]]\nid = "soup"\nname = "Soup"\ncategory = "Soups"\nprice_cents = 500\n'
        'allergens = ["milk"]\navailable = false\n',
        encoding="utf-8",
    )
    assert load_menu(path).get("soup").available is False
