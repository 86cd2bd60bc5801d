"""New runs and their start items are written as multi-row inserts: a unit still reads them
back at once, a failed unit leaves none of them (nor passes them to the unit after it), and an
id used twice is refused as before."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from stepwell.store.base import Store, Tx
from stepwell.store.records import QueueItem, RunFilter, RunRecord


class Boom(Exception):
    pass


def new_run(run_id: str, *events: str) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        function_id="shop-process",
        function_version=1,
        app_id="shop",
        status="Queued",
        event_id=events[0] if events else f"ev-{run_id}",
        event_ids=events or (f"ev-{run_id}",),
        created_at=1_000,
    )


def start_item(run_id: str, at: int = 0) -> QueueItem:
    return QueueItem(
        item_id=f"run:{run_id}",
        kind="start",
        run_id=run_id,
        function_id="shop-process",
        available_at=at,
    )


def create(prefix: str, count: int, fail: bool = False) -> Callable[[Tx], list[bool]]:
    def work(tx: Tx) -> list[bool]:
        added = []
        for n in range(count):
            tx.insert_run(new_run(f"{prefix}{n:04}"))
            added.append(tx.enqueue(start_item(f"{prefix}{n:04}")))
        if fail:
            raise Boom(prefix)
        return added

    return work


async def _run_ids(store: Store) -> list[str]:
    runs = await store.read(lambda tx: tx.list_runs(RunFilter(limit=1000)))
    return sorted(r.run_id for r in runs)


async def test_a_unit_reads_the_runs_it_just_created(store: Store) -> None:
    def work(tx: Tx) -> tuple[object, ...]:
        for n in range(300):  # more than one multi-row chunk
            tx.insert_run(new_run(f"r{n:04}", f"a{n}", f"b{n}"))
            assert tx.enqueue(start_item(f"r{n:04}"))
        run = tx.get_run("r0299")
        linked = [r.run_id for r in tx.runs_for_event("b7")]
        claimed = tx.claim(10, "node", 1_000, 500)
        return run, linked, len(claimed)

    run, linked, claimed = await store.run(work)
    assert run == new_run("r0299", "a299", "b299")
    assert linked == ["r0007"]
    assert claimed == 300


async def test_runs_created_after_a_read_are_written_at_the_units_end(store: Store) -> None:
    assert await store.run(create("t", 70)) == [True] * 70
    assert await _run_ids(store) == [f"t{n:04}" for n in range(70)]
    items = await store.run(lambda tx: tx.claim(10, "node", 1_000, 500))
    assert sorted(i.run_id for i in items) == [f"t{n:04}" for n in range(70)]
    assert {i.kind for i in items} == {"start"}


async def test_a_failed_units_new_runs_are_not_written_nor_handed_on(store: Store) -> None:
    results = await asyncio.gather(
        *(store.run(create(f"u{k}-", 5, fail=k % 2 == 1)) for k in range(20)),
        return_exceptions=True,
    )
    for k, result in enumerate(results):
        if k % 2:
            assert isinstance(result, Boom)
        else:
            assert result == [True] * 5
    assert await _run_ids(store) == sorted(
        f"u{k}-{n:04}" for k in range(0, 20, 2) for n in range(5)
    )
    items = await store.run(lambda tx: tx.claim(10, "node", 1_000, 500))
    assert len(items) == 50


async def test_a_run_id_used_twice_fails_its_unit_whole(store: Store) -> None:
    await store.run(create("d", 1))

    def twice_in_one_unit(tx: Tx) -> None:
        tx.insert_run(new_run("x0001"))
        tx.insert_run(new_run("x0001"))

    with pytest.raises(Exception):  # noqa: B017 - each database names its own error
        await store.run(twice_in_one_unit)
    with pytest.raises(Exception):  # noqa: B017
        await store.run(create("d", 1))
    assert await _run_ids(store) == ["d0000"]


async def test_an_item_enqueued_again_in_the_unit_is_bumped_not_duplicated(
    store: Store,
) -> None:
    def work(tx: Tx) -> tuple[bool, bool]:
        tx.insert_run(new_run("q0001"))
        return tx.enqueue(start_item("q0001", 5)), tx.enqueue(start_item("q0001", 9))

    assert await store.run(work) == (True, False)
    [item] = await store.run(lambda tx: tx.claim(100, "node", 1_000, 10))
    assert (item.item_id, item.available_at, item.generation) == ("run:q0001", 5, 1)
