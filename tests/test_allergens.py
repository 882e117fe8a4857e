"""The allergen vocabulary (the US's nine) and a menu that knows what each item contains."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from memory_agent.allergens import ALLERGENS, allergens_added, in_order, parse_vocabulary, read_allergies, vocabulary
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


def reading(said: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The allergens a statement names, and the things it names that are none of the nine."""
    named = read_allergies(said)
    return in_order(a for n in named for a in n.allergens), tuple(n.topic for n in named if not n.allergens)


NUTS = ("tree nuts", "peanuts")  # "nuts": either, the LLM asks which


@pytest.mark.parametrize(
    ("said", "allergens", "unchecked"),
    [
        *[(name, (name,), ()) for name in ALLERGENS],
        # Several allergens in one statement, each its own.
        ("nuts and dairy", ("milk", *NUTS), ()),
        ("dairy, eggs", ("milk", "egg"), ()),
        ("fish and shellfish", ("fish", "crustacean shellfish"), ()),
        ("peanuts and tree nuts", NUTS, ()),
        ("I can't have nuts or dairy", ("milk", *NUTS), ()),
        ("Dairy & eggs; also sesame", ("milk", "egg", "sesame"), ()),
        ("shrimp/prawns + crab", ("crustacean shellfish",), ()),
        # Everyday words, conditions, cheeses, ingredients, dishes.
        ("seafood", ("fish", "crustacean shellfish"), ()),
        ("no seafood please", ("fish", "crustacean shellfish"), ()),
        ("celiac", ("wheat",), ()),
        ("coeliac disease", ("wheat",), ()),
        ("I'm coeliac", ("wheat",), ()),
        ("I have celiac disease", ("wheat",), ()),
        ("gluten", ("wheat",), ()),
        ("mozzarella", ("milk",), ()),
        ("parmesan", ("milk",), ()),
        ("Parmigiano-Reggiano", ("milk",), ()),
        ("ricotta", ("milk",), ()),
        ("mascarpone", ("milk",), ()),
        ("cream", ("milk",), ()),
        ("lactose intolerant", ("milk",), ()),
        ("goat cheese", ("milk",), ()),
        ("pasta", ("wheat",), ()),
        ("bread", ("wheat",), ()),
        ("semolina", ("wheat",), ()),
        ("flour", ("wheat",), ()),
        ("mayonnaise", ("egg",), ()),
        ("mayo", ("egg",), ()),
        ("I'm allergic to eggs", ("egg",), ()),
        ("pignoli", ("tree nuts",), ()),
        ("pine nuts", ("tree nuts",), ()),
        ("Almonds", ("tree nuts",), ()),
        ("an allergy to walnuts", ("tree nuts",), ()),
        ("marzipan", ("tree nuts",), ()),
        ("chestnuts", ("tree nuts",), ()),
        ("pesto", ("milk", "tree nuts"), ()),
        ("mac and cheese", ("milk", "wheat"), ()),
        ("custard", ("milk", "egg"), ()),
        ("a nut allergy", NUTS, ()),
        ("peanut", ("peanuts",), ()),
        ("PEANUTS", ("peanuts",), ()),
        ("peanut butter", ("peanuts",), ()),  # not milk
        ("almond milk", ("tree nuts",), ()),  # not milk
        ("soy milk", ("soybeans",), ()),
        ("tofu", ("soybeans",), ()),
        ("tahini", ("sesame",), ()),
        ("Sésame", ("sesame",), ()),
        ("anchovies", ("fish",), ()),
        ("Prawns", ("crustacean shellfish",), ()),
        ("lobsters", ("crustacean shellfish",), ()),
        ("severely allergic to shrimp and mustard", ("crustacean shellfish",), ("mustard",)),
        # None of the nine, and look-alikes: kept in the caller's words, the menu is not checked for them.
        ("mustard", (), ("mustard",)),
        ("I'm allergic to mustard and celery", (), ("mustard", "celery")),
        ("strawberries", (), ("strawberry",)),
        ("clams", (), ("clam",)),  # molluscs are not crustaceans
        ("nutmeg", (), ("nutmeg",)),
        ("coconut", (), ("coconut",)),
        ("coconut milk", (), ("coconut milk",)),
        ("butternut squash", (), ("butternut squash",)),
        ("water chestnuts", (), ("water chestnut",)),
        ("buckwheat", (), ("buckwheat",)),
        ("eggplant", (), ("eggplant",)),
        ("cocoa butter", (), ("cocoa butter",)),
        ("barley and rye", (), ("barley", "rye")),  # gluten, but the menu tracks wheat only
        # Nothing named.
        ("", (), ()),
        ("allergic", (), ()),
        ("I'm very allergic, please", (), ()),
    ],
)
def test_what_callers_say_maps_to_the_vocabulary(said, allergens, unchecked):
    assert reading(said) == (allergens, unchecked)


def test_a_broad_word_asks_which_and_a_dish_does_not():
    (seafood,) = read_allergies("seafood")
    (pesto,) = read_allergies("pesto")
    assert (seafood.ask, pesto.ask) == (True, False)


@pytest.mark.parametrize(
    ("modification", "added"),
    [
        ("add pine nuts", ("tree nuts",)),
        ("extra pesto", ("milk", "tree nuts")),
        ("walnut topping", ("tree nuts",)),
        ("with walnuts", ("tree nuts",)),
        ("extra cheese", ("milk",)),
        ("cheese on the side", ("milk",)),
        ("creamy sauce", ("milk",)),
        ("breaded", ("wheat",)),
        ("no onions, extra parmesan", ("milk",)),
        ("no onions extra parmesan", ("milk",)),
        ("a drizzle of sesame oil", ("sesame",)),
        ("anchovies", ("fish",)),
        ("carbonara sauce on top", ("milk", "egg", "wheat")),  # a dish of the menu, by its name
        ("a scoop of tiramisu", ("milk", "egg", "wheat")),
        # Taken away, or none of the nine.
        ("no cheese", ()),
        ("without walnuts", ()),
        ("hold the parmesan", ()),
        ("dairy-free", ()),
        ("no onions", ()),
        ("extra basil", ()),
        ("well done", ()),
        ("nutmeg on top", ()),
        ("coconut flakes", ()),
        ("butternut squash", ()),
        ("extra sparkling water", ()),
    ],
)
def test_what_a_modification_adds(modification, added):
    assert MENU.allergens_added(modification) == added


def test_without_the_menu_a_dish_name_adds_nothing_but_its_ingredients_do():
    assert allergens_added("carbonara sauce on top") == ()
    assert allergens_added("add pine nuts") == ("tree nuts",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[said]\nmilk = ["cheese"]\n[several]\ncheese = ["milk", "egg"]\n', "'cheese' is listed twice"),
        ('[said]\nmustard = ["mustard seed"]\n', "unknown allergen 'mustard'"),
        ('[ask]\nnuts = ["tree nut"]\n', "unknown allergen 'tree nut'"),
    ],
)
def test_a_vocabulary_with_a_mistake_is_refused_naming_it(text, message):
    with pytest.raises(ValueError, match=message):
        parse_vocabulary(text)


def test_the_vocabulary_is_read_from_its_data_file():
    path = Path(__file__).parent.parent / "memory_agent" / "allergens.toml"
    assert vocabulary() == parse_vocabulary(path.read_text(encoding="utf-8"))


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
        (["nuts"], "menu item x_item lists unknown allergen 'nuts': did you mean 'tree nuts' or 'peanuts'?"),
        (["pignoli"], "menu item x_item lists unknown allergen 'pignoli': did you mean 'tree nuts'?"),
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
