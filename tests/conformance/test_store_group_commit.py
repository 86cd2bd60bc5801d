"""Units of work: atomic one by one, isolated from the units they share a commit with."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest

from stepwell.store.base import Store, Tx
from stepwell.store.records import EventRecord


class Boom(Exception):
    pass


def event(n: int) -> EventRecord:
    return EventRecord(event_id=f"01E{n:04}", name="test/unit", data={"n": n}, ts=n, received_at=n)


def write(n: int, fail: bool) -> Callable[[Tx], int]:
    def work(tx: Tx) -> int:
        tx.insert_event(event(n))
        tx.put_memo(f"run-{n}", "step", "step", "run", {"data": n}, n)
        if fail:
            raise Boom(n)
        return n

    return work


async def test_failing_units_do_not_break_the_units_committed_with_them(store: Store) -> None:
    failing = {3, 17, 18, 41}
    results = await asyncio.gather(
        *(store.run(write(n, n in failing)) for n in range(50)),
        return_exceptions=True,
    )
    for n, result in enumerate(results):
        if n in failing:
            assert isinstance(result, Boom) and result.args == (n,)
        else:
            assert result == n

    stored = await store.read(lambda tx: tx.get_events([event(n).event_id for n in range(50)]))
    assert [e.data["n"] for e in stored] == [n for n in range(50) if n not in failing]
    for n in failing:  # nothing of a failed unit is left, not even its first write
        assert await store.read(lambda tx, n=n: tx.get_memo(f"run-{n}")) == []


async def test_a_unit_committed_alone_that_fails_leaves_nothing(store: Store) -> None:
    # One unit at a time: each is a batch of its own (on SQLite, without a savepoint).
    with pytest.raises(Boom):
        await store.run(write(1, True))
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):  # the event id is taken
        await store.run(lambda tx: (tx.insert_event(event(2)), tx.insert_event(event(2))))
    assert await store.run(write(3, False)) == 3
    stored = await store.read(lambda tx: tx.list_events(limit=10))
    assert [e.data["n"] for e in stored] == [3]
    assert await store.read(lambda tx: tx.get_memo("run-1")) == []


async def test_a_database_error_fails_only_its_unit(store: Store) -> None:
    await store.run(lambda tx: tx.insert_event(event(0)))
    duplicate = store.run(lambda tx: (tx.insert_event(event(1)), tx.insert_event(event(0))))
    others = [store.run(lambda tx, n=n: tx.insert_event(event(n))) for n in range(2, 12)]
    results = await asyncio.gather(duplicate, *others, return_exceptions=True)
    assert isinstance(results[0], Exception)
    assert results[1:] == [None] * 10
    assert await store.read(lambda tx: tx.get_event(event(1).event_id)) is None
    assert len(await store.read(lambda tx: tx.list_events(limit=100))) == 11


async def test_a_unit_is_atomic_and_returns_its_value(store: Store) -> None:
    def transfer(tx: Tx) -> tuple[bool, bool]:
        return tx.claim_cron_tick("f", 1), tx.claim_cron_tick("f", 2)

    assert await store.run(transfer) == (True, True)
    assert await store.read(lambda tx: tx.last_cron_tick("f")) == 2


async def test_a_coroutine_is_not_a_unit_of_work(store: Store) -> None:
    async def not_a_unit(tx: Tx) -> None:
        tx.insert_event(event(1))

    with pytest.raises(TypeError, match="plain function"):
        await store.run(not_a_unit)
    assert await store.read(lambda tx: tx.get_event(event(1).event_id)) is None


async def test_read_sees_every_commit_that_returned(store: Store) -> None:
    for n in range(20):
        await store.run(lambda tx, n=n: tx.insert_event(event(n)))
        assert await store.read(lambda tx, n=n: tx.get_event(event(n).event_id)) == event(n)


async def test_concurrent_reads_and_writes(store: Store) -> None:
    async def writer(n: int) -> None:
        await store.run(lambda tx: tx.insert_event(event(n)))
        assert await store.read(lambda tx: tx.get_event(event(n).event_id)) is not None

    await asyncio.gather(*(writer(n) for n in range(100)))
    assert len(await store.read(lambda tx: tx.list_events(limit=1000))) == 100


async def test_writes_attempted_in_a_read_do_not_persist(store: Store) -> None:
    with contextlib.suppress(Exception):
        await store.read(lambda tx: tx.insert_event(event(1)))
    assert await store.read(lambda tx: tx.get_event(event(1).event_id)) is None


async def test_a_cancelled_caller_leaves_the_store_usable(store: Store) -> None:
    calls = [
        asyncio.ensure_future(store.run(lambda tx, n=n: tx.insert_event(event(n))))
        for n in range(10)
    ]
    calls[4].cancel()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[4], asyncio.CancelledError)
    # the cancelled unit may or may not have committed; every other one did
    stored = await store.read(lambda tx: tx.list_events(limit=100))
    assert {e.data["n"] for e in stored} >= set(range(10)) - {4}
    assert await store.run(lambda tx: tx.claim_cron_tick("f", 1)) is True
