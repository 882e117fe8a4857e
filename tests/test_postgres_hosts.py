"""Several hosts on one PostgreSQL server: worker processes of two hosts lose nothing, and the calls of a
host that dies are closed as abandoned by another once its heartbeat's lease runs out (and not before).

What is asserted holds on a machine of any speed: outcomes, never timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from datetime import timedelta

from pg_workers import finish_calls_as_host, take_an_order_then_hang

from db import open_repository

SPAWN = multiprocessing.get_context("spawn")
HOSTS = ["host-a", "host-a", "host-b", "host-b"]
CALLS_EACH = 4
CALLERS = ["+15550000001", "+15550000002", "+15550000003"]


async def test_four_workers_of_two_hosts_finishing_calls_at_once_lose_nothing(pg_url, tmp_path):
    async with open_repository(pg_url, spool_dir=tmp_path):
        pass  # migrated once, before the workers start
    start = SPAWN.Barrier(len(HOSTS))
    results = SPAWN.Queue()
    workers = [
        SPAWN.Process(
            target=finish_calls_as_host,
            args=(pg_url, host, n, CALLS_EACH, CALLERS, str(tmp_path / host), start, results),
        )
        for n, host in enumerate(HOSTS)
    ]
    for host in set(HOSTS):
        (tmp_path / host).mkdir()
    for worker in workers:
        worker.start()
    reports = [await asyncio.to_thread(results.get, timeout=300) for _ in workers]
    for worker in workers:
        worker.join()

    assert [problem for _, _, problems in reports for problem in problems] == []
    assert sum(done for _, done, _ in reports) == len(HOSTS) * CALLS_EACH
    total = len(HOSTS) * CALLS_EACH
    for host in set(HOSTS):  # whatever a loaded machine spooled is written when the host starts again
        async with open_repository(pg_url, spool_dir=tmp_path / host, host_id=host) as repo:
            await repo.recovered()
    async with open_repository(pg_url, spool_dir=tmp_path) as repo:
        await repo.recovered()

        async def found(query: str) -> list[tuple[object, ...]]:
            return [tuple(row) for row in await repo.read(query, ())]

        assert await found("SELECT count(*), count(ended_at) FROM calls") == [(total, total)]
        assert await found("SELECT count(*) FROM calls WHERE end_reason LIKE 'abandoned%'") == [(0,)]
        assert await found(
            "SELECT count(*), count(*) FILTER (WHERE status = 'placed'), sum(total_cents) FROM orders"
        ) == [(total, total, total * 3650)]
        assert await found("SELECT count(*) FROM order_items") == [(total * 2,)]
        customers = await found("SELECT participant_identity, call_count, order_count FROM customers ORDER BY 1")
        assert [c[0] for c in customers] == CALLERS
        assert sum(int(c[1]) for c in customers) == total and sum(int(c[2]) for c in customers) == total
        assert await found("SELECT DISTINCT owner_host FROM calls ORDER BY 1") == [("host-a",), ("host-b",)]


async def test_a_killed_hosts_open_call_is_closed_by_another_host_once_its_lease_runs_out(pg_url, tmp_path):
    lease = timedelta(seconds=3)
    ready = SPAWN.Event()
    victim = SPAWN.Process(
        target=take_an_order_then_hang,
        args=(pg_url, "host-k", "killed-call", str(tmp_path), lease.total_seconds(), ready),
    )
    victim.start()
    try:
        assert await asyncio.to_thread(ready.wait, 120), "the victim's call never got its items"
        # While the host lives, its heartbeat keeps its call open for any other host.
        async with open_repository(pg_url, spool_dir=tmp_path, host_id="host-x", lease=timedelta(minutes=5)) as other:
            await other.recovered()
            assert await other.close_stale_calls() == []
    finally:
        victim.kill()  # SIGKILL: nothing in the victim runs after this
        victim.join()
    assert victim.exitcode == -9

    async with open_repository(pg_url, spool_dir=tmp_path, host_id="host-y", lease=lease) as other:
        await other.recovered()
        closed: list[str] = []
        for _ in range(600):  # the lease runs out by the server's clock: poll for the outcome, within a bound
            closed += await other.close_stale_calls()
            if closed:
                break
            await asyncio.sleep(0.1)
        assert closed == ["killed-call"]
        [(reason, status, items)] = [
            tuple(r)
            for r in await other.read(
                "SELECT c.end_reason, o.status, (SELECT count(*) FROM order_items WHERE order_id = o.id)"
                " FROM calls AS c JOIN orders AS o ON o.call_id = c.id WHERE c.id = ?",
                ("killed-call",),
            )
        ]
        assert reason.startswith("abandoned:") and "on host-k" in reason
        assert (status, items) == ("abandoned", 2)


async def test_a_killed_hosts_open_call_is_closed_by_the_hosts_still_running(pg_url, tmp_path):
    lease, sweep = timedelta(seconds=3), timedelta(seconds=0.5)
    ready = SPAWN.Event()
    victim = SPAWN.Process(
        target=take_an_order_then_hang,
        args=(pg_url, "host-k", "killed-call", str(tmp_path), lease.total_seconds(), ready),
    )
    victim.start()
    async with contextlib.AsyncExitStack() as hosts:
        running = [
            await hosts.enter_async_context(
                open_repository(pg_url, spool_dir=tmp_path, host_id=host, lease=lease, sweep=sweep)
            )
            for host in ("host-a", "host-b")
        ]
        try:
            assert await asyncio.to_thread(ready.wait, 120), "the victim's call never got its items"
        finally:
            victim.kill()  # SIGKILL: nothing in the victim runs after this
            victim.join()
        assert victim.exitcode == -9

        # Nobody starts and the caller does not call again: the running hosts' sweep closes it.
        ended: list[tuple[object, ...]] = []
        for _ in range(600):  # the lease runs out by the server's clock: poll for the outcome, within a bound
            ended = [
                tuple(r) for r in await running[0].read("SELECT end_reason FROM calls WHERE ended_at IS NOT NULL", ())
            ]
            if ended:
                break
            await asyncio.sleep(0.1)
        [(reason,)] = ended
        assert str(reason).startswith("abandoned:") and "on host-k" in str(reason)
