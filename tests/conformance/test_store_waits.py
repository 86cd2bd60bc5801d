"""Waits: keyed lookups by one probe, unkeyed per event name, resumed exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

from stepwell.store.base import Store
from stepwell.store.records import WaitRecord


def wait(wait_id: str, run_id: str = "run-1", **kw: Any) -> WaitRecord:
    fields: dict[str, Any] = {
        "kind": "step",
        "function_id": "shop-fn",
        "event_name": "shipping/label-created",
        "expires_at": 10_000,
        "step_key": f"step-{wait_id}",
    }
    fields.update(kw)
    return WaitRecord(wait_id=wait_id, run_id=run_id, **fields)


async def test_keyed_waits_are_found_by_path_and_value(store: Store) -> None:
    w1 = wait("w1", match_path="data.order_id", match_value='"o-1"', trigger_event_id="e1")
    w2 = wait("w2", run_id="run-2", match_path="data.order_id", match_value='"o-2"')
    w3 = wait("w3", run_id="run-3", match_path="data.user.id", match_value="7", step_id="s")
    free = wait("w4", run_id="run-4", expression="event.data.total > 10")
    other = wait("w5", run_id="run-5", event_name="other/event", match_path="data.x")
    await store.run(lambda tx: [tx.insert_wait(w) for w in (w1, w2, w3, free, other)])

    paths = await store.read(lambda tx: tx.keyed_wait_paths("shipping/label-created"))
    assert paths == ["data.order_id", "data.user.id"]
    found = await store.read(
        lambda tx: tx.find_keyed_waits("shipping/label-created", "data.order_id", '"o-1"')
    )
    assert found == [w1]
    none = await store.read(
        lambda tx: tx.find_keyed_waits("shipping/label-created", "data.order_id", '"o-3"')
    )
    assert none == []
    assert await store.read(lambda tx: tx.find_unkeyed_waits("shipping/label-created")) == [free]


async def test_unkeyed_waits_come_oldest_first(store: Store) -> None:
    # wait ids are ULIDs: ordered by id is ordered by creation
    waits = [wait(f"01W{n}", run_id=f"run-{n}") for n in range(3)]
    await store.run(lambda tx: [tx.insert_wait(w) for w in reversed(waits)])
    assert await store.read(lambda tx: tx.find_unkeyed_waits("shipping/label-created")) == waits


async def test_one_wait_per_run_step_but_many_cancel_waits(store: Store) -> None:
    assert await store.run(lambda tx: tx.insert_wait(wait("w1", step_key="s"))) is True
    assert await store.run(lambda tx: tx.insert_wait(wait("w2", step_key="s"))) is False
    cancels = [wait(f"c{n}", kind="cancel", step_key=None, event_name="x") for n in range(2)]
    assert await store.run(lambda tx: [tx.insert_wait(c) for c in cancels]) == [True, True]

    got = await store.read(lambda tx: tx.get_wait("run-1", "s"))
    assert got is not None and got.wait_id == "w1"
    assert await store.read(lambda tx: tx.get_wait("run-1", "other")) is None


async def test_delete_wait_is_true_for_one_caller_only(store: Store) -> None:
    await store.run(lambda tx: tx.insert_wait(wait("w1")))
    results = await asyncio.gather(*(store.run(lambda tx: tx.delete_wait("w1")) for _ in range(8)))
    assert results.count(True) == 1
    assert await store.run(lambda tx: tx.delete_wait("w1")) is False


async def test_delete_run_waits_removes_only_that_runs_waits(store: Store) -> None:
    w = [wait("w1"), wait("w2"), wait("c1", kind="cancel", step_key=None), wait("w3", "run-2")]
    await store.run(lambda tx: [tx.insert_wait(x) for x in w])
    assert await store.run(lambda tx: tx.delete_run_waits("run-1")) == 3
    assert await store.run(lambda tx: tx.delete_run_waits("run-1")) == 0
    assert await store.read(lambda tx: tx.get_wait("run-2", "step-w3")) == w[3]
