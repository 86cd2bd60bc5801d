"""Queue items: idempotent enqueue, leases, claim order, generations and acks."""

from __future__ import annotations

from typing import Any

from stepwell.store.base import Store
from stepwell.store.records import QueueItem

LEASE = 30_000


def item(item_id: str, available_at: int = 0, priority: int = 0, **kw: Any) -> QueueItem:
    kw.setdefault("run_id", f"run-{item_id}")
    return QueueItem(
        item_id=item_id,
        kind="continue",
        function_id="app-fn",
        available_at=available_at,
        priority=priority,
        **kw,
    )


async def enqueue(store: Store, *items: QueueItem) -> list[bool]:
    return await store.run(lambda tx: [tx.enqueue(i) for i in items])


async def claim(store: Store, now: int, owner: str = "a", limit: int = 10) -> list[QueueItem]:
    return await store.run(lambda tx: tx.claim(now, owner, LEASE, limit))


async def test_enqueue_is_idempotent_by_item_id(store: Store) -> None:
    assert await enqueue(store, item("x", 500, payload={"n": 1})) == [True]
    assert await enqueue(store, item("x", 900)) == [False]
    assert await store.read(lambda tx: tx.queue_depth()) == 1

    [got] = await claim(store, now=1_000)
    assert got.available_at == 500  # the earlier of the two
    assert got.generation == 1
    assert got.payload == {"n": 1}


async def test_reenqueue_moves_available_at_earlier_only(store: Store) -> None:
    await enqueue(store, item("x", 500))
    await enqueue(store, item("x", 200))
    assert await store.read(lambda tx: tx.next_available_at()) == 200


async def test_claim_takes_due_items_by_priority_then_available_at(store: Store) -> None:
    await enqueue(
        store,
        item("late", 300),
        item("early", 100),
        item("urgent", 250, priority=-1),
        item("lazy", 50, priority=5),
        item("future", 10_000, priority=-9),
    )
    got = await claim(store, now=1_000)
    assert [i.item_id for i in got] == ["urgent", "early", "late", "lazy"]
    assert all(i.lease_owner == "a" and i.lease_expires_at == 1_000 + LEASE for i in got)


async def test_claim_respects_limit_and_skips_leased_items(store: Store) -> None:
    await enqueue(store, *(item(f"i{n}", n) for n in range(5)))
    first = await claim(store, now=100, limit=2)
    second = await claim(store, now=100, owner="b", limit=10)
    assert [i.item_id for i in first] == ["i0", "i1"]
    assert [i.item_id for i in second] == ["i2", "i3", "i4"]
    assert await claim(store, now=100, owner="c") == []
    assert await claim(store, now=100, limit=0) == []


async def test_expired_lease_is_taken_over_by_another_owner(store: Store) -> None:
    await enqueue(store, item("x", 0))
    [mine] = await claim(store, now=0, owner="dead-node")
    assert await claim(store, now=LEASE - 1, owner="b") == []

    [theirs] = await claim(store, now=LEASE, owner="b")
    assert theirs.lease_owner == "b"
    # the old owner no longer holds it: its ack and release change nothing
    assert await store.run(lambda tx: tx.ack("x", "dead-node", mine.generation)) is False
    assert await store.run(lambda tx: tx.release("x", "dead-node", 0)) is False
    assert await store.run(lambda tx: tx.ack("x", "b", theirs.generation)) is True
    assert await store.read(lambda tx: tx.queue_depth()) == 0


async def test_renew_leases_extends_only_the_owners_leases(store: Store) -> None:
    await enqueue(store, item("x"), item("y"))
    await claim(store, now=0, owner="a", limit=1)
    await claim(store, now=0, owner="b", limit=1)
    renewed = await store.run(lambda tx: tx.renew_leases("a", ["x", "y", "missing"], LEASE * 3))
    assert renewed == 1
    assert await store.run(lambda tx: tx.renew_leases("a", [], LEASE * 3)) == 0
    # y's lease (b's) expired at LEASE; x's (a's, renewed) has not
    assert [i.item_id for i in await claim(store, now=LEASE * 2, owner="c")] == ["y"]


async def test_ack_deletes_an_item_held_at_its_generation(store: Store) -> None:
    await enqueue(store, item("x"))
    [got] = await claim(store, now=0)
    assert await store.run(lambda tx: tx.ack("x", "a", got.generation)) is True
    assert await store.read(lambda tx: tx.queue_depth()) == 0
    assert await store.run(lambda tx: tx.ack("x", "a", got.generation)) is False


async def test_item_reenqueued_while_leased_survives_the_ack(store: Store) -> None:
    await enqueue(store, item("x", 100))
    [got] = await claim(store, now=100)
    await enqueue(store, item("x", 5_000))  # e.g. an event arrived for the run meanwhile

    assert await claim(store, now=200, owner="b") == []  # still leased: no double execution
    assert await store.run(lambda tx: tx.ack("x", "a", got.generation)) is False
    [again] = await claim(store, now=200, owner="b")
    assert again.item_id == "x"
    assert again.generation == got.generation + 1
    assert await store.run(lambda tx: tx.ack("x", "b", again.generation)) is True


async def test_release_gives_an_item_back_at_a_new_time(store: Store) -> None:
    await enqueue(store, item("x", 0))
    await claim(store, now=0)
    assert await store.run(lambda tx: tx.release("x", "b", 10)) is False  # not b's
    assert await store.run(lambda tx: tx.release("x", "a", 700)) is True
    assert await store.read(lambda tx: tx.next_available_at()) == 700
    assert await claim(store, now=699, owner="b") == []
    assert [i.lease_owner for i in await claim(store, now=700, owner="b")] == ["b"]


async def test_release_all_drops_leases_of_one_owner_or_everyone(store: Store) -> None:
    await enqueue(store, item("x"), item("y"), item("z"))
    await claim(store, now=0, owner="a", limit=2)
    await claim(store, now=0, owner="b", limit=1)
    assert await store.run(lambda tx: tx.release_all("a")) == 2
    assert len(await claim(store, now=0, owner="c")) == 2
    assert await store.run(lambda tx: tx.release_all(None)) == 3
    assert await store.run(lambda tx: tx.release_all(None)) == 0


async def test_next_available_at_ignores_leased_items(store: Store) -> None:
    assert await store.read(lambda tx: tx.next_available_at()) is None
    await enqueue(store, item("x", 10), item("y", 20))
    await claim(store, now=10, limit=1)
    assert await store.read(lambda tx: tx.next_available_at()) == 20
    assert await store.read(lambda tx: tx.queue_depth()) == 2


async def test_delete_queue_items_of_a_run_and_one_item(store: Store) -> None:
    await enqueue(store, item("a1", run_id="r1"), item("a2", run_id="r1"), item("b1", run_id="r2"))
    await claim(store, now=0, limit=1)  # leased or not, they go
    assert await store.run(lambda tx: tx.delete_queue_items("r1")) == 2
    assert await store.run(lambda tx: tx.delete_queue_items("r1")) == 0
    assert await store.run(lambda tx: tx.delete_queue_item("b1")) is True
    assert await store.run(lambda tx: tx.delete_queue_item("b1")) is False
    assert await store.read(lambda tx: tx.queue_depth()) == 0
