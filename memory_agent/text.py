"""Text folding shared by the menu and the allergen vocabulary: what callers say, made comparable."""

from __future__ import annotations

import re
import unicodedata


def normalize(text: str) -> str:
    """Lowercase, accents folded, punctuation dropped, spaces collapsed."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch))
    plain = re.sub(r"[^a-z0-9]+", " ", plain.replace("_", " "))
    return " ".join(plain.split())
