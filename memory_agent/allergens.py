"""The allergen vocabulary: the US's nine major food allergens (FDA; FALCPA 2004 and the FASTER Act
2021), and what callers say for each (memory_agent/allergens.toml, with its sources). The menu lists
its items' allergens in these names; what a caller says is read into them, several per statement, and
a word that names none of them is kept in the caller's words as an allergy the menu cannot be checked for."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from memory_agent.text import normalize

ALLERGENS: tuple[str, ...] = (
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

# Words that join the things a caller names ("nuts and dairy", "fish or shellfish").
_CONNECTORS = frozenset({"and", "or", "nor", "plus", "also", "but", "with", "as", "either", "neither", "n"})
# Words around an allergy that name nothing themselves ("I'm severely allergic to ...", "no ... please").
_FILLER = frozenset(
    "i im m am is are re s ve we he she they my our his her their son daughter wife husband kid kids child children "
    "have has had got get a an the some any all to of for very severely severe badly mildly mild really extremely "
    "deathly highly super allergic allergy allergies intolerant intolerance sensitive sensitivity can cannot cant t "
    "eat no not don do please thanks thank you disease reaction reactions anaphylactic anaphylaxis too only free "
    "product products food foods anything thing things stuff containing contain contains made from in it that "
    "diet avoid avoiding be bad sick make makes me just like kind type sort diagnosed trace traces well um uh so "
    "yeah oh okay ok".split()
)
# In a modification, what follows these is taken away ("no cheese", "hold the walnuts") ...
_TAKEN_AWAY = frozenset({"no", "without", "hold", "minus", "remove", "skip", "nix", "sans", "not", "omit", "leave"})
# ... until one of these adds again ("no onions extra cheese").
_ADDED = frozenset({"extra", "add", "added", "more", "double", "triple", "topping", "top", "side", "sub", "swap"})
_CHUNKS = re.compile(r"[,;:/+()\n]")


@dataclass(frozen=True)
class Term:
    """What a word or phrase of the vocabulary stands for."""

    allergens: tuple[str, ...]  # in the vocabulary's order; empty: a look-alike that is none of the nine
    ask: bool = False  # the caller may mean only one of them ("seafood"): ask which


@dataclass(frozen=True)
class Named:
    """One thing a caller named as an allergy: their words and what they stand for."""

    said: str  # the caller's words, folded
    allergens: tuple[str, ...]  # empty: the menu cannot be checked for it
    ask: bool = False

    @property
    def topic(self) -> str:
        """How an unchecked allergy is kept: its words with plurals folded ("strawberries" -> "strawberry")."""
        return fold(self.said)


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("oes", "ches", "shes", "xes", "sses")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us")) and len(word) > 3:
        return word[:-1]
    return word


def fold(text: str) -> str:
    """Words made comparable with the vocabulary's: case, accents, punctuation and plurals folded."""
    return " ".join(_singular(word) for word in normalize(text).split())


def in_order(allergens: Iterable[str]) -> tuple[str, ...]:
    """Canonical allergen names, each once, in the vocabulary's order; anything else is left out."""
    wanted = set(allergens)
    return tuple(a for a in ALLERGENS if a in wanted)


def parse_vocabulary(text: str) -> dict[str, Term]:
    """The vocabulary file read into terms by folded words; a ValueError names what is wrong in it."""
    data = tomllib.loads(text)
    entries: list[tuple[str, tuple[str, ...], bool]] = [(name, (name,), False) for name in ALLERGENS]
    for allergen, words in data.get("said", {}).items():
        entries += [(word, (allergen,), False) for word in words]
    for section, ask in (("several", False), ("ask", True)):
        entries += [(word, tuple(allergens), ask) for word, allergens in data.get(section, {}).items()]
    entries += [(word, (), False) for word in data.get("none", {}).get("said", ())]
    terms: dict[str, Term] = {}
    for word, allergens, ask in entries:
        if unknown := [a for a in allergens if a not in ALLERGENS]:
            raise ValueError(f"allergen vocabulary: {word!r} maps to unknown allergen {unknown[0]!r}")
        term = Term(in_order(allergens), ask)
        if not (key := fold(word)):
            raise ValueError(f"allergen vocabulary: {word!r} has no words")
        if terms.setdefault(key, term) != term:
            raise ValueError(f"allergen vocabulary: {word!r} is listed twice with different allergens")
    return terms


@lru_cache(maxsize=1)
def vocabulary() -> dict[str, Term]:
    """The packaged vocabulary, read once."""
    return parse_vocabulary(resources.files("memory_agent").joinpath("allergens.toml").read_text(encoding="utf-8"))


def _clauses(text: str, terms: Mapping[str, Term]) -> Iterator[list[tuple[str, Term | None]]]:
    """The text's clauses (between commas and joining words), each a list of its terms, longest phrase
    first, and of the single words no term covers."""
    longest = max(len(key.split()) for key in terms)
    for chunk in _CHUNKS.split(text.replace("&", " and ")):
        words = normalize(chunk).split()
        keys = [_singular(word) for word in words]
        clause: list[tuple[str, Term | None]] = []
        i = 0
        while i < len(words):
            for n in range(min(longest, len(words) - i), 0, -1):
                if (term := terms.get(" ".join(keys[i : i + n]))) is not None:
                    clause.append((" ".join(words[i : i + n]), term))
                    i += n
                    break
            else:
                if words[i] in _CONNECTORS:
                    yield clause
                    clause = []
                else:
                    clause.append((words[i], None))
                i += 1
        yield clause


def read_allergies(text: str) -> list[Named]:
    """What a caller's statement names as allergies, in order: "nuts and dairy" is nuts (tree nuts or
    peanuts: ask) and milk; "mustard" is named but none of the nine; "I'm allergic" names nothing."""
    named: list[Named] = []
    for clause in _clauses(text, vocabulary()):
        terms = [Named(said, term.allergens, term.ask) for said, term in clause if term is not None]
        rest = [said for said, term in clause if term is None and said not in _FILLER]
        named += terms or ([Named(" ".join(rest), ())] if rest else [])
    return named


def allergens_added(modification: str, terms: Mapping[str, Term] | None = None) -> tuple[str, ...]:
    """The allergens a modification adds to a dish by the ingredients it names ("add pine nuts",
    "walnut topping", "extra pesto"); none for what it takes away ("no cheese", "dairy-free").

    ``terms``: the vocabulary with more names in it (the menu's dishes); the vocabulary alone by default."""
    found: set[str] = set()
    for clause in _clauses(modification, vocabulary() if terms is None else terms):
        taken_away = False
        for i, (said, term) in enumerate(clause):
            if term is None:
                taken_away = (taken_away or said in _TAKEN_AWAY) and said not in _ADDED
            elif not taken_away and clause[i + 1 : i + 2] != [("free", None)]:
                found |= set(term.allergens)
    return in_order(found)
