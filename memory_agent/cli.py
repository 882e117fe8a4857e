"""The `memory-agent` command: demo, chat, inspect, export, backup, migrate-to-postgres, and the LiveKit worker."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from memory_agent.logs import protect_logs

# Only what help and usage errors need is imported here: settings, the database layer and LiveKit
# load in the command that uses them, so `memory-agent --help` answers at once.
if TYPE_CHECKING:
    from db import Repository
    from memory_agent.restaurant import Restaurant
    from memory_agent.settings import Settings

T = TypeVar("T")

app = typer.Typer(
    help="A restaurant's phone ordering agent that remembers every caller.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="SQLite database file or postgresql:// URL (default: $MEMORY_AGENT_DB or ./memory.db)."),
]
SqliteOption = Annotated[
    str | None,
    typer.Option("--db", help="SQLite database file (default: $MEMORY_AGENT_DB or ./memory.db)."),
]


class UsageError(Exception):
    """A mistake the user can fix; printed as one line."""


class ServiceError(Exception):
    """A service the command needs did not answer; printed as one line."""


def _settings(db: str | None = None, *, log_handler: bool = True) -> Settings:
    from pydantic import ValidationError

    from db import is_postgres_url
    from memory_agent.settings import Settings, invalid_setting

    try:
        settings = Settings()
    except ValidationError as exc:
        raise UsageError(invalid_setting(exc)) from None
    if db is not None:
        settings.db = db if is_postgres_url(db) or "://" in db else Path(db)  # a URL is refused as one
    if log_handler:
        logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    else:  # LiveKit's CLI installs the one handler; a second would print every line twice
        logging.getLogger("memory_agent").setLevel(settings.log_level.upper())
    protect_logs()
    return settings


def _check_restaurant(settings: Settings) -> Restaurant:
    """The restaurant file, validated before anything starts: a line per mistake."""
    from memory_agent.restaurant import RestaurantError

    try:
        return settings.restaurant()
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
    db: SqliteOption = None,
    port: Annotated[int, typer.Option(help="Port to serve on (localhost only).", min=1, max=65535)] = 8001,
    open_browser: Annotated[bool, typer.Option("--open", help="Open it in a browser, logged in.")] = False,
    allow_sql: Annotated[bool, typer.Option("--allow-sql", help="Allow arbitrary SQL (off by default).")] = False,
) -> None:
    """The owner's dashboard and the database in Datasette, read-only, behind a login ('inspect' extra)."""
    from db import is_postgres_url
    from memory_agent.inspect import inspect_database

    settings = _settings(db)
    if not is_postgres_url(settings.db):
        from db import database_path

        database_path(settings.db)  # another URL is refused here, without its password
    restaurant = _check_restaurant(settings)
    raise typer.Exit(
        inspect_database(
            settings.db,
            port=port,
            timezone=restaurant.timezone,
            allow_sql=allow_sql,
            open_browser=open_browser,
            restaurant=restaurant,
            prices=settings.prices,
        )
    )


@app.command()
def backup(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="The file to write the copy to.", show_default=False)],
    db: SqliteOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it exists.")] = False,
) -> None:
    """Copy the database into one self-contained file, safely while calls are running."""
    from db import is_postgres_url
    from db.sqlite.backup import backup_database

    settings = _settings(db)
    if is_postgres_url(settings.db):
        raise UsageError("backup copies a SQLite file; back PostgreSQL up with its own tools (pg_dump)")
    from db import database_path

    result = backup_database(database_path(settings.db), path, overwrite=force)  # another URL is refused here
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


def _held_database(settings: Settings) -> None:
    """Refuse a database that is not there (a mistyped ``--db``): an erasure or access request never creates one."""
    from db import NotADatabase, is_postgres_url

    try:
        if is_postgres_url(settings.db):
            from db.postgres.reports import open_read_only as open_postgres

            open_postgres(str(settings.db)).close()
        else:
            from db.sqlite.reports import open_read_only

            open_read_only(settings.db).close()
    except NotADatabase as exc:
        raise UsageError(f"{exc}; nothing was read or changed") from None


@app.command()
def forget(
    identity: CallerArgument,
    name: Annotated[str | None, typer.Option("--name", help="Only this person of the number's household.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be erased; change nothing.")] = False,
    db: DbOption = None,
) -> None:
    """Erase a caller and everything about them: profile, calls, orders, feedback, transcripts, spool."""
    from db import is_postgres_url
    from db.open import count_erasure

    settings = _settings(db)
    key = _caller(identity)
    _held_database(settings)
    if dry_run:  # only reads: no spool replay, no key, no lock file
        erased = asyncio.run(count_erasure(settings.db, key, name=name, spool_dir=settings.spool_dir))
    else:
        erased = _on_repository(settings, lambda repo: repo.forget(key, name=name))
    if not erased.counts["customers"] and not erased.counts["calls"] and not erased.counts["spool_lines"]:
        raise UsageError(f"nothing is held about {identity!r}" + (f" named {name!r}" if name else ""))
    counts = ", ".join(f"{table} {count}" for table, count in erased.counts.items())
    print(f"{'would erase' if dry_run else 'erased'}: {counts}")
    if not erased.log_emptied and is_postgres_url(settings.db):
        print(
            "note: a table was busy, so it was cleaned without rewriting it: its freed space keeps the erased"
            " bytes until new rows reuse it (run VACUUM FULL on the caller's tables when the server is quiet)",
            file=sys.stderr,
        )
    elif not erased.log_emptied:
        print("note: the write-ahead log is still in use; it is emptied at the next checkpoint", file=sys.stderr)


@app.command("export-caller")
def export_caller(identity: CallerArgument, db: DbOption = None) -> None:
    """Print everything held about a caller (every profile on their number, and its calls without a name) as JSON."""
    import json

    settings = _settings(db)
    key = _caller(identity)
    _held_database(settings)
    held = _on_repository(settings, lambda repo: repo.export_caller(key))
    if not held["profiles"] and not held["calls_without_profile"]:
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
    _held_database(settings)
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
    from db.postgres.from_sqlite import TableCopy, copy_to_postgres
    from db.safe_url import redact_url
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


outbox_app = typer.Typer(
    help="Orders on their way to the till: list pending and failed deliveries, retry one, run the delivery worker.",
    no_args_is_help=False,
)
app.add_typer(outbox_app, name="outbox")


def _outbox_settings(db: str | None) -> Settings:
    from db import is_postgres_url

    settings = _settings(db)
    if not is_postgres_url(settings.db) and not Path(settings.db).is_file():
        raise UsageError(f"database {settings.db} does not exist")
    return settings


@outbox_app.callback(invoke_without_command=True)
def outbox(ctx: typer.Context, db: DbOption = None) -> None:
    """List the deliveries pending or dead (the failed ones), in the restaurant's local time."""
    if ctx.invoked_subcommand is not None:
        return
    from db.open import open_outbox
    from db.schema.models import Delivery
    from memory_agent.datasette.localtime import local_time

    settings = _outbox_settings(db)
    zone = _check_restaurant(settings).timezone

    async def listed() -> tuple[list[Delivery], int]:
        async with open_outbox(settings.db) as store:
            return await store.deliveries(("pending", "dead")), await store.undispatched()

    deliveries, waiting = asyncio.run(listed())
    if waiting:
        print(f"{waiting} order(s) queued, not yet given to a destination (is the delivery worker running?)")
    if not deliveries:
        print("no deliveries pending or failed")
        return
    head = ("ID", "ORDER", "DESTINATION", "STATUS", "ATTEMPTS", "NEXT ATTEMPT")
    print(f"{head[0]:>6}  {head[1]:>6}  {head[2]:<11}  {head[3]:<8}  {head[4]:>8}  {head[5]:<16}  LAST ERROR")
    for d in deliveries:
        due = local_time(d.next_attempt_at, zone) if d.status == "pending" else "-"
        print(
            f"{d.id:>6}  {d.order_id:>6}  {d.destination:<11}  {d.status:<8}  {d.attempts:>8}  {due or '-':<16}"
            f"  {d.last_error or ''}"
        )


@outbox_app.command("retry")
def outbox_retry(
    delivery_id: Annotated[int, typer.Argument(metavar="ID", help="The delivery's id (see `memory-agent outbox`).")],
    db: DbOption = None,
) -> None:
    """Try a pending or dead delivery again now, with its attempts counted afresh."""
    from db.clock import utcnow_iso
    from db.open import open_outbox

    settings = _outbox_settings(db)

    async def retried() -> str | None:
        async with open_outbox(settings.db) as store:
            found = await store.delivery(delivery_id)
            if found is None or not await store.retry(delivery_id, utcnow_iso()):
                return None if found is None else found.status
            return "retried"

    outcome = asyncio.run(retried())
    if outcome is None:
        raise UsageError(f"no delivery {delivery_id}")
    if outcome != "retried":
        raise UsageError(f"delivery {delivery_id} is already {outcome}")
    print(f"delivery {delivery_id} will be tried again by the delivery worker")


@outbox_app.command("run")
def outbox_run(db: DbOption = None) -> None:
    """Deliver placed orders to the configured destinations until stopped (Ctrl+C or SIGTERM)."""
    import signal

    from memory_agent.outbox import OutboxConfigError, configured_destinations, run_delivery_worker

    settings = _outbox_settings(db)
    try:
        destinations = configured_destinations(settings)
    except OutboxConfigError as exc:
        raise UsageError(str(exc)) from None
    if not destinations:
        raise UsageError("no destination configured: set MEMORY_AGENT_WEBHOOK_URL or SQUARE_ACCESS_TOKEN (see README)")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        print(f"delivering placed orders to {', '.join(sorted(destinations))} (Ctrl+C to stop)", file=sys.stderr)
        sys.stderr.flush()
        await run_delivery_worker(settings, stop)

    asyncio.run(run())


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
    from memory_agent.outbox import OutboxConfigError, configured_destinations

    try:
        configured_destinations(settings)
    except OutboxConfigError as exc:
        raise UsageError(str(exc)) from None
    # LiveKit's own CLI reads only the process environment, not .env.local.
    os.environ.update({name: os.environ.get(name) or settings.value(name) or "" for name in livekit})
    _check_livekit(settings)
    _prepare_database(settings)
    from livekit.agents import cli

    from memory_agent.worker import build_server

    sys.argv = ["memory-agent", mode, *extra]
    failure = _WorkerFailure()
    logging.getLogger("livekit.agents").addFilter(failure)
    logging.getLogger("livekit.agents").addFilter(_not_deprecated)
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


def _prepare_database(settings: Settings) -> None:
    """The database created and migrated before the worker starts, or why not in one line; the worker's
    process does it again as it starts (a no-op then), before any call's process attaches to it."""
    from db import prepare_database

    asyncio.run(prepare_database(settings.db))


def _check_livekit(settings: Settings) -> None:
    """A wrong key or a server that never answers, named in one line before the worker starts."""
    from memory_agent.livekit_check import LiveKitRefused, LiveKitUnreachable, check_livekit

    url, key, secret = (settings.value(name) or "" for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"))
    try:
        asyncio.run(check_livekit(url, key, secret, timeout_s=settings.livekit_connect_timeout_s))
    except (LiveKitRefused, LiveKitUnreachable) as exc:
        raise ServiceError(str(exc)) from None


def _not_deprecated(record: logging.LogRecord) -> bool:
    """LiveKit 1.8.9 calls its `dev` deprecated in favour of its own CLI; here `memory-agent dev` is the way."""
    return not record.getMessage().startswith("dev mode is deprecated")


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
    the LLM's settings; speaking and listening also need the TTS and Deepgram keys, typing (--text) does not.
    """
    try:
        importlib.import_module("sounddevice")  # LiveKit's console imports it even in text mode
    except OSError:
        if "--text" in ctx.args:  # typing opens no audio device: the import is all LiveKit asks for
            sys.modules["sounddevice"] = types.ModuleType("sounddevice")
        else:
            raise UsageError(
                "memory-agent console needs the PortAudio library: apt-get install libportaudio2"
                " (Debian, Ubuntu) or brew install portaudio (macOS); or type instead: --text"
            ) from None
    settings = _settings(log_handler=False)
    _check_restaurant(settings)
    if settings.missing("OPENAI_API_KEY") and settings.missing("OPENAI_BASE_URL"):
        raise UsageError("set OPENAI_API_KEY (or OPENAI_BASE_URL for an OpenAI-compatible server): the agent's LLM")
    if "--text" not in ctx.args and (missing := settings.missing("DEEPGRAM_API_KEY")):
        raise UsageError(f"set {', '.join(missing)}: the console listens with Deepgram (or type: --text)")
    from livekit.agents import cli

    from memory_agent.worker import build_server

    _prepare_database(settings)
    sys.argv = ["memory-agent", "console", *ctx.args]
    cli.run_app(build_server(settings))


@app.command("download-files")
def download_files() -> None:
    """Fetch the plugins' model files ahead of time (Silero ships inside its wheel)."""
    _settings()
    from livekit.agents import Plugin

    importlib.import_module("memory_agent.worker")  # registers the plugins the worker uses

    for plugin in Plugin.registered_plugins:
        plugin.download_files()
        print(f"downloaded the files of {plugin.package}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the installed script; every user mistake is one line on stderr."""
    try:
        code = app(args=argv, prog_name="memory-agent", standalone_mode=False)
    except typer.Abort:
        print("memory-agent: interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:
        for line in str(exc).splitlines():  # a line per mistake
            print(f"memory-agent: error: {line}", file=sys.stderr)
        return 2
    except ServiceError as exc:
        print(f"memory-agent: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if _is_repository_error(exc):
            print(f"memory-agent: error: {exc}", file=sys.stderr)
            return 1
        if (parse_error := _parse_error(exc)) is None:
            raise
        return parse_error
    except KeyboardInterrupt:
        print("memory-agent: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code if isinstance(code, int) else 0


def _is_repository_error(exc: Exception) -> bool:
    """The database layer's own errors, without importing it: if it never loaded, none was raised."""
    db = sys.modules.get("db")
    return db is not None and isinstance(exc, db.RepositoryError)


def _parse_error(exc: Exception) -> int | None:
    """A mistake on the command line (typer's own exceptions: a message, an exit code, the command) in one line."""
    message, code, ctx = (
        getattr(exc, "format_message", None),
        getattr(exc, "exit_code", None),
        getattr(exc, "ctx", None),
    )
    if not callable(message) or not isinstance(code, int):
        return None
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        print(ctx.get_help())
    else:
        see = f" (see {ctx.command_path} --help)" if ctx is not None and code == 2 else ""
        print(f"memory-agent: error: {message()}{see}", file=sys.stderr)
    return code
