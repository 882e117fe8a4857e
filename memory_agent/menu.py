"""The menu as validated data: loaded from TOML, searched by spoken names, rendered for the LLM."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from functools import cached_property
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from memory_agent.speech import format_cents

_FILLER = re.compile(r"^(?:a|an|the|one|some|please|order of|an order of)\s+")


class MenuItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    name: str = Field(min_length=1)
    category: str = Field(min_length=1)
    price_cents: int = Field(gt=0)
    description: str = ""
    aliases: tuple[str, ...] = ()


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

    @cached_property
    def _index(self) -> dict[str, MenuItem]:
        index = {}
        for item in self.items:
            for key in (item.id, item.name, *item.aliases):
                index[normalize(key)] = item
        return index

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

    def prompt_listing(self) -> str:
        """The menu as the LLM sees it: one line per item, grouped by category, ids first."""
        lines: list[str] = []
        for category in dict.fromkeys(item.category for item in self.items):
            lines.append(f"{category}:")
            for item in self.items:
                if item.category == category:
                    lines.append(
                        f"- {item.id}: {item.name}, {format_cents(item.price_cents)}"
                        + (f" ({item.description})" if item.description else "")
                    )
        return "\n".join(lines)


def normalize(text: str) -> str:
    """Lowercase, accents folded, punctuation dropped, spaces collapsed."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch))
    plain = re.sub(r"[^a-z0-9]+", " ", plain.replace("_", " "))
    return " ".join(plain.split())


def _words_in(text: str, key: str) -> bool:
    return f" {text} " in f" {key} "


def load_menu(path: Path | None = None) -> Menu:
    """Load and validate a menu file; the packaged Bella Vista menu by default."""
    if path is None:
        raw = resources.files("memory_agent").joinpath("menu.toml").read_text(encoding="utf-8")
    else:
        raw = path.read_text(encoding="utf-8")
    return Menu.model_validate(tomllib.loads(raw))
