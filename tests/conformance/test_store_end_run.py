"""end_run: finish_run, returning the run as it ended in the statement that ends it."""

from __future__ import annotations

import asyncio

from stepwell.store.base import Store
from stepwell.store.records import RunRecord


def run(run_id: str) -> RunRecord:
    return RunRecord(run_id, "app-fn", 1, "app", "Running", "ev-1", ("ev-1",), 1_000)


async def test_end_run_returns_the_ended_run_once(store: Store) -> None:
    await store.run(lambda tx: tx.insert_run(run("r1")))
    ended = await store.run(lambda tx: tx.end_run("r1", "Completed", 5_000, output={"n": 3}))
    again = await store.run(lambda tx: tx.end_run("r1", "Failed", 6_000, error={"name": "E"}))
    assert again is None
    assert ended == await store.read(lambda tx: tx.get_run("r1"))
    assert ended is not None
    assert (ended.status, ended.ended_at, ended.output, ended.error) == (
        "Completed",
        5_000,
        {"n": 3},
        None,
    )
    assert await store.run(lambda tx: tx.end_run("unknown", "Cancelled", 1)) is None


async def test_concurrent_endings_return_one_run(store: Store) -> None:
    await store.run(lambda tx: tx.insert_run(run("r1")))
    ended = await asyncio.gather(
        *(
            store.run(lambda tx, n=n: tx.end_run("r1", "Cancelled", n, cancel_reason=f"c{n}"))
            for n in range(10)
        )
    )
    [winner] = [r for r in ended if r is not None]
    assert winner.cancel_reason == f"c{ended.index(winner)}"
