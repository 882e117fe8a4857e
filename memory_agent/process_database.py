"""A call's process attaches to the database once, before its call arrives, on a thread of its own.

LiveKit prewarms each job's process with a synchronous function that runs before the process's event
loop exists, so the repository is opened on this module's own thread and loop: it is open (or opening)
while the process waits in LiveKit's pool, and each job reaches it through ``repository()``, whose
methods run on that loop. It attaches only (``Settings.repository(attach=True)``): the worker's
long-lived process migrates the database, replays and drains the spool, closes stale calls and applies
the retention (see ``memory_agent.worker.Worker``). One repository, so one PostgreSQL pool, per process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import threading
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from db import Repository
    from memory_agent.settings import Settings

CLOSE_TIMEOUT_S = 30.0


class ProcessDatabase:
    """This process's repository, attached on its own thread and event loop; see the module's docstring."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="database", daemon=True)
        self._thread.start()
        self._lock = threading.Lock()
        self._resources = AsyncExitStack()
        self._repo: Repository | None = None
        self._opening: concurrent.futures.Future[Repository] = self._submit(self._open())
        self.opened = 0  # how many times the repository was opened in this process (once, unless it failed)

    def _submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _open(self) -> Repository:
        repo = await self._resources.enter_async_context(self._settings.repository(attach=True))
        self._repo = repo
        self.opened += 1
        return repo

    async def repository(self) -> Repository:
        """The open repository (waiting for the opening begun at prewarm, or trying again if it failed),
        as one the caller's event loop can use."""
        with self._lock:
            opening = self._opening
            if opening.done() and opening.exception() is not None:
                opening = self._opening = self._submit(self._open())
        repo = await asyncio.wrap_future(opening)
        return cast("Repository", OnLoop(repo, self._loop))

    @property
    def closed(self) -> bool:
        return not self._thread.is_alive()

    async def aclose(self) -> None:
        """Close the repository (checkpointed, heartbeat retired) and stop its thread, once the calls ended."""
        if self.closed:
            return
        try:
            await asyncio.wrap_future(self._submit(self._resources.aclose()))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, CLOSE_TIMEOUT_S)


class OnLoop:
    """A repository used from another event loop: each of its coroutine methods runs on the repository's own
    loop (cancelling the caller's await cancels it there too); other attributes are read as they are."""

    def __init__(self, target: object, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not inspect.iscoroutinefunction(value):
            return value
        return _on_loop(value, self._loop)


def _on_loop(method: Callable[..., Any], loop: asyncio.AbstractEventLoop) -> Callable[..., Any]:
    @functools.wraps(method)
    async def run(*args: object, **kwargs: object) -> Any:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(method(*args, **kwargs), loop))

    return run


_lock = threading.Lock()
_databases: dict[str, ProcessDatabase] = {}


def process_database(settings: Settings) -> ProcessDatabase:
    """The process's one ``ProcessDatabase`` for the database ``settings`` name, begun by the first job
    process prewarmed here (LiveKit's thread executor prewarms several in one process)."""
    with _lock:
        database = _databases.get(str(settings.db))
        if database is None or database.closed:
            database = _databases[str(settings.db)] = ProcessDatabase(settings)
        return database
