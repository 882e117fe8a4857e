"""Writers from several processes queue on a file lock beside the database, within a time bound."""

from __future__ import annotations

import fcntl
import os
import time

import pytest

from db.sqlite.writer_lock import WriterLock, WriterLockTimeout


def test_a_writer_waits_for_the_holder_and_gives_up_after_its_timeout(tmp_path):
    database = str(tmp_path / "memory.db")
    holder = os.open(f"{database}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    lock = WriterLock(database, timeout_s=0.2)

    started = time.monotonic()
    with pytest.raises(WriterLockTimeout):
        lock.acquire()
    assert 0.15 < time.monotonic() - started < 2

    os.close(holder)  # the holder goes away (as a killed process would)
    time.sleep(0.05)  # the abandoned wait takes the lock and lets it go
    with lock:
        pass


def test_a_writer_without_a_usable_lock_file_falls_back_to_sqlite_locking(tmp_path):
    lock = WriterLock(str(tmp_path / "missing-folder" / "memory.db"), timeout_s=0.1)
    with lock:
        pass
