"""Cron ticks: each fires at most once across every node."""

from __future__ import annotations

import asyncio

from stepwell.store.base import Store


async def test_a_tick_is_claimed_once(store: Store) -> None:
    claims = await asyncio.gather(
        *(store.run(lambda tx: tx.claim_cron_tick("app-report", 60_000)) for _ in range(10))
    )
    assert claims.count(True) == 1
    assert await store.run(lambda tx: tx.claim_cron_tick("app-report", 60_000)) is False
    assert await store.run(lambda tx: tx.claim_cron_tick("app-other", 60_000)) is True


async def test_last_cron_tick_is_the_latest_recorded(store: Store) -> None:
    assert await store.read(lambda tx: tx.last_cron_tick("app-report")) is None
    for tick_at in (120_000, 60_000, 180_000):
        await store.run(lambda tx, t=tick_at: tx.claim_cron_tick("app-report", t))
    await store.run(lambda tx: tx.claim_cron_tick("app-other", 999_000))
    assert await store.read(lambda tx: tx.last_cron_tick("app-report")) == 180_000
