"""The spool: call snapshots the database refused, kept as JSON lines until replayed.

A placed order and a finished call are spooled when the database does not take them in time;
the spool lives beside the database unless told otherwise (another filesystem survives a full disk).

Crash-safe ordering: a record is appended and fsynced before the finalize is reported done; a
replay commits each record to the database before the spool forgets it, and forgets it by
rewriting the file under an exclusive lock. A crash between the two only means a record is
replayed again, which the idempotent finalize makes harmless: each call is written exactly once.

Appenders and the replayer lock the spool file itself (``flock``), only around synchronous work:
never while a record is being written to the database, so an appender never waits for the
database. Since the replayer may replace or remove the file, an appender checks after locking
that its descriptor is still the file at the path, and reopens it if not. The blocking work runs
on the spool's own threads, never on the event loop's default executor, which other work may
have filled.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from db.errors import DatabaseUnavailable
from db.schema.models import CallSnapshot, ErasureRequest

log = logging.getLogger("memory_agent.db")

SUFFIX = ".spool.jsonl"
REJECTED_SUFFIX = ".spool.rejected.jsonl"

_T = TypeVar("_T")

# The spool's blocking work (locking, writing, fsyncing) runs here. A holder of the spool's lock
# never waits for anything but the disk, so two threads cannot starve each other.
_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="spool")


async def in_spool_thread(fn: Callable[..., _T], *args: object, **kwargs: object) -> _T:
    """Run ``fn(*args, **kwargs)`` on the spool's own threads."""
    return await asyncio.get_running_loop().run_in_executor(_THREADS, functools.partial(fn, *args, **kwargs))


def spool_path(db_path: str | Path, spool_dir: str | Path | None = None) -> Path:
    """``memory.db.spool.jsonl`` beside the database, or in ``spool_dir``."""
    path = Path(f"{db_path}{SUFFIX}")
    return path if spool_dir is None else Path(spool_dir) / path.name


def append(path: Path, record: CallSnapshot | ErasureRequest) -> None:
    """Add one call's snapshot (or a caller's erasure) as one fsynced line (blocking: run it in a thread)."""
    append_lines(path, [record.model_dump_json().encode("utf-8")])


def append_lines(path: Path, lines: list[bytes]) -> None:
    """Add these lines with one write and one fsync (blocking)."""
    data = b"".join(line + b"\n" for line in lines)
    with _locked(path, create=True) as fd:
        assert fd is not None
        end = os.lseek(fd, 0, os.SEEK_END)
        if end and os.pread(fd, 1, end - 1) != b"\n":
            data = b"\n" + data  # a previous append was torn by a crash: keep this line whole
        _write_all(fd, data)
        os.fsync(fd)
    fsync_path(path.parent)


class Appender:
    """Appends to one spool from one event loop; appends asked for at once share a write and an fsync."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._waiting: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def append(self, record: CallSnapshot | ErasureRequest) -> None:
        """The record as one line of the spool, fsynced when this returns; ``OSError`` if it cannot be."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((record.model_dump_json().encode("utf-8"), done))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name="spool-append")
        await done

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await in_spool_thread(append_lines, self.path, [line for line, _ in batch])
            except Exception as exc:  # noqa: BLE001  (each appender hears why)
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)


def call_ids(path: Path) -> set[str]:
    """The calls waiting in the spool; cheap when there is none (the usual case)."""
    if not path.exists():
        return set()
    ids = set()
    for raw in _read_lines(path):
        try:
            ids.add(CallSnapshot.model_validate_json(raw).call_id)
        except ValidationError:
            continue
    return ids


@dataclass
class ReplayResult:
    written: int = 0
    kept: int = 0
    rejected: int = 0
    erased: int = 0  # records of callers erased since: dropped, never written
    erasures: int = 0  # callers' erasures carried out
    errors: list[str] = field(default_factory=list)


async def replay(
    path: Path,
    finalize: Callable[[CallSnapshot], Awaitable[None]],
    erased: Callable[[CallSnapshot], Awaitable[bool]] | None = None,
    erase: Callable[[ErasureRequest], Awaitable[None]] | None = None,
) -> ReplayResult:
    """Write every spooled record with ``finalize``; keep those it refuses, set aside unreadable lines,
    and drop those whose caller ``erased`` says was erased since (another process's erasure could not
    reach this spool). A spooled erasure is carried out with ``erase``, in its place in the spool's order.

    The lock is held to read the spool, then again to forget what the database now holds, never
    while a record is written: appenders go on meanwhile, and their lines stay for the next replay.
    A call's lines may each hold only what changed since the one before (or since what the database
    held): they are joined up in their order and written at the call's last line, as few snapshots as
    their transcripts allow (one, unless a line's transcript starts past the end of the one before).
    Once the database refuses one for being unavailable, the rest wait for the next replay.
    """
    result = ReplayResult()
    claiming = asyncio.ensure_future(in_spool_thread(_claim, path))
    try:
        claim = await asyncio.shield(claiming)
    except asyncio.CancelledError:
        # Stopped while the claim was being taken (the drainer at close): the thread still takes it, so
        # let it go once taken (a moment: it never waits), or no replay would run again while this process lives.
        claiming.add_done_callback(_let_go)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(claiming)
        raise
    if claim is None:
        return result  # another process is replaying: it covers these lines
    try:
        await _replay_claimed(path, finalize, erased, erase, result)
    finally:
        os.close(claim)
    return result


async def _replay_claimed(
    path: Path,
    finalize: Callable[[CallSnapshot], Awaitable[None]],
    erased: Callable[[CallSnapshot], Awaitable[bool]] | None,
    erase: Callable[[ErasureRequest], Awaitable[None]] | None,
    result: ReplayResult,
) -> None:
    lines = await in_spool_thread(_read_locked, path)
    if not lines:
        return
    parsed: list[tuple[bytes, CallSnapshot | ErasureRequest]] = []
    rejected: list[bytes] = []
    for raw in lines:
        if (request := _erasure(raw)) is not None:
            parsed.append((raw, request))
            continue
        try:
            parsed.append((raw, CallSnapshot.model_validate_json(raw)))
        except ValidationError:
            # A line torn by a crash mid-append, or edited by hand: never replayable.
            rejected.append(raw)
    last = {record.call_id: n for n, (_, record) in enumerate(parsed) if isinstance(record, CallSnapshot)}
    chains: dict[str, list[CallSnapshot]] = {}  # each call's lines so far, joined up
    raws: dict[str, list[bytes]] = {}
    done: list[bytes] = []  # lines the database no longer needs
    unavailable = False
    for n, (raw, record) in enumerate(parsed):
        if isinstance(record, CallSnapshot):
            _join(chains.setdefault(record.call_id, []), record)
            raws.setdefault(record.call_id, []).append(raw)
            if last[record.call_id] != n:
                continue
        if unavailable or (isinstance(record, ErasureRequest) and erase is None):
            result.kept += 1
            continue
        try:
            if isinstance(record, ErasureRequest):
                assert erase is not None
                await erase(record)
                result.erasures += 1
                done.append(raw)
                continue
            snaps = chains.pop(record.call_id)
            if erased is not None and await erased(snaps[-1]):
                result.erased += 1
                done += raws[record.call_id]
                continue
            for snap in snaps:  # in order; a failure keeps every line for the next replay (written again: harmless)
                await finalize(snap)
        except Exception as exc:  # noqa: BLE001  (kept for the next replay, whatever the cause)
            what = "erasure" if isinstance(record, ErasureRequest) else record.call_id
            result.errors.append(f"{what}: {exc}")
            result.kept += 1
            unavailable = isinstance(exc, DatabaseUnavailable)
            continue
        result.written += 1
        done += raws[record.call_id]
    result.rejected = len(rejected)
    if done or rejected:
        await in_spool_thread(_forget_lines, path, done, rejected)


def _join(snaps: list[CallSnapshot], later: CallSnapshot) -> None:
    """Add a call's next line to its lines so far, joined into the last one when their transcripts meet."""
    if snaps and (merged := joined(snaps[-1], later)) is not None:
        snaps[-1] = merged
    else:
        snaps.append(later)


def joined(earlier: CallSnapshot, later: CallSnapshot) -> CallSnapshot | None:
    """One snapshot holding ``earlier`` then ``later`` (each part as ``later`` has it, unless it left the part
    out); None when ``later``'s transcript starts past the end of ``earlier``'s (the lines between are stored)."""
    if later.first_seq > earlier.first_seq + len(earlier.messages):
        return None
    if later.first_seq <= earlier.first_seq:
        first_seq, messages = later.first_seq, later.messages
    else:
        kept = earlier.messages[: later.first_seq - earlier.first_seq]
        first_seq, messages = earlier.first_seq, kept + later.messages
    parts = {
        name: value
        for name in CallSnapshot.model_fields
        if name not in ("messages", "first_seq") and (value := getattr(later, name)) not in (None, [])
    }
    return earlier.model_copy(update={**parts, "first_seq": first_seq, "messages": messages})


def _erasure(raw: bytes) -> ErasureRequest | None:
    try:
        return ErasureRequest.model_validate_json(raw)
    except ValidationError:
        return None


def _claim(path: Path) -> int | None:
    """A descriptor holding the spool's replay claim, or None if another process holds it (never waits:
    the drainers of several processes take turns instead of each writing every line)."""
    fd = os.open(path.with_name(path.name + ".replaying"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _let_go(claiming: asyncio.Future[int | None]) -> None:
    if not claiming.cancelled() and claiming.exception() is None and (fd := claiming.result()) is not None:
        os.close(fd)


def _read_locked(path: Path) -> list[bytes] | None:
    """The spool's lines, read under its lock (None if there is no spool)."""
    with _locked(path, create=False) as fd:
        if fd is None:
            return None
        return [raw for raw in _read_fd(fd).split(b"\n") if raw.strip()]


def _forget_lines(path: Path, done: list[bytes], rejected: list[bytes]) -> None:
    """Remove these lines (the database holds them, or they are set aside), keeping any appended since."""
    with _locked(path, create=False) as fd:
        if fd is None:
            return
        lines = [raw for raw in _read_fd(fd).split(b"\n") if raw.strip()]
        gone = Counter(done)
        aside = Counter(rejected)
        keep: list[bytes] = []
        moved: list[bytes] = []
        for raw in lines:
            if gone[raw] > 0:
                gone[raw] -= 1
            elif aside[raw] > 0:
                aside[raw] -= 1
                moved.append(raw)
            else:
                keep.append(raw)
        if len(keep) < len(lines):
            _forget_written(path, keep, moved)


def _forget_written(path: Path, keep: list[bytes], rejected: list[bytes]) -> None:
    """Called with the spool locked, after the database committed every record not in ``keep``."""
    if rejected:
        _append_raw(_rejected_path(path), rejected)
    _rewrite(path, keep)


def _rewrite(path: Path, lines: list[bytes]) -> None:
    """Replace the file with ``lines`` (removing it if none), atomically and readable by its owner only."""
    if lines:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, b"".join(raw + b"\n" for raw in lines))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    else:
        path.unlink()
    fsync_path(path.parent)


def _rejected_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(SUFFIX) + REJECTED_SUFFIX)


def _acquire(path: Path, *, create: bool) -> int | None:
    """An exclusively locked descriptor of the file now at ``path`` (None if absent and not creating)."""
    while True:
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        try:
            fd = os.open(path, flags, 0o600)
        except FileNotFoundError:
            return None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # replaced while we waited: closing also releases the lock; try the new file


@contextmanager
def _locked(path: Path, *, create: bool) -> Iterator[int | None]:
    fd = _acquire(path, create=create)
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _read_fd(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _read_lines(path: Path) -> list[bytes]:
    try:
        return [raw for raw in path.read_bytes().split(b"\n") if raw.strip()]
    except FileNotFoundError:
        return []


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _append_raw(path: Path, lines: list[bytes]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        _write_all(fd, b"".join(raw + b"\n" for raw in lines))
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_path(path: Path) -> None:
    """Flush a file, or a folder's entries (so a created, renamed or removed file stays so)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def forget(path: Path, identities: set[str], needles: list[str], *, households: bool, dry_run: bool) -> int:
    """Drop the spooled snapshots of these identities (with ``households``, of every profile on them too)
    and the set-aside lines that mention any needle; returns how many."""
    dropped = 0
    fd = _acquire(path, create=False)
    if fd is not None:
        try:
            lines = [raw for raw in _read_fd(fd).split(b"\n") if raw.strip()]
            keep = [raw for raw in lines if not _belongs(raw, identities, households)]
            dropped += len(lines) - len(keep)
            if not dry_run and len(keep) < len(lines):
                _forget_written(path, keep, [])
        finally:
            os.close(fd)
    rejected = _rejected_path(path)
    lines = _read_lines(rejected)
    encoded = [needle.encode("utf-8") for needle in needles if needle]
    keep = [raw for raw in lines if not any(needle in raw for needle in encoded)]
    dropped += len(lines) - len(keep)
    if not dry_run and len(keep) < len(lines):
        _rewrite(rejected, keep)
    return dropped


def _belongs(raw: bytes, identities: set[str], households: bool) -> bool:
    try:
        snap = CallSnapshot.model_validate_json(raw)
    except ValidationError:
        return False
    return snap.identity in identities or (households and snap.household in identities)
