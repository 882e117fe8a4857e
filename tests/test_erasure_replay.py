"""An erased caller stays erased: a snapshot of theirs that another process spooled before the
erasure (where the erasure could not reach it) is dropped at replay, on either backend, while the
rest of the household keeps theirs; and an erasure spooled when the database refused it is carried out in
its place in the spool."""

from __future__ import annotations

from db import CallSnapshot, ErasureRequest, Order, OrderLine

NUMBER = "+15550002000"
BEFORE = "2026-11-01T18:00:00.000000+00:00"
LINE = OrderLine(menu_item="tiramisu", name="Tiramisu", quantity=1, unit_price_cents=750)


def spooled(call_id: str, identity: str, name: str) -> CallSnapshot:
    return CallSnapshot(
        call_id=call_id,
        identity=identity,
        household=NUMBER,
        caller_name=name,
        started_at=BEFORE,
        ended_at="2026-11-01T18:05:00.000000+00:00",
        end_reason="participant_disconnected",
        order=Order(status="placed", items=[LINE]),
    )


async def names(repo) -> list[str]:
    return [row[0] for row in await repo.read("SELECT name FROM customers ORDER BY id", ())]


async def test_a_spooled_call_of_a_caller_erased_since_is_dropped_not_replayed(any_repo):
    await any_repo.save_call(spooled("first", NUMBER, "Maria"))
    await any_repo.forget(NUMBER)
    # Another host had spooled her next call before the erasure: its line reaches the spool now.
    await any_repo.spool(spooled("second", NUMBER, "Maria"))

    result = await any_repo.replay_spool()  # (or the drainer, woken by the spooling, before it)

    assert result.kept == 0
    assert await names(any_repo) == []
    assert [tuple(row) for row in await any_repo.read("SELECT count(*) FROM calls", ())] == [(0,)]
    assert not any_repo.spool_file.exists() or any_repo.spool_file.read_text() == ""


async def test_the_rest_of_the_household_keeps_their_spooled_calls(any_repo):
    await any_repo.save_call(spooled("maria-1", NUMBER, "Maria"))
    await any_repo.save_call(spooled("tom-1", NUMBER + "#2", "Tom"))
    await any_repo.forget(NUMBER, name="Tom")
    await any_repo.spool(spooled("maria-2", NUMBER, "Maria"))
    await any_repo.spool(spooled("tom-2", NUMBER + "#2", "Tom"))

    result = await any_repo.replay_spool()  # (or the drainer, woken by the spooling, before it)

    assert result.kept == 0
    assert await names(any_repo) == ["Maria"]
    orders = await any_repo.read("SELECT call_id FROM orders ORDER BY call_id", ())
    assert [row[0] for row in orders] == ["maria-1", "maria-2"]


async def test_a_call_that_began_after_the_erasure_is_written(any_repo):
    await any_repo.save_call(spooled("first", NUMBER, "Maria"))
    await any_repo.forget(NUMBER)
    later = spooled("after", NUMBER, "Maria").model_copy(
        update={"started_at": "2999-01-01T00:00:00.000000+00:00", "ended_at": "2999-01-01T00:05:00.000000+00:00"}
    )
    await any_repo.spool(later)

    result = await any_repo.replay_spool()  # (or the drainer, woken by the spooling, before it)

    assert result.kept == 0
    assert await names(any_repo) == ["Maria"]


async def test_a_spooled_erasure_is_carried_out_in_its_place_in_the_spool(any_repo):
    # forget_me was asked while the database refused it: the call before it and the erasure are spooled
    await any_repo.spool(spooled("first", NUMBER, "Maria"))
    await any_repo.spool_erasure(ErasureRequest(erase=NUMBER, requested_at=BEFORE))
    await any_repo.spool(spooled("second", NUMBER, "Maria"))  # another call of hers, begun before it was carried out

    await any_repo.replay_spool()  # the spool's drainer may have carried part of it out already

    assert await names(any_repo) == []
    assert [tuple(row) for row in await any_repo.read("SELECT count(*) FROM calls", ())] == [(0,)]
    assert [tuple(row) for row in await any_repo.read("SELECT scope FROM erasures", ())] == [("profile",)]
    assert not any_repo.spool_file.exists()
