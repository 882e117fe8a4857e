"""``memory-agent export``: Bella Vista's orders as CSV, JSON or JSON Lines, for spreadsheets and accounting.

    memory-agent export --since 2025-01-01 --status placed --output orders.csv

Reads the database without ever writing to it, streams (memory stays flat however many
orders there are) and writes a CSV that is safe to open in a spreadsheet.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from pydantic import ValidationError

from db import RepositoryError, database_path
from db.reports import EXPORT_FORMATS, ORDER_STATUSES, parse_moment, parse_statuses
from db.safe_url import is_postgres_url
from db.statements.reports import OrderFilter
from memory_agent.settings import Settings, invalid_setting

PROG = "memory-agent export"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, no usage block: the message says what to fix."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _moment(end_of_day: bool):
    """Checks the form here (as UTC); the restaurant's time zone is applied once settings are read."""

    def parse(text: str) -> str:
        try:
            parse_moment(text, end_of_day=end_of_day)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return parse


def _statuses(text: str) -> tuple[str, ...]:
    try:
        return parse_statuses(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Export orders from the memory-agent database (read-only) as CSV, JSON or JSON Lines.",
    )
    parser.add_argument(
        "--db",
        metavar="PATH|URL",
        help="the database file or a postgresql:// URL (default: $MEMORY_AGENT_DB, as for the agent, else memory.db)",
    )
    parser.add_argument(
        "--format",
        default="csv",
        choices=EXPORT_FORMATS,
        help="csv (with a header row), json (one document) or jsonl (one object per line); default csv",
    )
    parser.add_argument(
        "--since",
        metavar="DATE",
        type=_moment(end_of_day=False),
        help="orders created at or after this date or ISO 8601 time (the restaurant's local time unless it has one)",
    )
    parser.add_argument(
        "--until",
        metavar="DATE",
        type=_moment(end_of_day=True),
        help="orders created before this time; a plain date includes that whole (local) day",
    )
    parser.add_argument(
        "--status",
        metavar="STATUS[,STATUS]",
        type=_statuses,
        help=f"only orders with these statuses, comma-separated ({', '.join(ORDER_STATUSES)})",
    )
    parser.add_argument(
        "--customer",
        metavar="IDENTITY",
        help="only this caller's orders: their identity, or their number in any form (555-123-4567, tel:, sip:)",
    )
    parser.add_argument("--items", action="store_true", help="one row per order item instead of per order")
    parser.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        type=Path,
        help="write to FILE (replaced only when the export succeeds); default standard output",
    )
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """Run the export; every mistake is one line on stderr and a non-zero status, and no file."""
    try:
        args = build_parser(prog).parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    fail = _failer(prog)
    try:
        settings = Settings()
    except ValidationError as exc:
        return fail(invalid_setting(exc))
    from memory_agent.restaurant import RestaurantError

    try:
        zone = settings.restaurant().timezone
    except RestaurantError as exc:
        for line in str(exc).splitlines():  # one line per mistake, as when the agent starts
            fail(line)
        return 2
    try:
        since = parse_moment(args.since, timezone=zone) if args.since else None
        until = parse_moment(args.until, end_of_day=True, timezone=zone) if args.until else None
    except ValueError as exc:
        return fail(str(exc), code=2)
    if since is not None and until is not None and since >= until:
        return fail(f"--since {args.since} is not before --until {args.until}: no order can match", code=2)
    customer = None
    if args.customer is not None:
        from memory_agent.datasette.sqlfunctions import caller_key  # phonenumbers' tables, only when asked

        customer = caller_key(args.customer)
    filters = OrderFilter(since=since, until=until, statuses=args.status or (), customer=customer)
    db = args.db or str(settings.db)
    try:
        source = _open(db)
    except RepositoryError as exc:
        return fail(str(exc))
    try:
        if args.output is not None:
            problem = _output_problem(args.output, None if source.remote else Path(database_path(db)))
            if problem:
                return fail(problem)
        return _export(source, filters, args, fail, zone)
    finally:
        source.conn.close()


@dataclass(frozen=True)
class _Source:
    """The database being exported, SQLite or PostgreSQL, with its backend's two reports."""

    conn: Any
    count_rows: Callable[..., int]
    export_chunks: Callable[..., Iterator[tuple[bytes, int]]]
    remote: bool = False


def _open(db: str) -> _Source:
    if is_postgres_url(db):
        from db.postgres import reports as pg

        return _Source(pg.open_read_only(db), pg.count_rows, pg.export_chunks, remote=True)
    from db.sqlite import reports as lite

    return _Source(lite.open_read_only(db), lite.count_rows, lite.export_chunks)


def _export(source: _Source, filters: OrderFilter, args: argparse.Namespace, fail: _Fail, zone: str) -> int:
    to_stdout = args.output is None
    show_progress = sys.stderr.isatty() and not (to_stdout and sys.stdout.isatty())
    total = source.count_rows(source.conn, filters, items=args.items) if show_progress else 0
    temp: Path | None = None
    try:
        if to_stdout:
            sys.stdout.flush()
            written = _write(source, filters, args, sys.stdout.buffer, total, show_progress, zone)
            sys.stdout.buffer.flush()
        else:
            fd, name = tempfile.mkstemp(prefix=f".{args.output.name}.", dir=args.output.parent)
            temp = Path(name)
            with os.fdopen(fd, "wb") as out:
                written = _write(source, filters, args, out, total, show_progress, zone)
            os.chmod(temp, _file_mode(args.output))
            os.replace(temp, args.output)
            temp = None
    except BrokenPipeError:
        # The reader stopped early (| head): not an error worth a message.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        return fail("interrupted", code=130)
    except sqlite3.Error as exc:
        return fail(f"database error: {exc}")
    except RepositoryError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot write {args.output or 'standard output'}: {exc.strerror or exc}")
    finally:
        if show_progress:
            sys.stderr.write("\n")
        if temp is not None:
            temp.unlink(missing_ok=True)
    if written == 0:
        fail(f"no {'order items' if args.items else 'orders'} match these filters; the export is empty", code=0)
    return 0


def _write(
    source: _Source,
    filters: OrderFilter,
    args: argparse.Namespace,
    out: BinaryIO,
    total: int,
    show_progress: bool,
    zone: str,
) -> int:
    """Write the export; returns how many rows it held."""
    done = 0
    unit = "items" if args.items else "orders"
    for chunk, rows in source.export_chunks(source.conn, filters, fmt=args.format, items=args.items, timezone=zone):
        out.write(chunk)
        done += rows
        if show_progress and rows:
            percent = 100 * done // total if total else 100
            bar = "#" * (percent // 4)
            sys.stderr.write(f"\r[{bar:<25}] {percent:3d}% {done:,}/{total:,} {unit}")
            sys.stderr.flush()
    return done


def _output_problem(output: Path, database: Path | None) -> str | None:
    if output.is_dir():
        return f"output {output} is a folder"
    if not output.parent.is_dir():
        return f"folder {output.parent} does not exist"
    if database is not None and output.exists() and output.resolve() == database.resolve():
        return f"output {output} is the database itself"
    return None


def _file_mode(path: Path) -> int:
    """Orders name callers: readable by their owner only, as every file with personal data (a replaced
    file keeps its permissions as far as they are stricter)."""
    if path.exists():
        return path.stat().st_mode & 0o600
    return 0o600


_Fail = Callable[..., int]


def _failer(prog: str) -> _Fail:
    def fail(message: str, *, code: int = 1) -> int:
        sys.stderr.write(f"{prog}: {message}\n")
        sys.stderr.flush()
        return code

    return fail
