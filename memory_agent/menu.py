"""The menu as validated data: loaded from TOML, searched by spoken names, checked for allergens,
rendered for the LLM."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from memory_agent.allergens import ALLERGENS, Term, allergens_added, fold, in_order, read_allergies, vocabulary
from memory_agent.speech import format_cents
from memory_agent.text import normalize as normalize

_FILLER = re.compile(r"^(?:a|an|the|one|some|please|order of|an order of)\s+")


class MenuItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    name: str = Field(min_length=1)
    category: str = Field(min_length=1)
    price_cents: int = Field(gt=0)
    description: str = ""
    aliases: tuple[str, ...] = ()
    # In the vocabulary of memory_agent.allergens (the US's nine), as the menu file lists them.
    # Required, even if empty: an item nobody checked must not pass for one without allergens.
    allergens: tuple[str, ...]
    available: bool = True  # False: on the menu, but not to be ordered today

    @field_validator("allergens")
    @classmethod
    def _allergens_are_in_the_vocabulary(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        item = info.data.get("id", "an item")
        for allergen in value:
            if allergen not in ALLERGENS:
                meant = in_order(a for named in read_allergies(allergen) for a in named.allergens)
                hint = f"did you mean {' or '.join(map(repr, meant))}? " if meant else ""
                raise ValueError(
                    f"menu item {item} lists unknown allergen {allergen!r}: {hint}use one of {', '.join(ALLERGENS)}"
                )
        if len(set(value)) != len(value):
            raise ValueError(f"menu item {item} lists an allergen twice")
        return value


class Menu(BaseModel):
    model_config = ConfigDict(frozen=True)

    restaurant: str
    items: tuple[MenuItem, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_are_unambiguous(self) -> Menu:
        seen: dict[str, str] = {}
        for item in self.items:
            for key in (item.id, item.name, *item.aliases):
                norm = normalize(key)
                if seen.setdefault(norm, item.id) != item.id:
                    raise ValueError(f"menu name {key!r} is used by both {seen[norm]} and {item.id}")
        return self

    @property
    def _index(self) -> dict[str, MenuItem]:
        return _index_of(self.items)

    def get(self, item_id: str) -> MenuItem | None:
        return next((item for item in self.items if item.id == item_id), None)

    def find(self, spoken: str) -> MenuItem | None:
        """The item a caller means by an id, a name or a common spoken variant; None if unclear."""
        text = normalize(spoken)
        while (stripped := _FILLER.sub("", text)) != text:
            text = stripped
        for candidate in (text, text.removesuffix("s"), text.removesuffix("es")):
            if candidate in self._index:
                return self._index[candidate]
        matches = {item.id: item for key, item in self._index.items() if text and _words_in(text, key)}
        return next(iter(matches.values())) if len(matches) == 1 else None

    def contains(self, item: MenuItem | str, allergens: Iterable[str]) -> list[str]:
        """Which of ``allergens`` (canonical names; others are ignored) the item, or item id, contains,
        in the vocabulary's order. An unknown id raises KeyError: a dish we cannot check is never safe."""
        dish = self.get(item) if isinstance(item, str) else item
        if dish is None:
            raise KeyError(f"no menu item {item!r}")
        wanted = set(allergens)
        return [a for a in ALLERGENS if a in wanted and a in dish.allergens]

    def allergens_added(self, modification: str) -> tuple[str, ...]:
        """The allergens a modification adds to a dish, by the ingredients ("walnut topping") or the
        menu's dishes ("carbonara sauce on top") it names; none for what it takes away ("no cheese")."""
        return allergens_added(modification, _modification_terms(self.items))

    def prompt_listing(self) -> str:
        """The menu as the LLM sees it, one short line per item: id, name, price, allergens.

        Every request of the OrderTaker carries it, so it is terse: no categories or descriptions.
        An unavailable item stays listed, marked, without price: the LLM can tell the caller at once
        instead of spending a tool call (a whole extra request) to find out."""
        lines = []
        for item in self.items:
            if not item.available:
                lines.append(f"- {item.id}: {item.name}, not available today")
                continue
            lines.append(
                f"- {item.id}: {item.name} {format_cents(item.price_cents)} [{', '.join(item.allergens) or 'none'}]"
            )
        return "\n".join(lines)


# Keyed by the items themselves (frozen, hashable), not cached on the menu: a ``model_copy`` with
# other items (today's availability, a new price) carries no stale index.
@lru_cache(maxsize=16)
def _index_of(items: tuple[MenuItem, ...]) -> dict[str, MenuItem]:
    return {normalize(key): item for item in items for key in (item.id, item.name, *item.aliases)}


@lru_cache(maxsize=16)
def _modification_terms(items: tuple[MenuItem, ...]) -> dict[str, Term]:
    """The allergen vocabulary with the menu's dish names in it; the vocabulary's word wins ("pesto")."""
    dishes = {fold(key): Term(in_order(item.allergens)) for item in items for key in (item.name, *item.aliases)}
    return {**{key: term for key, term in dishes.items() if key}, **vocabulary()}


def _words_in(text: str, key: str) -> bool:
    return f" {text} " in f" {key} "


def load_menu(path: Path | None = None) -> Menu:
    """Load and validate a menu file; the packaged Bella Vista menu by default (parsed once per process)."""
    if path is None:
        return _packaged_menu()
    return Menu.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def _packaged_menu() -> Menu:
    raw = resources.files("memory_agent").joinpath("menu.toml").read_text(encoding="utf-8")
    return Menu.model_validate(tomllib.loads(raw))  # frozen: one copy serves every call
