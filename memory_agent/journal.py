"""One journal per call: the only way a call and its agents reach the database.

- *look up*: the caller is looked up as the call starts, on a connection of its own; whatever
  needs the memory waits for that one lookup (``household``), within a bound of seconds.
- *open*: the call's start is written in the background: neither it nor the lookup waits for the other.
- *checkpoint*: after each change, a non-blocking write of the call as it now stands. At most
  one write is in flight; a newer snapshot replaces a pending one; nothing is written when
  nothing changed, and only what changed is sent (the transcript from its first new line), so a
  checkpoint costs the same late in a long call as early. These writes are *relaxed*: a killed
  process keeps them, a power cut may not. One the database does not take within the budget
  (locked by another connection, or failing) goes to the fsynced spool instead, as what changed
  since the last checkpoint a killed process keeps (the spool's replay joins them up), so a
  killed process loses at most the turn in progress; the write itself goes on.
- *commit*: placing an order is durable before it is announced: a *forced* write within the
  budget, or else the whole call as a line in the fsynced spool.
- *close*: the final record, forced, within ``FINALIZE_WITHIN_S`` (a job being shut down has
  only seconds to live), or else spooled, whatever the failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from db import (
    CallerErased,
    CallSnapshot,
    CustomerMemory,
    DatabaseUnavailable,
    ErasureRequest,
    Repository,
    RepositoryError,
)
from db.attempts import Outcome
from db.clock import utcnow_iso
from db.kitchen import is_sold_out
from db.kitchen_queue import kitchen_queue
from db.schema.models import PastOrder
from memory_agent.identity import redact

log = logging.getLogger("memory_agent")

# LiveKit gives a job about 10 s after a worker's shutdown begins: spool well before that.
FINALIZE_WITHIN_S = 5.0

# Builds the call's snapshot as it stands; with an end reason, its final record.
SnapshotSource = Callable[[str | None], CallSnapshot]


class Journal:
    def __init__(self, repo: Repository, *, call_id: str, caller: str | None, budget_s: float) -> None:
        self.call_id = call_id
        self.caller = caller
        self.budget_s = budget_s
        self.closed = False
        self.erased = False  # the caller was erased while the call ran: nothing more of it is written
        self._opened = False
        self._repo = repo
        self._source: SnapshotSource | None = None
        self._latest: CallSnapshot | None = None  # the newest snapshot handed to the database
        self._written: CallSnapshot | None = None  # the newest snapshot the database holds
        # The newest snapshot a killed process keeps (in the database or the spool), by its number:
        # a checkpoint spools only what changed since it.
        self._kept: tuple[int, CallSnapshot] | None = None
        self._made = 0  # snapshots numbered in the order they were made
        self._asked = 0  # the newest snapshot a write was asked for
        self._pending: tuple[int, CallSnapshot] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._attempts: list[asyncio.Future[None]] = []  # names tried, being recorded: the close waits for them
        self._lock = asyncio.Lock()
        self._lookup: asyncio.Future[tuple[CustomerMemory, ...]] | None = None
        self._last_write: asyncio.Future[bool] | None = None  # writes queue on the lock: the last ends last

    def look_up(self) -> None:
        """Start looking the caller up now, in the background; ``household`` waits for this lookup."""
        if self.caller is not None and self._lookup is None:
            self._lookup = asyncio.ensure_future(self._repo.household(self.caller))
            in_background(self._lookup, None)  # its failure is reported by ``household``

    async def back_within(self, wait_s: float) -> tuple[CustomerMemory, ...] | None:
        """The lookup's profiles if it is back within ``wait_s``; None otherwise (it goes on meanwhile)."""
        self.look_up()
        if self._lookup is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(self._lookup), timeout=wait_s)
        except TimeoutError:
            return None
        except RepositoryError as exc:
            log.warning("caller lookup for %s failed (%s); going on without memory", redact(self.caller), exc)
            return None

    def attach(self, source: SnapshotSource) -> None:
        """Journal the call whose snapshots ``source`` builds."""
        self._source = source

    def open(self) -> None:
        """Write the call's start, in the background (once the greeting is on its way)."""
        if self._opened or self._source is None:
            return
        self._opened = True
        in_background(asyncio.ensure_future(self._open()), f"recording the start of call {self.call_id}")

    async def _open(self) -> None:
        if self.caller is not None:
            try:
                # The caller's earlier calls left open by a dead process must not linger.
                await self._repo.close_stale_calls(identity=self.caller)
            except RepositoryError as exc:
                log.warning("could not check the earlier calls of %s: %s", redact(self.caller), exc)
        self.checkpoint()

    async def household(self, *, wait_s: float | None) -> tuple[CustomerMemory, ...] | None:
        """The profiles on the caller's number (or identity), from the lookup begun with the call (a failed
        one is tried again); None when it fails or is not back within ``wait_s`` (None: no limit)."""
        if self.caller is None:
            return ()
        lookup = self._lookup
        if lookup is not None and lookup.done() and (lookup.cancelled() or lookup.exception() is not None):
            self._lookup = None
        self.look_up()
        assert self._lookup is not None
        try:
            return await asyncio.wait_for(asyncio.shield(self._lookup), timeout=wait_s)
        except TimeoutError:
            log.warning(
                "caller lookup for %s not back within %.1f s; going on without memory",
                redact(self.caller),
                wait_s or 0,
            )
        except RepositoryError as exc:
            log.warning("caller lookup for %s failed (%s); going on without memory", redact(self.caller), exc)
        return None

    async def wrong_names_since(self, since: str, *, budget_s: float) -> int | None:
        """Wrong names said on the caller's number since ``since``; None when the count fails or overruns."""
        if self.caller is None:
            return 0
        try:
            return await asyncio.wait_for(self._repo.identity_attempts(self.caller, since=since), timeout=budget_s)
        except (TimeoutError, RepositoryError) as exc:
            log.warning("names tried on %s could not be counted (%s)", redact(self.caller), type(exc).__name__)
        return None

    def note_identity_attempt(self, outcome: Outcome) -> None:
        """Record, in the background, a name that matched none of the number's profiles (or was not compared)."""
        if self.caller is not None:
            attempt = asyncio.ensure_future(
                self._repo.record_identity_attempt(self.caller, call_id=self.call_id, outcome=outcome)
            )
            self._attempts.append(attempt)
            in_background(attempt, f"recording a name tried on call {self.call_id}")

    async def past_orders(self, identity: str, limit: int) -> list[PastOrder]:
        """The profile's last placed orders, newest first; raises ``RepositoryError`` if the lookup fails."""
        return await self._repo.past_orders(identity, limit)

    async def sold_out(self, menu_item: str, day: str) -> bool:
        """Whether the kitchen marked ``menu_item`` sold out for ``day``; False if the database does not answer
        within the budget (the kitchen can still refuse the dish)."""
        try:
            return await asyncio.wait_for(is_sold_out(self._repo, menu_item, day), timeout=self.budget_s)
        except (TimeoutError, RepositoryError):
            log.warning("call %s: the sold-out list did not answer; the dish is taken", self.call_id)
            return False

    async def kitchen_queue(self, *, now: datetime, until: datetime) -> int | None:
        """Placed orders still in the kitchen (see ``db.kitchen_queue``); None when the database cannot
        say within the budget (the ready time is then the kitchen's time alone)."""
        try:
            return await asyncio.wait_for(kitchen_queue(self._repo, now=now, until=until), timeout=self.budget_s)
        except (TimeoutError, RepositoryError) as exc:
            log.warning("call %s: the kitchen's queue is unknown (%s)", self.call_id, type(exc).__name__)
            return None

    async def forget(self, identity: str) -> None:
        """Erase the profile ``identity`` and everything of it, this call included (once its final record is in).

        If the database cannot take the erasure now, it is spooled and carried out at the spool's replay;
        raises ``DatabaseUnavailable`` only when neither would take it.
        """
        try:
            erased = await self._repo.forget(identity, exact=True, online=True)  # other calls go on writing
        except (RepositoryError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            try:
                path = await self._repo.spool_erasure(ErasureRequest(erase=identity, requested_at=utcnow_iso()))
            except Exception as spool_exc:  # noqa: BLE001
                log.critical(
                    "call %s: the caller's erasure could not be carried out (%s) nor spooled (%s)",
                    self.call_id,
                    reason,
                    spool_exc,
                )
                raise DatabaseUnavailable(f"call {self.call_id}: erasure neither carried out nor spooled") from None
            log.warning(
                "call %s: the caller's erasure was spooled to %s, to be carried out when the database takes it: %s",
                self.call_id,
                path,
                reason,
            )
            return
        rows = sum(erased.counts.values())
        log.info("call %s: the caller's profile was erased at their request (%d rows)", self.call_id, rows)

    def checkpoint(self) -> None:
        """Write the call as it now stands, without waiting; nothing if nothing changed."""
        if self.closed or self._source is None:
            return
        snap = self._source(None)
        if snap == self._latest:
            return
        self._latest = snap
        self._pending = (self._number(), snap)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name=f"journal-{self.call_id}")

    async def commit(self) -> bool:
        """Make the call as it stands durable now; True if in the database, False if in the spool.

        Raises ``DatabaseUnavailable`` when neither would take it: then nothing may be promised.
        """
        assert self._source is not None, "the journal is not open"
        snap = self._latest = self._source(None)
        self._pending = None
        try:
            return await self._durably(self._number(), snap, within_s=self.budget_s, what="order")
        except CallerErased:
            raise DatabaseUnavailable(f"call {self.call_id}: its caller was erased; nothing of it is kept") from None

    async def close(self, end_reason: str, *, within_s: float = FINALIZE_WITHIN_S) -> bool:
        """Write the call's final record; True if in the database, False if in the spool."""
        self.closed = True
        self._pending = None
        if self._attempts:  # failures are logged by ``in_background``
            await asyncio.wait(self._attempts, timeout=within_s)
        try:
            assert self._source is not None, "the journal is not open"
            snap = self._source(end_reason)
        except Exception as exc:  # noqa: BLE001  (the last good snapshot is better than nothing)
            # The exception's type only: its text may quote what the caller said.
            log.error(
                "call %s: could not build its final record (%s); writing the last snapshot",
                self.call_id,
                type(exc).__name__,
            )
            base = self._latest or CallSnapshot(call_id=self.call_id)
            snap = base.model_copy(update={"ended_at": utcnow_iso(), "end_reason": end_reason})
        try:
            return await self._durably(self._number(), snap, within_s=within_s, what="call")
        except CallerErased:
            return True  # nothing to keep, by design

    async def flush(self) -> None:
        """Wait until every checkpoint asked for so far has been written (or has failed)."""
        await self.saved()
        while self._last_write is not None and not self._last_write.done():
            await asyncio.wait([self._last_write])

    async def saved(self) -> None:
        """Wait until every checkpoint asked for so far is in the database or in the spool."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def _durably(self, made: int, snap: CallSnapshot, *, within_s: float, what: str) -> bool:
        writing = asyncio.ensure_future(self._write(made, snap, forced=True))
        in_background(writing, None)  # its failure is handled below
        try:
            await asyncio.wait_for(asyncio.shield(writing), timeout=within_s)
            return True
        except CallerErased:
            self._erased_while_running()
            raise
        except TimeoutError:
            reason = f"not written within {within_s:g} s"
        except Exception as exc:  # noqa: BLE001  (whatever went wrong, the spool keeps it)
            reason = str(exc) or type(exc).__name__
        # A write given up on may still land; the replay is idempotent, so nothing is written twice.
        # The whole call, not only what changed: a power cut may lose the relaxed writes before it.
        try:
            path = await self._repo.spool(snap)
        except Exception as exc:  # noqa: BLE001
            log.critical("call %s: the %s could not be written (%s) nor spooled (%s)", self.call_id, what, reason, exc)
            raise DatabaseUnavailable(f"call {self.call_id} neither written nor spooled: {exc}") from None
        self._keep(made, snap)
        log.warning("call %s: the %s was spooled to %s: %s", self.call_id, what, path, reason)
        return False

    async def _drain(self) -> None:
        while (pending := self._pending) is not None:
            self._pending = None
            made, snap = pending
            writing = self._last_write = asyncio.ensure_future(self._write(made, snap, forced=False))
            in_background(writing, None)  # its failure is handled below
            try:
                if await asyncio.wait_for(asyncio.shield(writing), timeout=self.budget_s):
                    continue
                reason = "left to a newer write"  # which may not be durable yet: the spool keeps it meanwhile
            except CallerErased:
                self._erased_while_running()
                continue
            except TimeoutError:
                reason = f"not written within {self.budget_s:g} s"
            except Exception as exc:  # noqa: BLE001  (whatever went wrong, the spool keeps the turns)
                reason = str(exc) or type(exc).__name__
            # The completed turns must survive the process: the spool keeps what changed since the
            # last snapshot a killed process keeps, until the database takes it (the write given up
            # on may still land; the replay is idempotent).
            try:
                await self._repo.spool(changes(snap, since=None if self._kept is None else self._kept[1]))
            except Exception as exc:  # noqa: BLE001  (the next checkpoint or the close covers it)
                log.warning("checkpoint of call %s neither written (%s) nor spooled: %s", self.call_id, reason, exc)
            else:
                self._keep(made, snap)
                log.warning("checkpoint of call %s spooled: %s", self.call_id, reason)

    def _erased_while_running(self) -> None:
        if not self.erased:
            self.erased = True
            log.info("call %s: its caller was erased while it ran; nothing more of it is written", self.call_id)

    async def _write(self, made: int, snap: CallSnapshot, *, forced: bool) -> bool:
        """Write ``snap`` (the ``made``-th); False when a relaxed one is left to a newer write asked for since,
        which carries all of it (under contention, a call's turns then cost one write, not one each)."""
        self._asked = max(self._asked, made)
        async with self._lock:
            if not forced and made < self._asked:
                return False
            await self._repo.save_call(changes(snap, since=self._written), forced=forced)
            self._written = snap
            self._keep(made, snap)
            return True

    def _number(self) -> int:
        self._made += 1
        return self._made

    def _keep(self, made: int, snap: CallSnapshot) -> None:
        """``snap`` (the ``made``-th) is in the database or the spool: later checkpoints spool only what follows."""
        if self._kept is None or made > self._kept[0]:
            self._kept = (made, snap)


def changes(snap: CallSnapshot, *, since: CallSnapshot | None) -> CallSnapshot:
    """``snap`` with only what changed since ``since`` (a final one whole): the transcript from its first
    new line, and None (or no items) for each part unchanged, which a write leaves untouched."""
    if snap.final or since is None:
        return snap
    same = 0
    for old, new in zip(since.messages, snap.messages, strict=False):
        if old is not new and old != new:  # rows are built once per line of the history: mostly the same object
            break
        same += 1
    unchanged: dict[str, Any] = {
        part: [] if part in ("facts", "staff_messages") else None
        for part in ("caller_name", "email", "order", "feedback", "facts", "staff_messages")
        if getattr(since, part) == getattr(snap, part) and since.identity == snap.identity
    }
    return snap.model_copy(update={"messages": snap.messages[same:], "first_seq": same + 1, **unchanged})


_BACKGROUND: set[asyncio.Future[Any]] = set()


def in_background(task: asyncio.Future[Any], what: str | None) -> None:
    """Keep a task alive until it ends, and log it as ``what`` if it fails (nothing else awaits it)."""
    _BACKGROUND.add(task)

    def done(task: asyncio.Future[Any]) -> None:
        _BACKGROUND.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None and what is not None:
            log.warning("%s failed: %s", what, exc)

    task.add_done_callback(done)
