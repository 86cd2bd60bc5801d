"""Durability: what a store acknowledged is there after a restart, or after SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable

import pytest

from stepwell.errors import StoreError
from stepwell.store.base import Store
from stepwell.store.records import EventRecord, QueueItem, RunRecord

WRITER = """
import asyncio, sys
from stepwell.store import open_store
from stepwell.store.records import EventRecord

async def main() -> None:
    store = open_store(sys.argv[1])
    await store.open()
    async def one(n: int) -> None:
        event = EventRecord(f"01E{n:04}", "test/kill", {"n": n}, n, n)
        await store.run(lambda tx: tx.insert_event(event))
    await asyncio.gather(*(one(n) for n in range(100)))
    print("ok", flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


async def test_data_survives_close_and_reopen(make_store: Callable[[], Store]) -> None:
    first = make_store()
    await first.open()
    event = EventRecord("01E", "order/placed", {"id": 1}, 1, 1)
    run = RunRecord("r1", "shop-fn", 1, "shop", "Queued", "01E", ("01E",), 1)
    await first.run(lambda tx: tx.insert_event(event))
    await first.run(lambda tx: tx.insert_run(run))
    await first.run(lambda tx: tx.put_memo("r1", "k", "k", "run", {"data": 1}, 2))
    await first.run(lambda tx: tx.enqueue(QueueItem("continue:r1", "continue", "r1", "shop-fn", 3)))
    await first.close()

    second = make_store()
    await second.open()  # migrations already applied: a no-op
    try:
        assert await second.read(lambda tx: tx.get_event("01E")) == event
        assert await second.read(lambda tx: tx.get_run("r1")) == run
        assert [m.value for m in await second.read(lambda tx: tx.get_memo("r1"))] == [{"data": 1}]
        assert await second.read(lambda tx: tx.next_available_at()) == 3
    finally:
        await second.close()


async def test_open_and_close_are_idempotent(make_store: Callable[[], Store]) -> None:
    store = make_store()
    await store.open()
    await store.open()
    await store.run(lambda tx: tx.claim_cron_tick("f", 1))
    await store.close()
    await store.close()
    with pytest.raises(StoreError):
        await store.run(lambda tx: tx.claim_cron_tick("f", 2))
    with pytest.raises(StoreError):
        await store.read(lambda tx: tx.last_cron_tick("f"))


async def test_unopened_store_refuses_work(make_store: Callable[[], Store]) -> None:
    with pytest.raises(StoreError, match="open"):
        await make_store().run(lambda tx: tx.queue_depth())


async def test_two_stores_share_one_database(make_store: Callable[[], Store]) -> None:
    a, b = make_store(), make_store()
    await a.open()
    await b.open()
    try:
        claims = await asyncio.gather(
            *(s.run(lambda tx: tx.claim_cron_tick("f", 60_000)) for s in (a, b) for _ in range(5))
        )
        assert claims.count(True) == 1
        await a.run(lambda tx: tx.enqueue(QueueItem("x", "start", "r", "f", 0)))
        assert await b.read(lambda tx: tx.queue_depth()) == 1
    finally:
        await a.close()
        await b.close()


@pytest.mark.slow
async def test_acknowledged_writes_survive_sigkill(
    store_url: str, make_store: Callable[[], Store]
) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, store_url, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), timeout=60)
        assert line.strip() == b"ok"
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL

    store = make_store()
    await store.open()
    try:
        events = await store.read(lambda tx: tx.list_events("test/kill", limit=1000))
        assert sorted(e.data["n"] for e in events) == list(range(100))
    finally:
        await store.close()
