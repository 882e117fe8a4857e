"""The `memory-agent` command: demo, chat, inspect, export, backup, migrate-to-postgres, and the LiveKit worker."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from pydantic import ValidationError

from db import RepositoryError, is_postgres_url
from memory_agent.logs import protect_logs
from memory_agent.settings import Settings

if TYPE_CHECKING:
    from db import Repository

T = TypeVar("T")

app = typer.Typer(
    help="Bella Vista's phone ordering agent that remembers every caller.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="SQLite database file or postgresql:// URL (default: $MEMORY_AGENT_DB or ./memory.db)."),
]


class UsageError(Exception):
    """A mistake the user can fix; printed as one line."""


class ServiceError(Exception):
    """A service the command needs did not answer; printed as one line."""


def _settings(db: str | None = None, *, log_handler: bool = True) -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UsageError(f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    if db is not None:
        settings.db = db if is_postgres_url(db) else Path(db)
    if log_handler:
        logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    else:  # LiveKit's CLI installs the one handler; a second would print every line twice
        logging.getLogger("memory_agent").setLevel(settings.log_level.upper())
    protect_logs()
    return settings


def _check_restaurant(settings: Settings) -> None:
    """The restaurant file, validated before anything starts: a line per mistake."""
    from memory_agent.restaurant import RestaurantError

    try:
        settings.restaurant()
    except RestaurantError as exc:
        raise UsageError(str(exc)) from None


DEMO_DB = Path("demo.db")


@app.command()
def demo(
    db: Annotated[
        Path | None,
        typer.Option("--db", help="SQLite database file (default: ./demo.db, never the real one)."),
    ] = None,
) -> None:
    """Replay two scripted calls of one caller offline (no keys) and show what was remembered."""
    from memory_agent.demo import run_demo

    _settings()
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("livekit.agents").setLevel(logging.ERROR)  # tool errors are printed in the transcript
    # Made-up callers go to a database of their own unless told otherwise, never into $MEMORY_AGENT_DB.
    asyncio.run(run_demo(db or DEMO_DB))


@app.command()
def chat(
    identity: Annotated[str, typer.Option("--identity", help="Who is calling (their participant identity).")],
    db: DbOption = None,
) -> None:
    """Talk to the agent chain in the terminal, one line per turn (reads standard input)."""
    from memory_agent.chat import run_chat

    settings = _settings(db)
    _check_restaurant(settings)
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
    open_browser: Annotated[bool, typer.Option("--open", help="Open it in a browser, logged in.")] = False,
    allow_sql: Annotated[bool, typer.Option("--allow-sql", help="Allow arbitrary SQL (off by default).")] = False,
) -> None:
    """The owner's dashboard and the database in Datasette, read-only, behind a login ('inspect' extra)."""
    from memory_agent.inspect import inspect_database

    settings = _settings(db)
    raise typer.Exit(
        inspect_database(
            settings.db, port=port, timezone=settings.timezone, allow_sql=allow_sql, open_browser=open_browser
        )
    )


@app.command()
def backup(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="The file to write the copy to.", show_default=False)],
    db: DbOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it exists.")] = False,
) -> None:
    """Copy the database into one self-contained file, safely while calls are running."""
    from db.backup import backup_database

    settings = _settings(db)
    if is_postgres_url(settings.db):
        raise UsageError("backup copies a SQLite file; back PostgreSQL up with its own tools (pg_dump)")
    result = backup_database(settings.db, path, overwrite=force)
    print(f"backed up {settings.db} to {result.target} ({result.bytes:,} bytes)")


CallerArgument = Annotated[
    str,
    typer.Argument(
        metavar="IDENTITY", help="The caller: a phone number in any form (+1 415 555 0134, tel:, sip:) or an identity."
    ),
]


def _caller(text: str) -> str:
    """The key a caller is stored under, from the forms an owner may type."""
    from memory_agent.identity import clean_identity, looks_like_phone, normalize_phone

    if looks_like_phone(text) or text.strip().lower().startswith(("tel:", "sip:")):
        if (number := normalize_phone(text)) is None:
            raise UsageError(f"{text!r} is not a full phone number (with its area code)")
        return number
    if (key := clean_identity(text)) is None:
        raise UsageError(f"{text!r} is not a caller identity")
    return key


def _on_repository(settings: Settings, work: Callable[[Repository], Awaitable[T]]) -> T:
    """Run ``work`` on the database once its recovery (spool replay, stale calls) is done.

    The command's own work decides what is kept, so the retention is not applied at open.
    """

    async def run() -> T:
        async with settings.repository(retention=False) as repo:
            await repo.recovered()
            return await work(repo)

    return asyncio.run(run())


@app.command()
def forget(
    identity: CallerArgument,
    name: Annotated[str | None, typer.Option("--name", help="Only this person of the number's household.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be erased; change nothing.")] = False,
    db: DbOption = None,
) -> None:
    """Erase a caller and everything about them: profile, calls, orders, feedback, transcripts, spool."""
    settings = _settings(db)
    key = _caller(identity)
    erased = _on_repository(settings, lambda repo: repo.forget(key, name=name, dry_run=dry_run))
    if not erased.counts["customers"] and not erased.counts["spool_lines"]:
        raise UsageError(f"nothing is held about {identity!r}" + (f" named {name!r}" if name else ""))
    counts = ", ".join(f"{table} {count}" for table, count in erased.counts.items())
    print(f"{'would erase' if dry_run else 'erased'}: {counts}")
    if not erased.log_emptied:
        print("note: the write-ahead log is still in use; it is emptied at the next checkpoint", file=sys.stderr)


@app.command("export-caller")
def export_caller(identity: CallerArgument, db: DbOption = None) -> None:
    """Print everything held about a caller (every profile on their number) as JSON."""
    import json

    settings = _settings(db)
    key = _caller(identity)
    held = _on_repository(settings, lambda repo: repo.export_caller(key))
    if not held["profiles"]:
        raise UsageError(f"nothing is held about {identity!r}")
    print(json.dumps(held, indent=2, ensure_ascii=False))


@app.command()
def purge(
    days: Annotated[
        int | None,
        typer.Option("--days", min=1, help="Keep this many days (default: MEMORY_AGENT_KEEP_TRANSCRIPTS_DAYS)."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Remove transcripts and free-text comments past their retention; orders and ratings stay."""
    from datetime import timedelta

    settings = _settings(db)
    keep = days or settings.keep_transcripts_days
    done = _on_repository(settings, lambda repo: repo.purge_transcripts(older_than=timedelta(days=keep)))
    print(
        f"removed the transcripts of {done['calls']} call(s) and {done['comments']} comment(s) older than {keep} days"
    )


@app.command("migrate-to-postgres")
def migrate_to_postgres(
    sqlite_path: Annotated[
        Path, typer.Argument(metavar="SQLITE_PATH", help="The SQLite database to copy (only read).", show_default=False)
    ],
    postgres_url: Annotated[
        str,
        typer.Argument(
            metavar="POSTGRES_URL", help="postgresql://user:password@host:port/database", show_default=False
        ),
    ],
) -> None:
    """Copy a SQLite database, while calls run, into PostgreSQL: safe to repeat and to resume; counts per table."""
    from db.pg.migrate_sqlite import TableCopy, copy_to_postgres
    from db.pg.safe_url import redact_url
    from db.spool import call_ids, spool_path

    settings = _settings()

    shown: list[TableCopy] = []

    def show(table: TableCopy) -> None:
        if not table.finished:
            return
        if not shown:
            print(f"Copying {sqlite_path} (one snapshot, only read) into {redact_url(postgres_url)}:")
        shown.append(table)
        changes = f"{table.new:,} new, {table.changed:,} changed, {table.removed:,} removed"
        print(f"  {table.table:<14} {table.rows:>10,} rows  {changes}", flush=True)

    report = copy_to_postgres(sqlite_path, postgres_url, progress=show)
    print(f"Done: {report.new:,} new, {report.changed:,} changed, {report.removed:,} removed.")
    waiting = call_ids(spool_path(sqlite_path, settings.spool_dir))
    if waiting:
        print(
            f"note: {len(waiting)} call(s) wait in the spool of {sqlite_path}, not yet in the file: a command that"
            f" writes (`memory-agent purge --db {sqlite_path} --days 3650`) stores them; then run this again",
            file=sys.stderr,
        )


def _run_worker(mode: str, extra: list[str]) -> None:
    settings = _settings(log_handler=False)
    _check_restaurant(settings)
    livekit = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
    if missing := settings.missing(*livekit):
        raise UsageError(f"set {', '.join(missing)} to run the worker (see .env.example)")
    if settings.missing("OPENAI_API_KEY") and settings.missing("OPENAI_BASE_URL"):
        raise UsageError("set OPENAI_API_KEY (or OPENAI_BASE_URL for an OpenAI-compatible server): the worker's LLM")
    if missing := settings.missing("DEEPGRAM_API_KEY"):
        raise UsageError(f"set {', '.join(missing)}: the worker listens with Deepgram")
    # LiveKit's own CLI reads only the process environment, not .env.local.
    os.environ.update({name: os.environ.get(name) or settings.value(name) or "" for name in livekit})
    from livekit.agents import cli

    from memory_agent.worker import build_server

    sys.argv = ["memory-agent", mode, *extra]
    failure = _WorkerFailure()
    logging.getLogger("livekit.agents").addFilter(failure)
    try:
        cli.run_app(build_server(settings))  # ends in SystemExit(0) even when the worker failed
    except SystemExit as exc:
        if exc.code not in (0, None) or failure.reason is None:
            raise
    finally:
        logging.getLogger("livekit.agents").removeFilter(failure)
    if failure.reason is not None:
        raise ServiceError(
            f"the worker stopped: {failure.reason} ({settings.livekit_url}); check LIVEKIT_URL and the server,"
            " or raise MEMORY_AGENT_LIVEKIT_RETRIES"
        )


class _WorkerFailure(logging.Filter):
    """Catches LiveKit's record of a failed worker (a traceback, then exit 0) to report it in one line instead."""

    FAILED = frozenset({"worker failed", "Error in _connection_task"})
    reason: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() not in self.FAILED:
            return True
        self.reason = str(record.exc_info[1]) if record.exc_info and record.exc_info[1] else "unknown error"
        return False


_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def export(ctx: typer.Context) -> None:
    """Export orders as CSV, JSON or JSON Lines, read-only (`memory-agent export --help` for the options)."""
    from memory_agent.export import main as export_main

    raise typer.Exit(export_main(ctx.args))


@app.command(context_settings=_PASS_THROUGH)
def start(ctx: typer.Context) -> None:
    """Run the LiveKit worker in production mode (needs LIVEKIT_* and provider keys)."""
    _run_worker("start", ctx.args)


@app.command(context_settings=_PASS_THROUGH)
def dev(ctx: typer.Context) -> None:
    """Run the LiveKit worker in development mode: debug logs, no draining (LiveKit 1.8.9 has no auto-reload)."""
    _run_worker("dev", ctx.args)


@app.command(context_settings=_PASS_THROUGH)
def console(ctx: typer.Context) -> None:
    """Talk to the agent through this computer's microphone and speaker (`--text` to type); no LiveKit server.

    The console's caller is anonymous, so it is served without memory. Needs the PortAudio library and
    the provider keys.
    """
    try:
        importlib.import_module("sounddevice")  # LiveKit's console needs it even in text mode
    except OSError:
        raise UsageError(
            "memory-agent console needs the PortAudio library: apt-get install libportaudio2"
            " (Debian, Ubuntu) or brew install portaudio (macOS)"
        ) from None
    settings = _settings(log_handler=False)
    _check_restaurant(settings)
    if settings.missing("OPENAI_API_KEY") and settings.missing("OPENAI_BASE_URL"):
        raise UsageError("set OPENAI_API_KEY (or OPENAI_BASE_URL for an OpenAI-compatible server): the agent's LLM")
    if missing := settings.missing("DEEPGRAM_API_KEY"):
        raise UsageError(f"set {', '.join(missing)}: the console listens with Deepgram")
    from livekit.agents import cli

    from memory_agent.worker import build_server

    sys.argv = ["memory-agent", "console", *ctx.args]
    cli.run_app(build_server(settings))


@app.command("download-files")
def download_files() -> None:
    """Fetch the plugins' model files ahead of time (Silero ships inside its wheel)."""
    from livekit.agents import cli

    from memory_agent.worker import build_server

    sys.argv = ["memory-agent", "download-files"]
    cli.run_app(build_server(_settings(log_handler=False)))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the installed script; every user mistake is one line on stderr."""
    try:
        app(args=argv, prog_name="memory-agent")
    except UsageError as exc:
        for line in str(exc).splitlines():  # a line per mistake
            print(f"memory-agent: error: {line}", file=sys.stderr)
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
