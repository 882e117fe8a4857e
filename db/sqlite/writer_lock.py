"""Writers queue on an OS file lock beside the database before they ask SQLite for its write lock.

SQLite makes a writer that finds the database locked sleep and retry (1, 2, 5, 10 ... 100 ms),
so with several processes writing, the lock is often free while every waiter sleeps: throughput
falls as writers are added. Waiting on ``flock`` instead hands the lock over as soon as the
holder lets go. The file lock is released by the kernel when its process dies, is held only
around one short transaction, and is given up after ``timeout_s`` (the caller then treats the
database as busy; the abandoned wait lets go as soon as it is granted). Where the lock file
cannot be created (a read-only folder), writers fall back to SQLite's own locking.
"""

from __future__ import annotations

import fcntl
import os
import threading
from concurrent.futures import ThreadPoolExecutor

_pool: ThreadPoolExecutor | None = None
_pool_guard = threading.Lock()


def _waiters() -> ThreadPoolExecutor:
    """Threads that wait on the lock for a connection's thread (created on first contention)."""
    global _pool
    with _pool_guard:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="writer-lock-wait")
        return _pool


class WriterLockTimeout(Exception):
    """Another writer held the lock for longer than the timeout."""


class WriterLock:
    """``with lock:`` around a write transaction; safe to share between threads of one connection."""

    def __init__(self, database_path: str, *, timeout_s: float) -> None:
        self.path = f"{database_path}.lock"
        self.timeout_s = timeout_s
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._wait(fd)
        self._fd = fd

    def _wait(self, fd: int) -> None:
        """Block in the kernel (prompt hand-over) on a waiter thread, so that the wait can time out."""
        granted = threading.Event()
        guard = threading.Lock()
        abandoned = False

        def block() -> None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with guard:
                if abandoned:
                    os.close(fd)
                else:
                    granted.set()

        _waiters().submit(block)
        if granted.wait(self.timeout_s):
            return
        with guard:
            if granted.is_set():
                return
            abandoned = True
        raise WriterLockTimeout(f"{self.path} held by another writer for over {self.timeout_s} s")

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the lock

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
