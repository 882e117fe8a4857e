"""Export Bella Vista's orders as CSV, JSON or JSON Lines: ``memory-agent export``, from a checkout.

    python scripts/export_orders.py --since 2025-01-01 --status placed --output orders.csv

The installed command is ``memory-agent export``, with the same options; this script only runs
it, under its old name.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

try:
    from memory_agent import export
except ModuleNotFoundError as exc:  # another Python than the project's
    sys.exit(
        f"export_orders: memory-agent is not installed for {sys.executable} ({exc.name} is missing);"
        " run `memory-agent export` or this script with the project's Python (.venv/bin/python)"
    )

PROG = "export_orders"


def main(argv: Sequence[str] | None = None) -> int:
    return export.main(argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
