"""What the call layer asks of a database: the one interface both backends (SQLite, PostgreSQL) give."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from db import spool, stale
from db.attempts import Outcome
from db.schema.models import CallSnapshot, CustomerMemory, ErasureRequest, PastOrder
from db.spool import ReplayResult


@dataclass(frozen=True)
class Erasure:
    """What ``forget`` removed (or would remove), by table; whether the write-ahead log was emptied at once."""

    counts: dict[str, int]
    log_emptied: bool


class Repository(Protocol):
    """Reads and writes of callers and their calls, whichever database holds them."""

    spool_file: Path  # where this process keeps the snapshots the database refused
    replaying: asyncio.Lock  # held by the replay of the spool under way in this process

    @property
    def write_counts(self) -> Counter[str]: ...

    async def recovered(self) -> None: ...

    async def recall(self, identity: str) -> CustomerMemory | None: ...

    async def household(self, caller: str) -> tuple[CustomerMemory, ...]: ...

    async def past_orders(self, identity: str, limit: int) -> list[PastOrder]: ...

    async def customer(self, identity: str) -> dict[str, object] | None: ...

    async def call_summary(self, call_id: str) -> dict[str, object]: ...

    async def read(self, sql: str, params: Sequence[object]) -> list[Any]:
        """Rows of one statement in the SQL both backends speak, with ``?`` placeholders."""
        ...

    async def save_call(self, snap: CallSnapshot, *, forced: bool = False) -> None:
        """Write ``snap``; ``CallerErased`` (nothing written) if its caller was erased since the call began."""
        ...

    async def spool(self, snap: CallSnapshot) -> Path: ...

    async def spool_erasure(self, request: ErasureRequest) -> Path:
        """Keep an erasure the database would not take in the spool, for its replay to carry out."""
        ...

    async def close_stale_calls(self, *, identity: str | None = None, lease: timedelta = stale.LEASE) -> list[str]: ...

    async def replay_spool(self) -> ReplayResult: ...

    async def erased_since(self, snap: CallSnapshot) -> bool:
        """Whether the caller of ``snap`` was erased after the call began (so it must not be written)."""
        ...

    async def checkpoint(self) -> None: ...

    async def record_identity_attempt(self, caller: str, *, call_id: str, outcome: Outcome) -> None:
        """Note that a name said on the number ``caller`` matched none of its profiles (or was not compared)."""
        ...

    async def identity_attempts(self, caller: str, *, since: str) -> int:
        """How many wrong names were said on the number ``caller`` since ``since`` (ISO 8601, UTC)."""
        ...

    async def forget(
        self,
        identity: str,
        *,
        name: str | None = None,
        exact: bool = False,
        dry_run: bool = False,
        drop_spooled: bool = True,
        online: bool = False,
    ) -> Erasure: ...

    async def export_caller(self, identity: str) -> dict[str, Any]: ...

    async def purge_transcripts(self, *, older_than: timedelta, batch: int = 500) -> dict[str, int]: ...


async def counted_with_spool(found: dict[str, Any], identity: str, spool_file: Path) -> Erasure:
    """A dry run's counts with the spooled lines an erasure would drop."""
    keys = {identity, *found["keys"]}
    spooled = await asyncio.to_thread(
        spool.forget, spool_file, keys, [*keys, *found["names"]], households=True, dry_run=True
    )
    return Erasure(counts={**found["counts"], "spool_lines": spooled}, log_emptied=True)
