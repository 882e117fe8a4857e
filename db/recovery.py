"""Recovery when the product opens the database: replay the spool, close calls left by dead processes,
then remove transcripts past their retention; and while it is open, the spool's drainer.

The spool goes first: a spooled call must be written as it was, not closed as abandoned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from db import spool
from db.errors import CallerErased, DatabaseUnavailable, RepositoryError
from db.schema.models import ErasureRequest

if TYPE_CHECKING:
    from db.backend import Repository

log = logging.getLogger("memory_agent.db")


async def recover(repo: Repository, keep_transcripts: timedelta | None = None) -> None:
    """What runs in the background at open, on either backend."""
    try:
        await repo.replay_spool()
        await repo.close_stale_calls()
        if keep_transcripts is not None:
            purged = await repo.purge_transcripts(older_than=keep_transcripts)
            if purged["calls"] or purged["comments"]:
                log.info("past retention: removed %(calls)d transcript(s) and %(comments)d comment(s)", purged)
    except RepositoryError as exc:
        log.warning("recovery at start postponed: %s", exc)


# The drainer looks at the spool this often when nothing woke it (another process's spooling,
# or this one's while it backed off); a refused replay is tried again after a growing pause.
DRAIN_IDLE_S = 2.0
DRAIN_BACKOFF_S = (0.25, 4.0)
# How often an open SQLite database is searched for calls left by dead processes.
SWEEP = timedelta(seconds=30)


async def drain(repo: Repository, wake: asyncio.Event, *, idle_s: float = DRAIN_IDLE_S) -> None:
    """Replay the spool for as long as the database is open: at once when this process spools, every
    ``idle_s`` otherwise, and with a growing pause while the database refuses the records."""
    with contextlib.suppress(Exception):
        await asyncio.shield(repo.recovered())  # the replay at open goes first (and is not the drainer's to stop)
    first, most = DRAIN_BACKOFF_S
    pause = first
    me = asyncio.current_task()
    # A cancellation swallowed on the way (a write racing its own timeout) must still stop the loop.
    while me is None or not me.cancelling():
        wake.clear()
        kept = 0
        if repo.spool_file.exists():
            try:
                kept = (await replay_spool(repo, quiet=pause > first)).kept
            except Exception as exc:  # noqa: BLE001  (the drainer outlives any one failure)
                log.warning("spool replay failed: %s", exc)
                kept = 1
        if kept:
            await asyncio.sleep(pause)
            pause = min(pause * 2, most)
            continue
        pause = first
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), idle_s)


async def sweep(repo: Repository, every_s: float) -> None:
    """Close the calls whose owner is gone, every ``every_s``, for as long as the database is open: a call
    process that died (killed, out of memory) leaves no open call behind until the worker restarts."""
    await asyncio.shield(repo.recovered())  # which closes them once at open
    while True:
        await asyncio.sleep(every_s)
        try:
            await repo.close_stale_calls()
        except RepositoryError as exc:
            log.warning("sweep for abandoned calls postponed: %s", exc)


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel a background task of the repository and wait until it has stopped."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def replay_spool(repo: Repository, *, quiet: bool = False) -> spool.ReplayResult:
    """Write the snapshots spooled while the database refused them, each exactly once, except those of
    callers erased since (by another process, whose erasure could not reach this spool); a spooled erasure
    is carried out in its place.

    ``quiet``: a refusal already reported is not logged again."""
    async with repo.replaying:  # a replay asked for waits for the drainer's pass, then makes its own
        result = await spool.replay(
            repo.spool_file,
            lambda snap: repo.save_call(snap, forced=True),
            repo.erased_since,
            lambda r: _erase(repo, r),
        )
    if result.written:
        log.info("replayed %d spooled call snapshot(s) into the database", result.written)
    if result.erasures:
        log.info("carried out %d spooled erasure(s) of callers who asked to be forgotten", result.erasures)
    if result.erased:
        log.info("dropped %d spooled call snapshot(s) of callers erased since", result.erased)
    if result.kept and not quiet:
        log.warning(
            "%d spooled call snapshot(s) still refused, kept for a later replay: %s",
            result.kept,
            "; ".join(result.errors[:3]),
        )
    if result.rejected:
        log.error(
            "%d unreadable spool line(s) set aside in %s",
            result.rejected,
            repo.spool_file.name.replace(spool.SUFFIX, spool.REJECTED_SUFFIX),
        )
    return result


async def _erase(repo: Repository, request: ErasureRequest) -> None:
    """A caller's erasure the database could not take when they asked, carried out now. The snapshots of
    theirs spooled before it were replayed first; those after it are dropped by the erasure check."""
    await repo.forget(request.erase, exact=True, drop_spooled=False, online=True)


async def save_whole_or_in_parts(call_id: str, write: Callable[[bool], Awaitable[list[str]]]) -> None:
    """Write a call with ``write(careful)`` in one go; if that fails on its data rather than on the
    database, write it again part by part (``careful``), so one bad row never loses the rest."""
    try:
        await write(False)
        return
    except (DatabaseUnavailable, CallerErased):
        raise
    except (RepositoryError, ValueError, TypeError, OverflowError) as exc:
        first_error = exc
    skipped = await write(True)
    log.error(
        "call %s written without %d part(s) that could not be stored (%s)",
        call_id,
        len(skipped),
        "; ".join(skipped[:3]) or first_error,
    )


async def purge_in_batches(purge_batch: Callable[[], Awaitable[dict[str, int]]], batch: int) -> dict[str, int]:
    """Run ``purge_batch`` (one transaction of at most ``batch`` calls) until a batch comes up short."""
    total = {"calls": 0, "messages": 0, "comments": 0}
    while True:
        done = await purge_batch()
        for key, value in done.items():
            total[key] += value
        if done["calls"] < batch:
            return total


async def erase(
    repo: Repository,
    erase_rows: Callable[[], Awaitable[dict[str, Any]]],
    identity: str,
    *,
    exact: bool,
    dry_run: bool,
    drop_spooled: bool,
) -> dict[str, int]:
    """An erasure's counts by table: its rows (``erase_rows``, the backend's one transaction), then the spooled
    lines of the same people, under ``repo.replaying`` so that no replay writes back what the erasure drops
    (unless ``drop_spooled`` is False: the spool's replay carrying out an erasure holds it, and drops them)."""

    async def rows_then_spool() -> dict[str, int]:
        found = await erase_rows()
        keys = {identity, *found["keys"]}
        spooled = 0
        if drop_spooled:
            needles = [*keys, *found["names"]]
            spooled = await spool.in_spool_thread(
                spool.forget, repo.spool_file, keys, needles, households=not exact, dry_run=dry_run
            )
        return {**found["counts"], "spool_lines": spooled}

    if not drop_spooled:
        return await rows_then_spool()
    async with repo.replaying:
        return await rows_then_spool()
