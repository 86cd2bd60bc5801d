"""Runs: lifecycle updates, exactly-once endings, filtered listing with cursors, lookups."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stepwell.store.base import Store
from stepwell.store.records import RunFilter, RunRecord


def run(run_id: str, created_at: int = 1_000, **kw: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "function_id": "shop-process",
        "function_version": 1,
        "app_id": "shop",
        "status": "Queued",
        "event_id": f"ev-{run_id}",
    }
    fields.update(kw)
    fields.setdefault("event_ids", (fields["event_id"],))
    return RunRecord(run_id=run_id, created_at=created_at, **fields)


async def insert(store: Store, *runs: RunRecord) -> None:
    await store.run(lambda tx: [tx.insert_run(r) for r in runs])


async def ids(store: Store, **flt: Any) -> list[str]:
    runs = await store.read(lambda tx: tx.list_runs(RunFilter(**flt)))
    return [r.run_id for r in runs]


async def test_a_run_reads_back_as_written(store: Store) -> None:
    child = run(
        "r1",
        event_ids=("e1", "e2"),
        event_id="e1",
        parent_run_id="p",
        parent_step_key="invoke-1",
        attempt=2,
    )
    await insert(store, child)
    assert await store.read(lambda tx: tx.get_run("r1")) == child
    assert await store.read(lambda tx: tx.get_run("nope")) is None
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its driver's error
        await insert(store, run("r1"))


async def test_mark_run_started_keeps_the_first_start_time(store: Store) -> None:
    await insert(store, run("r1"))
    await store.run(lambda tx: tx.mark_run_started("r1", 0, 2_000))
    await store.run(lambda tx: tx.mark_run_started("r1", 1, 3_000))
    got = await store.read(lambda tx: tx.get_run("r1"))
    assert got is not None
    assert (got.status, got.attempt, got.started_at) == ("Running", 1, 2_000)

    await store.run(lambda tx: tx.set_run_attempt("r1", 4))
    got = await store.read(lambda tx: tx.get_run("r1"))
    assert got is not None and got.attempt == 4


async def test_finish_run_writes_once(store: Store) -> None:
    await insert(store, run("r1"))
    first = await store.run(lambda tx: tx.finish_run("r1", "Completed", 5_000, output={"total": 3}))
    again = await store.run(
        lambda tx: tx.finish_run("r1", "Failed", 6_000, error={"name": "E", "message": "m"})
    )
    assert (first, again) == (True, False)
    got = await store.read(lambda tx: tx.get_run("r1"))
    assert got is not None
    assert (got.status, got.ended_at, got.output, got.error) == (
        "Completed",
        5_000,
        {"total": 3},
        None,
    )

    # a finished run is not restarted either
    await store.run(lambda tx: tx.mark_run_started("r1", 9, 7_000))
    got = await store.read(lambda tx: tx.get_run("r1"))
    assert got is not None and got.status == "Completed"


async def test_concurrent_endings_of_one_run_have_one_winner(store: Store) -> None:
    await insert(store, run("r1", status="Running"))
    outcomes = await asyncio.gather(
        *(
            store.run(lambda tx, n=n: tx.finish_run("r1", "Cancelled", n, cancel_reason=f"c{n}"))
            for n in range(20)
        )
    )
    assert outcomes.count(True) == 1
    got = await store.read(lambda tx: tx.get_run("r1"))
    assert got is not None and got.cancel_reason == f"c{outcomes.index(True)}"


async def test_list_runs_filters_newest_first(store: Store) -> None:
    await insert(
        store,
        run("a", 100),
        run("b", 200, function_id="shop-other"),
        run("c", 300, status="Completed"),
        run("d", 400, event_id="shared", event_ids=("shared", "x")),
        run("e", 500, event_ids=("ev-e", "shared")),
    )
    assert await ids(store) == ["e", "d", "c", "b", "a"]
    assert await ids(store, function_id="shop-other") == ["b"]
    assert await ids(store, status="Completed") == ["c"]
    assert await ids(store, since=200, until=400) == ["c", "b"]
    assert await ids(store, event_id="shared") == ["e", "d"]
    assert await ids(store, function_id="shop-process", status="Queued", limit=2) == ["e", "d"]
    assert await ids(store, function_id="nope") == []


async def test_list_runs_pages_with_a_cursor_through_equal_times(store: Store) -> None:
    await insert(store, *(run(f"r{n}", 1_000 if n % 2 else 2_000) for n in range(7)))
    seen: list[str] = []
    cursor = None
    while True:
        page = await ids(store, cursor=cursor, limit=3)
        if not page:
            break
        seen += page
        cursor = page[-1]
    assert seen == await ids(store, limit=100)
    assert sorted(seen) == [f"r{n}" for n in range(7)]
    assert await ids(store, cursor="unknown-run") == []


async def test_runs_for_event_and_counts(store: Store) -> None:
    await insert(
        store,
        run("late", 300, event_ids=("e0", "e1")),
        run("early", 100, event_id="e1", event_ids=("e1",)),
        run("other", 200, event_id="e2", event_ids=("e2",), status="Completed"),
    )
    assert [r.run_id for r in await store.read(lambda tx: tx.runs_for_event("e1"))] == [
        "early",
        "late",
    ]
    assert await store.read(lambda tx: tx.runs_for_event("none")) == []
    assert await store.read(lambda tx: tx.count_runs()) == 3
    assert await store.read(lambda tx: tx.count_runs("Completed")) == 1
    assert await store.read(lambda tx: tx.count_runs("Failed")) == 0


async def test_find_child_runs_by_parent_step(store: Store) -> None:
    await insert(
        store,
        run("c1", 100, parent_run_id="p", parent_step_key="s1"),
        run("c2", 200, parent_run_id="p", parent_step_key="s2"),
        run("c3", 50, parent_run_id="p", parent_step_key="s1"),
        run("orphan", 10),
    )
    children = await store.read(lambda tx: tx.find_child_runs("p", "s1"))
    assert [r.run_id for r in children] == ["c3", "c1"]
    assert await store.read(lambda tx: tx.find_child_runs("p", "s9")) == []


async def test_get_runs_returns_those_that_exist_once_each(store: Store) -> None:
    await insert(store, *(run(f"g{n:03}") for n in range(300)))
    wanted = [f"g{n:03}" for n in range(0, 300, 2)] + ["g004", "missing"]
    found = await store.read(lambda tx: tx.get_runs(wanted))
    assert sorted(r.run_id for r in found) == sorted(set(wanted) - {"missing"})
    assert await store.read(lambda tx: tx.get_runs([])) == []
