"""The database is ready before a call arrives: the worker's process prepares and looks after it, a call's
process attaches to it once, when LiveKit prewarms the process, and a job only uses it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import psutil
from entrypoint_calls import greeted_call
from livekit.agents import JobExecutorType, JobProcess
from test_crashes import kill_mid_call

from conftest import open_all_hours, rows
from db import CallSnapshot, open_repository, prepare_database, spool
from db.clock import utcnow_iso
from db.postgres.repository import POOL_SIZE, postgres_spool_path
from db.spool import spool_path
from db.sqlite import migrate
from memory_agent.process_database import process_database
from memory_agent.restaurant import load_restaurant
from memory_agent.scripted_llm import Say, ScriptedLLM
from memory_agent.settings import Settings
from memory_agent.worker import DATABASE, Worker, entrypoint, prewarm
from voice_io import Caller, PhoneRoom

WAIT_S = 60.0  # a guard against a hung job, never a measure of speed
NUMBER = "+14155550134"


def spool_a_call(spool_file: Path, call_id: str) -> None:
    """A call another process could not write, waiting in the spool as the job starts."""
    spool.append(spool_file, CallSnapshot(call_id=call_id, identity=None, started_at=utcnow_iso()))


async def run_job(userdata: dict[str, object], settings: Settings) -> str:
    """One SIP call through the worker's entrypoint in a process prewarmed with ``userdata``, up to the
    agent's greeting; the caller then hangs up and the job ends as LiveKit ends it. Returns the call's id."""
    llm = ScriptedLLM([Say("Welcome to Bella Vista!")])
    room = PhoneRoom()
    caller = Caller(room, identity="sip_caller_1")
    caller.participant.attributes = {"sip.phoneNumber": NUMBER}
    session = await greeted_call(room, caller, llm, settings, userdata["vad"], prewarmed=userdata)
    return session.userdata.call_id


def prewarmed(settings: Settings) -> JobProcess:
    """A call's process as LiveKit's thread executor prewarms it (a process's would end with its one job)."""
    proc = JobProcess(executor_type=JobExecutorType.THREAD, user_arguments=None, http_proxy=None)
    prewarm(proc, settings=settings)
    return proc


def files_open(path: Path) -> int:
    """How many descriptors of this process have ``path`` open (the repository's reader and writer)."""
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd) == str(path)
        except OSError:
            continue
    return count


async def test_two_jobs_of_a_prewarmed_process_use_its_one_repository_and_recover_nothing(tmp_path):
    db = tmp_path / "memory.db"
    settings = Settings(MEMORY_AGENT_DB=db, MEMORY_AGENT_RESTAURANT=open_all_hours(tmp_path))
    await prepare_database(db)  # the worker's process did, when it started
    spool_a_call(spool_path(db), "left-in-the-spool")
    proc = prewarmed(settings)
    database = proc.userdata[DATABASE]
    await database.repository()  # open while the process waits for its call
    assert files_open(db) == 2  # the reader and the writer
    menus_read = load_restaurant.cache_info().misses

    first = await run_job(proc.userdata, settings)
    assert files_open(db) == 2
    second = await run_job(proc.userdata, settings)

    assert files_open(db) == 2  # nothing opened again for the second call
    assert database.opened == 1
    assert load_restaurant.cache_info().misses == menus_read  # the menu was read at prewarm, by no call
    assert rows(db, "SELECT id, ended_at IS NOT NULL FROM calls ORDER BY started_at") == [(first, 1), (second, 1)]
    # No replay on a call's path: the spool is the worker's process's to replay and drain.
    assert spool.call_ids(spool_path(db)) == {"left-in-the-spool"}
    await database.aclose()
    assert files_open(db) == 0


async def test_the_worker_migrates_before_any_call_process_is_prewarmed_and_replays_the_spool(tmp_path):
    db = tmp_path / "memory.db"
    settings = Settings(MEMORY_AGENT_DB=db, MEMORY_AGENT_HTTP_PORT=0)
    db.touch(mode=0o600)  # an empty file: every migration is still to run
    spool_a_call(spool_path(db), "left-in-the-spool")
    seen: list[int] = []

    def setup(proc: JobProcess) -> None:
        conn = sqlite3.connect(db)
        try:
            seen.append(migrate.schema_version(conn))
        finally:
            conn.close()
        proc.userdata["vad"] = None
        proc.userdata[DATABASE] = process_database(settings)

    server = Worker(settings, setup_fnc=setup, job_executor_type=JobExecutorType.THREAD, num_idle_processes=1, port=0)
    server.rtc_session(entrypoint)
    started = asyncio.Event()
    server.on("worker_started", started.set)
    running = asyncio.create_task(server.run(unregistered=True))
    async with asyncio.timeout(WAIT_S):
        await started.wait()
        assert server.repository is not None
        await server.repository.recovered()
    assert seen == [migrate.LATEST_VERSION]  # prewarmed after the migration, not before it
    assert rows(db, "SELECT id FROM calls") == [("left-in-the-spool",)]
    assert spool.call_ids(spool_path(db)) == set()
    await process_database(settings).repository()  # the prewarmed process attached to the migrated file
    await server.aclose()
    await running
    await process_database(settings).aclose()


def pg_backends(pg_url: str) -> set[int]:
    """The server's backends connected from this process, by the local ports of its sockets."""
    import psycopg

    # Open sockets only: one this process has just closed lingers in TIME_WAIT, and its backend in
    # pg_stat_activity until the server has seen it go.
    sockets = psutil.Process().net_connections(kind="tcp")
    ports = {c.laddr.port for c in sockets if c.raddr and c.status == psutil.CONN_ESTABLISHED}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        me = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        found = conn.execute(
            "SELECT pid, client_port FROM pg_stat_activity WHERE datname = current_database() AND pid <> %s", (me,)
        ).fetchall()
    return {pid for pid, port in found if port in ports}


async def test_on_postgresql_a_process_keeps_one_pool_across_its_calls(tmp_path, pg_url):
    settings = Settings(
        MEMORY_AGENT_DB=pg_url, MEMORY_AGENT_SPOOL_DIR=tmp_path, MEMORY_AGENT_RESTAURANT=open_all_hours(tmp_path)
    )
    await prepare_database(pg_url)
    spool_a_call(postgres_spool_path(pg_url, tmp_path), "left-in-the-spool")
    proc = prewarmed(settings)
    database = proc.userdata[DATABASE]
    repo = await database.repository()
    await repo.read("SELECT 1", ())  # the pool's first connection is made in the background: wait for it
    opened = pg_backends(pg_url)
    # The lookup connection and the pool's (its first, and a second if the attach's own writes overlapped).
    assert 2 <= len(opened) <= POOL_SIZE + 1

    first = await run_job(proc.userdata, settings)
    after_first = pg_backends(pg_url)
    second = await run_job(proc.userdata, settings)

    # The connections opened at prewarm served both calls: one pool for the process, grown as it needs.
    after_second = pg_backends(pg_url)
    assert opened <= after_first <= after_second
    assert len(after_second) <= POOL_SIZE + 1
    assert database.opened == 1
    import psycopg

    with psycopg.connect(pg_url) as conn:
        ended = conn.execute("SELECT id FROM calls WHERE ended_at IS NOT NULL ORDER BY started_at").fetchall()
    assert ended == [(first,), (second,)]
    assert spool.call_ids(postgres_spool_path(pg_url, tmp_path)) == {"left-in-the-spool"}
    await database.aclose()
    assert pg_backends(pg_url) == set()


async def test_the_worker_closes_the_call_of_a_call_process_killed_while_it_runs(tmp_path):
    db = tmp_path / "memory.db"
    async with open_repository(db, sweep=timedelta(seconds=0.2)) as worker:  # the worker's process
        await worker.recovered()
        kill_mid_call(db, "killed-call")  # a call's process, SIGKILLed (out of memory, say) mid-call
        # Nobody starts and the caller does not call again: the worker's sweep closes it.
        ended: list[tuple] = []
        for _ in range(1200):  # poll for the outcome, within a bound
            if ended := rows(db, "SELECT end_reason FROM calls WHERE ended_at IS NOT NULL"):
                break
            await asyncio.sleep(0.05)
    [(reason,)] = ended
    assert reason.startswith("abandoned:")


async def test_a_replay_stopped_while_it_takes_the_spools_claim_lets_the_claim_go(tmp_path):
    db = tmp_path / "memory.db"
    await prepare_database(db)
    async with open_repository(db, attach=True) as repo:  # no drainer: only this test replays
        spool_a_call(spool_path(db), "left-in-the-spool")
        # The spool's threads busy, so the claim is taken only after the replay was stopped (the drainer
        # stopped as the database closes).
        busy = threading.Event()
        blocked = [asyncio.ensure_future(spool.in_spool_thread(busy.wait)) for _ in range(2)]
        replay = asyncio.ensure_future(spool.replay(spool_path(db), repo.save_call))
        await asyncio.sleep(0)  # the replay asks for its claim
        replay.cancel()
        busy.set()
        await asyncio.gather(*blocked)
        with contextlib.suppress(asyncio.CancelledError):
            await replay
        result = await repo.replay_spool()
    assert result.written == 1
    assert rows(db, "SELECT id FROM calls") == [("left-in-the-spool",)]
