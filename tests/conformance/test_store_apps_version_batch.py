"""The apps version seen by units committed together: every unit sees the syncs and pauses
committed before it was submitted, and those of earlier units of its own batch, never those of
a unit that was rolled back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from stepwell.store.base import Store, Tx
from stepwell.store.records import AppRecord


def app(app_id: str, synced_at: int) -> AppRecord:
    return AppRecord(app_id, None, None, None, "sum", synced_at)


async def test_units_of_one_batch_see_the_syncs_and_pauses_before_them(store: Store) -> None:
    def sync(tx: Tx, n: int) -> tuple[int, int, int]:
        before = tx.apps_version()
        tx.upsert_app(app(f"app-{n}", 1_000 + n))
        after = tx.apps_version()
        assert after != before
        return after

    def pause(tx: Tx) -> tuple[int, int, int]:
        before = tx.apps_version()
        assert tx.set_paused("app-0-fn", True, 5_000)
        after = tx.apps_version()
        assert after != before
        return after

    versions = await asyncio.gather(*(store.run(lambda tx, n=n: sync(tx, n)) for n in range(8)))
    assert sorted(v[1] for v in versions) == list(range(1, 9))
    paused = await store.run(pause)
    assert paused == await store.read(lambda tx: tx.apps_version())
    assert paused[1] == 8


async def test_a_sync_rolled_back_is_not_seen_by_the_next_unit(store: Store) -> None:
    before = await store.read(lambda tx: tx.apps_version())

    def sync_then_fail(tx: Tx) -> None:
        tx.apps_version()
        tx.upsert_app(app("gone", 2_000))
        assert tx.apps_version() != before
        raise RuntimeError("rolled back")

    failing = store.run(sync_then_fail)
    checking = store.run(lambda tx: tx.apps_version())
    results = await asyncio.gather(failing, checking, return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert results[1] == before


async def test_a_sync_another_node_committed_before_a_unit_is_submitted_is_seen(
    make_store: Callable[[], Store],
) -> None:
    one, two = make_store(), make_store()
    await one.open()
    await two.open()
    try:
        seen = await two.run(lambda tx: tx.apps_version())
        await one.run(lambda tx: tx.upsert_app(app("synced", 3_000)))
        assert await two.run(lambda tx: tx.apps_version()) != seen
    finally:
        await one.close()
        await two.close()
