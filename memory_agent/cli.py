"""The `memory-agent` command: demo, chat, inspect, backup, and the LiveKit worker (start/dev)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from db import RepositoryError
from memory_agent.settings import Settings

app = typer.Typer(
    help="Bella Vista's phone ordering agent that remembers every caller.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="SQLite database file (default: $MEMORY_AGENT_DB or ./memory.db)."),
]


class UsageError(Exception):
    """A mistake the user can fix; printed as one line."""


class ServiceError(Exception):
    """A service the command needs did not answer; printed as one line."""


def _settings(db: Path | None = None) -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UsageError(f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    if db is not None:
        settings.db = db
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    return settings


@app.command()
def demo(db: DbOption = None) -> None:
    """Replay two scripted calls of one caller offline (no keys) and show what was remembered."""
    from memory_agent.demo import run_demo

    settings = _settings(db)
    logging.getLogger().setLevel(logging.WARNING)
    asyncio.run(run_demo(settings.db))


@app.command()
def chat(
    identity: Annotated[str, typer.Option("--identity", help="Who is calling (their participant identity).")],
    db: DbOption = None,
) -> None:
    """Talk to the agent chain in the terminal, one line per turn (reads standard input)."""
    from memory_agent.chat import run_chat

    settings = _settings(db)
    if settings.missing("OPENAI_API_KEY") and settings.missing("OPENAI_BASE_URL"):
        raise UsageError("set OPENAI_API_KEY (or OPENAI_BASE_URL for an OpenAI-compatible server) to chat")
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("livekit").setLevel(logging.CRITICAL)  # a failing provider is reported below, once
    from livekit.agents import APIError

    try:
        asyncio.run(run_chat(settings, identity))
    except APIError as exc:
        raise ServiceError(f"the LLM did not answer ({exc}); check OPENAI_BASE_URL and OPENAI_API_KEY") from None


@app.command()
def inspect(
    db: DbOption = None,
    port: Annotated[int, typer.Option(help="Port to serve on (localhost only).", min=1, max=65535)] = 8001,
    open_browser: Annotated[bool, typer.Option("--open", help="Open it in a browser.")] = False,
) -> None:
    """Browse the database in Datasette, read-only (needs the 'inspect' extra)."""
    from memory_agent.inspect import inspect_database

    settings = _settings(db)
    raise typer.Exit(inspect_database(settings.db, port=port, extra=["--open"] if open_browser else ()))


@app.command()
def backup(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="The file to write the copy to.", show_default=False)],
    db: DbOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it exists.")] = False,
) -> None:
    """Copy the database into one self-contained file, safely while calls are running."""
    from db.backup import backup_database

    settings = _settings(db)
    result = backup_database(settings.db, path, overwrite=force)
    print(f"backed up {settings.db} to {result.target} ({result.bytes:,} bytes)")


def _run_worker(mode: str, extra: list[str]) -> None:
    settings = _settings()
    livekit = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
    if missing := settings.missing(*livekit):
        raise UsageError(f"set {', '.join(missing)} to run the worker (see .env.example)")
    if missing := settings.missing("OPENAI_API_KEY", "DEEPGRAM_API_KEY"):
        raise UsageError(f"set {', '.join(missing)}: the worker speaks with OpenAI TTS and listens with Deepgram")
    # LiveKit's own CLI reads only the process environment, not .env.local.
    os.environ.update({name: os.environ.get(name) or settings.value(name) or "" for name in livekit})
    from livekit.agents import cli

    from memory_agent.worker import server

    sys.argv = ["memory-agent", mode, *extra]
    cli.run_app(server)


_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command(context_settings=_PASS_THROUGH)
def start(ctx: typer.Context) -> None:
    """Run the LiveKit worker in production mode (needs LIVEKIT_* and provider keys)."""
    _run_worker("start", ctx.args)


@app.command(context_settings=_PASS_THROUGH)
def dev(ctx: typer.Context) -> None:
    """Run the LiveKit worker in development mode, reloading on change."""
    _run_worker("dev", ctx.args)


@app.command("download-files")
def download_files() -> None:
    """Fetch the plugins' model files ahead of time (Silero ships inside its wheel)."""
    from livekit.agents import cli

    from memory_agent.worker import server

    sys.argv = ["memory-agent", "download-files"]
    cli.run_app(server)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the installed script; every user mistake is one line on stderr."""
    try:
        app(args=argv, prog_name="memory-agent")
    except UsageError as exc:
        print(f"memory-agent: error: {exc}", file=sys.stderr)
        return 2
    except (RepositoryError, ServiceError) as exc:
        print(f"memory-agent: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("memory-agent: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
