"""The allergen vocabulary: the US's nine major food allergens (FDA; FALCPA 2004 and the FASTER Act
2021), and what callers say for each. The menu lists its items' allergens in these names; a caller's
allergy in these names can be checked against the menu, any other is kept as the caller's words."""

from __future__ import annotations

import re

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

# What callers say, by canonical name. Plural or singular, any case or accents: both sides are folded.
# Molluscs (clams, mussels, oysters, squid) are not among the nine, so they are not listed here.
_SAID: dict[str, tuple[str, ...]] = {
    "milk": ("dairy", "lactose", "cheese", "cream", "butter", "buttermilk", "whey", "casein", "yogurt", "yoghurt"),
    "egg": ("eggs", "egg whites", "egg yolks"),
    "fish": ("anchovies", "salmon", "tuna", "cod", "trout", "sardines", "mackerel", "fish sauce"),
    "crustacean shellfish": (
        "shellfish",
        "crustaceans",
        "shrimp",
        "prawns",
        "crab",
        "lobster",
        "crayfish",
        "crawfish",
        "langoustines",
    ),
    "tree nuts": (
        "nuts",
        "tree nut",
        "pine nuts",
        "almonds",
        "walnuts",
        "hazelnuts",
        "cashews",
        "pecans",
        "pistachios",
        "macadamias",
        "macadamia nuts",
        "brazil nuts",
    ),
    "peanuts": ("peanut", "groundnuts", "peanut butter", "peanut oil"),
    # Gluten is wheat's, barley's and rye's; the menu's vocabulary tracks wheat only.
    "wheat": ("gluten", "flour"),
    "soybeans": ("soy", "soya", "soy beans", "soya beans", "tofu", "edamame", "soy sauce"),
    "sesame": ("sesame seeds", "tahini", "sesame oil"),
}

_LEAD = re.compile(
    r"^(?:i m|im|i am|i have|i ve got|i got|we re|he s|she s|they re|have|has|got|a|an|very|severely|severe|"
    r"mildly|mild|really|allergic|allergy|allergies|intolerant|intolerance|to|of)\s+"
)
_TAIL = re.compile(r"\s+(?:allergy|allergies|allergic|intolerance|intolerant|products?|free)$")


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("oes", "ches", "shes", "xes", "sses")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us")) and len(word) > 3:
        return word[:-1]
    return word


def _key(text: str) -> str:
    return " ".join(_singular(word) for word in normalize(text).split())


_INDEX: dict[str, str] = {
    _key(said): canonical for canonical in ALLERGENS for said in (canonical, *_SAID.get(canonical, ()))
}


def normalize_allergen(text: str) -> str | None:
    """The canonical allergen a caller means ("pine nuts" -> "tree nuts", "I'm allergic to dairy" ->
    "milk"), or None when it is not one of the nine (e.g. "mustard") or names more than one."""
    phrase = normalize(text)
    while (stripped := _TAIL.sub("", _LEAD.sub("", phrase))) != phrase:
        phrase = stripped
    key = _key(phrase)
    if key in _INDEX:
        return _INDEX[key]
    # "goat cheese", "raw shrimp": one allergen named among other words; "almond milk" names two.
    # Two-word names first, so "peanut butter cookies" is peanuts, not peanuts and milk.
    words = key.split()
    found: set[str] = set()
    covered: set[int] = set()
    for i in range(len(words) - 1):
        if (pair := f"{words[i]} {words[i + 1]}") in _INDEX:
            found.add(_INDEX[pair])
            covered |= {i, i + 1}
    found |= {_INDEX[word] for i, word in enumerate(words) if i not in covered and word in _INDEX}
    return found.pop() if len(found) == 1 else None
