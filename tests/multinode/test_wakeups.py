"""An idle node sleeps on its store's announcements instead of polling: another node's due work
wakes it at once, and a dead node's expired lease is still found within one lease.

Time is a fake clock that never moves unless told to, so a node that ran work it did not make
itself was woken by an announcement, not by a poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

import stepwell
from stepwell.clock import FakeClock
from stepwell.engine import wakeups
from stepwell.engine.engine import Engine
from stepwell.store.base import Tx
from stepwell.store.postgres import PostgresStore
from stepwell.store.records import RunRecord
from stepwell.store.sqlite import SqliteStore

T = TypeVar("T")


class CountingStore:
    """A PostgreSQL store that counts the units of work and reads asked of it."""

    def __init__(self, url: str) -> None:
        self.inner = PostgresStore(url)
        self.calls = 0

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def run(self, work: Callable[[Tx], T]) -> T:
        self.calls += 1
        return await self.inner.run(work)

    async def read(self, work: Callable[[Tx], T]) -> T:
        self.calls += 1
        return await self.inner.read(work)

    async def wait_for_notify(self, timeout_s: float) -> bool:
        return await self.inner.wait_for_notify(timeout_s)


class WatchedClock(FakeClock):
    """A fake clock that tells when its one sleeper (a dispatch loop) is idle."""

    def __init__(self) -> None:
        super().__init__()
        self._wake: asyncio.Event | None = None

    async def sleep_until(self, when_ms: int, wake: asyncio.Event) -> None:
        self._wake = wake
        try:
            await super().sleep_until(when_ms, wake)
        finally:
            self._wake = None

    async def idle(self) -> None:
        """Return once the sleeper sleeps with nothing left to wake it."""
        for _ in range(1000):
            if self._wake is not None and not self._wake.is_set():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the dispatch loop never went to sleep")


def job_app(bodies: list[str]) -> stepwell.App:
    app = stepwell.App("wake")

    @app.function("job", trigger="wake/go")
    async def job(ctx: stepwell.Context) -> str:
        return await ctx.step.run("only", lambda: bodies.append(ctx.run_id) or "done")

    return app


async def register(app: stepwell.App, *engines: Engine) -> None:
    handlers = {fn.full_id: fn for fn in app.functions}
    for engine in engines:
        await engine.register(app.register_request(), handlers)


async def ended(engine: Engine, event_id: str) -> RunRecord:
    for _ in range(1000):
        runs = await engine.store.read(lambda tx: tx.runs_for_event(event_id))
        if runs and runs[0].status == "Completed":
            [run] = runs
            return run
        await asyncio.sleep(0.01)
    raise AssertionError(f"the run of event {event_id} did not complete")


@pytest.mark.postgres
async def test_an_idle_node_is_woken_by_work_another_node_commits(pg_url: str) -> None:
    bodies: list[str] = []
    clock = WatchedClock()
    store = CountingStore(pg_url)
    idle = Engine(store, clock=clock, node_id="idle")
    busy = Engine(PostgresStore(pg_url), clock=clock, concurrency=0, node_id="busy")
    await idle.start()
    await busy.start(loops=False)
    try:
        await register(job_app(bodies), idle, busy)
        await clock.idle()
        calls_when_idle = store.calls

        # A node at capacity commits a new run but cannot start it: it only enqueues it.
        [event_id] = await busy.send_wire([{"name": "wake/go"}])

        run = await ended(busy, event_id)
        assert run.output == "done"
        assert bodies == [run.run_id]
        # claim, snapshot, step commit, next due time, and not much else: no polling loop
        assert 0 < store.calls - calls_when_idle <= 8
    finally:
        await idle.stop()
        await busy.stop()


@pytest.mark.postgres
async def test_an_idle_node_takes_over_a_dead_nodes_lease_within_one_lease(pg_url: str) -> None:
    bodies: list[str] = []
    lease = 5_000
    clock = WatchedClock()
    sender = Engine(PostgresStore(pg_url), clock=clock, concurrency=0, node_id="sender")
    survivor = Engine(PostgresStore(pg_url), clock=clock, lease_ms=lease, node_id="survivor")
    await sender.start(loops=False)
    try:
        await register(job_app(bodies), sender)
        [event_id] = await sender.send_wire([{"name": "wake/go"}])
        now = clock.now_ms()
        # A node leases the run's item and dies: nothing will ever announce that lease again.
        [held] = await sender.store.run(lambda tx: tx.claim(now, "dead", lease, 10))

        await survivor.start()
        await register(job_app(bodies), survivor)
        await clock.idle()
        assert bodies == []  # the lease holds

        clock.advance(lease)  # the lease expires, and the survivor's idle sleep ends with it
        run = await ended(survivor, event_id)
        assert held.run_id == run.run_id
        assert bodies == [run.run_id]
    finally:
        await sender.stop()
        await survivor.stop()


def test_only_a_shared_store_is_polled_once_per_lease(tmp_path: Path) -> None:
    sqlite = SqliteStore(str(tmp_path / "s.db"))
    postgres = PostgresStore("postgresql://nobody@127.0.0.1/none")  # never opened
    assert wakeups.notifier_of(sqlite) is None
    assert wakeups.idle_poll_ms(sqlite, lease_ms=5_000) == wakeups.IDLE_POLL_MS
    assert wakeups.notifier_of(postgres) is postgres
    assert wakeups.idle_poll_ms(postgres, lease_ms=5_000) == 5_000
    assert wakeups.idle_poll_ms(postgres, lease_ms=600_000) == wakeups.IDLE_POLL_MS


class FlakyNotifier:
    """Fails ``failures`` times, then announces work once, then waits quietly."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.announced = False

    async def wait_for_notify(self, timeout_s: float) -> bool:
        if self.failures:
            self.failures -= 1
            raise OSError("connection refused")
        if not self.announced:
            self.announced = True
            return True
        await asyncio.sleep(timeout_s)
        return False


async def test_listening_survives_a_store_that_fails_for_a_while(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wake = asyncio.Event()
    notifier: Any = FlakyNotifier(failures=2)
    task = await wakeups.listen(notifier, wake)
    assert task is not None
    try:
        await asyncio.wait_for(wake.wait(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    warnings = [r for r in caplog.records if "cannot listen" in r.getMessage()]
    assert len(warnings) == 1  # said once, not at every attempt
