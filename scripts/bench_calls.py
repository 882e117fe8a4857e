"""Whole calls against the database: what the product's repository costs a scripted call.

Each measure has its reference in the same run: a repository that does nothing (``NullRepository``:
the methods a call's journal uses, returning at once).
The calls are the offline demo's (``memory_agent.demo``): a new caller who orders and leaves
feedback, and the same caller's return call that reorders.

A scripted LLM answers at once, so a call's checkpoints arrive faster than the journal writes
them and are merged; a real model takes hundreds of milliseconds a step. Where that matters
(the writes a call makes, the time they cost), the LLM takes ``LLM_STEP_S`` per step: much less
than a real model, much more than a relaxed write.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from harness import percentile, percentiles, rotated
from livekit.agents import llm
from livekit.agents.types import APIConnectOptions

from db import CallSnapshot, CustomerMemory, Repository, open_repository
from memory_agent import start_call
from memory_agent.call import Call
from memory_agent.demo import FIRST_CALL_LINES, FIRST_CALL_STEPS, RETURN_CALL_LINES, RETURN_CALL_STEPS
from memory_agent.identity import Caller
from memory_agent.scripted_llm import Say, ScriptedLLM, Step

# After each measured call, time for work the call left on the database threads (a WAL
# checkpoint) to be done and counted as that call's: sleeping costs no CPU.
SETTLE_S = 0.005
AT_ONCE = 20
LLM_STEP_S = 0.010


@dataclass(frozen=True)
class Script:
    kind: str
    steps: Sequence[Step]
    lines: Sequence[str]


NEW_CALLER = Script("new caller", FIRST_CALL_STEPS, FIRST_CALL_LINES)
RETURNING_CALLER = Script("returning caller", RETURN_CALL_STEPS, RETURN_CALL_LINES)


class NullRepository:
    """A repository that does nothing: what a call costs without a database.

    Every caller it is asked about is ``memory`` (or unknown, for None).
    """

    def __init__(self, memory: CustomerMemory | None) -> None:
        self.memory = memory

    async def recall(self, identity: str) -> CustomerMemory | None:
        return self.memory

    async def household(self, caller: str) -> tuple[CustomerMemory, ...]:
        return () if self.memory is None else (self.memory,)

    async def save_call(self, snap: CallSnapshot, *, forced: bool = False) -> None:
        return None

    async def spool(self, snap: CallSnapshot) -> Path:
        return Path(os.devnull)

    async def close_stale_calls(self, *, identity: str | None = None, lease: timedelta | None = None) -> list[str]:
        return []

    def as_repository(self) -> Repository:
        """Typed as the product's repository: a call's journal uses only the methods above."""
        return cast(Repository, self)


class FirstRequestLLM(ScriptedLLM):
    """A scripted LLM that notes when the first request (the greeting's) was made."""

    first_request_at: float | None = None

    def chat(self, **kwargs: Any) -> Any:
        if self.first_request_at is None:
            self.first_request_at = time.perf_counter()
        return super().chat(**kwargs)


class PacedLLM(ScriptedLLM):
    """A scripted LLM that takes ``step_s`` to answer each request, as a real model takes time."""

    def __init__(self, steps: Sequence[Step], *, step_s: float) -> None:
        super().__init__(steps)
        self.step_s = step_s

    def chat(self, **kwargs: Any) -> Any:
        answer = super().chat(**kwargs)
        return Delayed(
            self,
            answer,
            self.step_s,
            chat_ctx=kwargs["chat_ctx"],
            tools=kwargs.get("tools") or [],
            conn_options=APIConnectOptions(max_retry=0, retry_interval=0, timeout=5),
        )


class Delayed(llm.LLMStream):
    """Passes on another stream's chunks after a delay (``_run`` and ``_event_ch``: LiveKit's plugin API)."""

    def __init__(self, owner: llm.LLM, answer: llm.LLMStream, delay_s: float, **kwargs: Any) -> None:
        super().__init__(owner, **kwargs)
        self._answer = answer
        self._delay_s = delay_s

    async def _run(self) -> None:
        try:
            await asyncio.sleep(self._delay_s)
            async for chunk in self._answer:
                self._event_ch.send_nowait(chunk)
        finally:
            await self._answer.aclose()


def new_identity() -> str:
    return f"bench-call-{uuid.uuid4().hex[:12]}"


async def scripted_call(repo: Repository, identity: str, script: Script, *, step_s: float = 0.0) -> None:
    """One whole call through the product: greeting, the caller's lines, hang-up and final record.

    ``step_s``: how long the scripted LLM takes per step (0: at once).
    """
    model = PacedLLM(script.steps, step_s=step_s) if step_s else ScriptedLLM(script.steps)
    call = await start_call(repo, Caller.typed(identity), llm=model)
    assert call.greeting is not None
    await call.greeting
    for line in script.lines:
        await call.session.run(user_input=line)
    await call.finish("caller_hung_up")
    if model.remaining:
        raise RuntimeError(f"the {script.kind}'s call went off script ({model.remaining} LLM steps unused)")


async def settled(repo: Repository) -> None:
    """Let the recovery that opening the repository started finish, so it is not counted as a call's."""
    await repo.recovered()


# -- 7. write transactions per call ---------------------------------------------------------


async def bench_write_counts(repo: Repository, pairs: int) -> dict[str, Any]:
    """Forced and relaxed transactions committed during one call, over ``pairs`` new/returning pairs.

    With the LLM taking ``LLM_STEP_S`` a step (``paced``) and answering at once (``instant``).
    """
    await settled(repo)
    out: dict[str, Any] = {"step_ms": LLM_STEP_S * 1000}
    for pace, step_s in (("paced", LLM_STEP_S), ("instant", 0.0)):
        seen: dict[str, dict[str, list[int]]] = {
            script.kind: {"forced": [], "relaxed": []} for script in (NEW_CALLER, RETURNING_CALLER)
        }
        for _ in range(pairs):
            identity = new_identity()
            for script in (NEW_CALLER, RETURNING_CALLER):
                before = dict(repo.write_counts)
                await scripted_call(repo, identity, script, step_s=step_s)
                for kind in ("forced", "relaxed"):
                    seen[script.kind][kind].append(repo.write_counts[kind] - before.get(kind, 0))
        out[pace] = {
            call: {
                kind: {"mean": sum(counts) / len(counts), "min": min(counts), "max": max(counts)}
                for kind, counts in by_kind.items()
            }
            | {"calls": len(by_kind["forced"])}
            for call, by_kind in seen.items()
        }
    return out


# -- 8. database time per call --------------------------------------------------------------


async def _measured(repo: Repository, identity: str, script: Script, step_s: float) -> tuple[float, float]:
    """CPU (all threads) and wall time of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    await scripted_call(repo, identity, script, step_s=step_s)
    wall = time.perf_counter() - wall
    await asyncio.sleep(SETTLE_S)
    return time.process_time() - cpu, wall


def _mean_p50(seconds: list[float]) -> dict[str, float]:
    return {"mean_ms": sum(seconds) / len(seconds) * 1000, "p50_ms": percentile(seconds, 0.5) * 1000}


async def bench_db_time(repo: Repository, calls: int) -> dict[str, Any]:
    """Whole calls, new and returning callers in turn, through the repository and a null one.

    With the LLM taking ``LLM_STEP_S`` a step (``paced``: each checkpoint is written, as with a real
    model) and answering at once (``instant``); the share is (real - null) / real of the mean.
    """
    await settled(repo)
    identity = new_identity()
    await scripted_call(repo, identity, NEW_CALLER)
    await scripted_call(repo, identity, RETURNING_CALLER)
    # The null repository remembers the returning caller exactly as the database does.
    nulls = {
        NEW_CALLER.kind: NullRepository(None).as_repository(),
        RETURNING_CALLER.kind: NullRepository(await repo.recall(identity)).as_repository(),
    }
    for script in (NEW_CALLER, RETURNING_CALLER):
        await scripted_call(nulls[script.kind], new_identity(), script)
    out: dict[str, Any] = {"step_ms": LLM_STEP_S * 1000}
    for pace, step_s in (("paced", LLM_STEP_S), ("instant", 0.0)):
        cpu: dict[str, list[float]] = {"real": [], "null": []}
        wall: dict[str, list[float]] = {"real": [], "null": []}
        for pair in range((calls + 1) // 2):
            identity = new_identity()
            for script in (NEW_CALLER, RETURNING_CALLER):
                for name in rotated(("real", "null"), pair):
                    target = repo if name == "real" else nulls[script.kind]
                    spent, elapsed = await _measured(target, identity, script, step_s)
                    cpu[name].append(spent)
                    wall[name].append(elapsed)
        figures: dict[str, Any] = {"calls": len(cpu["real"])}
        for measure, times in (("cpu", cpu), ("wall", wall)):
            real, null = _mean_p50(times["real"]), _mean_p50(times["null"])
            figures[measure] = {
                "real": real,
                "null": null,
                "db_share": (real["mean_ms"] - null["mean_ms"]) / real["mean_ms"],
            }
        out[pace] = figures
    return out


# -- 5. greeting --------------------------------------------------------------------------------


async def _greeted(repo: Repository, identity: str, burst: float) -> tuple[float, float, Call]:
    """Seconds to the greeting's LLM request from this call's ``start_call`` and from ``burst``; and the call."""
    model = FirstRequestLLM([Say("Welcome back to Bella Vista!")])
    began = time.perf_counter()
    call = await start_call(repo, Caller.typed(identity), llm=model)
    assert call.greeting is not None
    await call.greeting
    assert model.first_request_at is not None
    return model.first_request_at - began, model.first_request_at - burst, call


async def bench_greeting(repo: Repository, identities: Sequence[str], calls: int) -> dict[str, Any]:
    """Start to the first LLM request, real against null repository: one call at a time, then AT_ONCE at once.

    ``identities`` are returning callers; the null repository gives every caller the memory of the first.
    Returns, for ``one`` call at a time, ``at_once`` (each call timed from its own ``start_call``) and
    ``burst`` (the same calls timed from the moment all were started), the percentiles of each repository.
    """
    await settled(repo)
    targets = {"real": repo, "null": NullRepository(await repo.recall(identities[0])).as_repository()}
    pick = itertools.cycle(identities)
    times: dict[str, dict[str, list[float]]] = {kind: {"real": [], "null": []} for kind in ("one", "at_once", "burst")}

    for i in range(3 + calls):
        for name in rotated(("real", "null"), i):
            elapsed, _, call = await _greeted(targets[name], next(pick), time.perf_counter())
            await call.finish()
            if i >= 3:
                times["one"][name].append(elapsed)

    for i in range(1 + max(1, calls // AT_ONCE)):
        for name in rotated(("real", "null"), i):
            gc.collect()  # a full collection in the middle of one burst would outweigh everything else
            burst = time.perf_counter()
            results = await asyncio.gather(*(_greeted(targets[name], next(pick), burst) for _ in range(AT_ONCE)))
            await asyncio.gather(*(call.finish() for _, _, call in results))
            await asyncio.sleep(SETTLE_S)
            if i >= 1:
                times["at_once"][name].extend(own for own, _, _ in results)
                times["burst"][name].extend(from_burst for _, from_burst, _ in results)

    out: dict[str, Any] = {"at_once_calls": AT_ONCE}
    for kind, by_repo in times.items():
        real, null = percentiles(by_repo["real"]), percentiles(by_repo["null"])
        out[kind] = {
            "real": real,
            "null": null,
            "p50_ratio": real["p50_ms"] / null["p50_ms"],
            "p99_diff_ms": real["p99_ms"] - null["p99_ms"],
        }
    return out


# -- 9. file sizes ------------------------------------------------------------------------------


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


async def bench_file_sizes(path: Path, calls: int) -> dict[str, Any]:
    """A fresh database after ``calls`` whole calls (new and returning callers in turn), open and closed."""
    wal = Path(f"{path}-wal")
    largest_wal = 0
    async with open_repository(path) as repo:
        await settled(repo)
        for n in range(calls):
            await scripted_call(repo, f"bench-files-{n // 2}", NEW_CALLER if n % 2 == 0 else RETURNING_CALLER)
            largest_wal = max(largest_wal, _size(wal) or 0)
        open_sizes = {"wal": _size(wal), "main": _size(path)}
    return {
        "calls": calls,
        "largest_wal": largest_wal,
        "open": open_sizes,
        "closed": {"wal": _size(wal), "main": _size(path)},
    }
