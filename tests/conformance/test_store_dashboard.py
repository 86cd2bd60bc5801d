"""The verbs the dashboard reads with: runs by trigger event name, a run's pending work, charts."""

from __future__ import annotations

from typing import Any

import pytest

from stepwell.store import sql
from stepwell.store.base import Store
from stepwell.store.records import EventRecord, QueueItem, RunFilter, RunRecord, WaitRecord


def _run(run_id: str, event_id: str, created_at: int, **kw: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "function_id": "shop-process",
        "function_version": 1,
        "app_id": "shop",
        "status": "Queued",
    }
    fields.update(kw)
    return RunRecord(
        run_id=run_id, event_id=event_id, event_ids=(event_id,), created_at=created_at, **fields
    )


def _event(event_id: str, name: str) -> EventRecord:
    return EventRecord(event_id=event_id, name=name, data={}, ts=1, received_at=1)


@pytest.mark.parametrize("few_events", [1000, 1], ids=["from-events", "walking-runs"])
async def test_runs_are_listed_by_the_name_of_their_trigger_event(
    store: Store, few_events: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # both plans (few events of a name, or many) select the same runs in the same order
    monkeypatch.setattr(sql, "FEW_EVENTS", few_events)

    def seed(tx: Any) -> None:
        tx.insert_event(_event("e1", "order/placed"))
        tx.insert_event(_event("e2", "order/shipped"))
        tx.insert_event(_event("e3", "order/placed"))
        tx.insert_run(_run("r1", "e1", 1_000))
        tx.insert_run(_run("r2", "e2", 2_000))
        tx.insert_run(_run("r3", "e3", 3_000, function_id="shop-other"))
        tx.insert_run(_run("r4", "e3", 4_000, status="Completed"))

    await store.run(seed)

    async def names(name: str, **flt: Any) -> list[str]:
        runs = await store.read(lambda tx: tx.list_runs_for_event_name(name, RunFilter(**flt)))
        return [r.run_id for r in runs]

    assert await names("order/placed") == ["r4", "r3", "r1"]
    assert await names("order/placed", status="Queued") == ["r3", "r1"]
    assert await names("order/placed", function_id="shop-process") == ["r4", "r1"]
    assert await names("order/placed", limit=2) == ["r4", "r3"]
    assert await names("order/placed", cursor="r3") == ["r1"]
    assert await names("order/placed", since=2_000, until=4_000) == ["r3"]
    assert await names("order/shipped") == ["r2"]
    assert await names("nothing/here") == []


async def test_a_runs_queue_items_and_waits_are_listed(store: Store) -> None:
    def seed(tx: Any) -> None:
        for item_id, at, run_id in [("sleep:r1:a", 9_000, "r1"), ("run:r1", 5_000, "r1")]:
            tx.enqueue(QueueItem(item_id, "sleep", run_id, "shop-process", at))
        tx.enqueue(QueueItem("run:r2", "start", "r2", "shop-process", 1))
        tx.insert_wait(WaitRecord("w2", "step", "r1", "shop-process", "x/y", 99, step_key="k"))
        tx.insert_wait(WaitRecord("w1", "cancel", "r1", "shop-process", "x/z", 99))
        tx.insert_wait(WaitRecord("w3", "cancel", "r2", "shop-process", "x/z", 99))

    await store.run(seed)
    items = await store.read(lambda tx: tx.list_run_queue_items("r1"))
    assert [(i.item_id, i.available_at) for i in items] == [
        ("run:r1", 5_000),
        ("sleep:r1:a", 9_000),
    ]
    waits = await store.read(lambda tx: tx.list_run_waits("r1"))
    assert [w.wait_id for w in waits] == ["w1", "w2"]
    assert await store.read(lambda tx: tx.list_run_queue_items("none")) == []


async def test_runs_are_counted_per_function_minute_and_outcome(store: Store) -> None:
    minute = 60_000

    def seed(tx: Any) -> None:
        tx.insert_run(_run("old", "e", 0))
        tx.insert_run(_run("a", "e", 10 * minute + 5))
        tx.insert_run(_run("b", "e", 10 * minute + 59_000))
        tx.insert_run(_run("c", "e", 11 * minute, function_id="shop-other"))
        tx.finish_run("a", "Completed", 11 * minute + 1)
        tx.finish_run("b", "Failed", 12 * minute)

    await store.run(seed)
    rows = await store.read(lambda tx: tx.count_runs_per_minute(10 * minute, 13 * minute))
    assert rows == [
        ("shop-other", 11 * minute, "started", 1),
        ("shop-process", 10 * minute, "started", 2),
        ("shop-process", 11 * minute, "Completed", 1),
        ("shop-process", 12 * minute, "Failed", 1),
    ]
    first_minute = await store.read(lambda tx: tx.count_runs_per_minute(10 * minute, 11 * minute))
    assert [r for r in first_minute if r[2] == "started"] == [
        ("shop-process", 10 * minute, "started", 2)
    ]


async def test_runs_are_counted_by_status_in_one_pass(store: Store) -> None:
    assert await store.read(lambda tx: tx.count_runs_by_status()) == {}

    def seed(tx: Any) -> None:
        for i, status in enumerate(["Queued", "Running", "Running", "Completed"]):
            tx.insert_run(_run(f"r{i}", "e", i, status=status))

    await store.run(seed)
    counts = await store.read(lambda tx: tx.count_runs_by_status())
    assert counts == {"Queued": 1, "Running": 2, "Completed": 1}
