"""``python -m memory_agent.datasette.serve serve …``: Datasette's own command, with our plugin loaded.

The plugin is registered for this process only (not as an installed entry point), so another
Datasette on the same machine never gets its guards.
"""

from __future__ import annotations

from datasette.plugins import pm  # type: ignore[import-untyped]

from memory_agent.datasette import plugin


def register_plugin() -> None:
    """Load the memory-agent plugin into this process's Datasette, once."""
    if not pm.is_registered(plugin):
        pm.register(plugin, name=plugin.NAME)


def main() -> None:
    from datasette.cli import cli  # type: ignore[import-untyped]

    register_plugin()
    cli(prog_name="datasette")


if __name__ == "__main__":
    main()
