"""Bulk operations live in the store, on SQLite and PostgreSQL: any node answers for one, and an
operation its node stopped, or lost (the node stalled and its lease expired), is finished by
another node, acting on every selected run exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

import stepwell
from stepwell.clock import FakeClock
from stepwell.engine import bulk as operations
from stepwell.engine.api.app import build_app
from stepwell.engine.bulk import BulkKind, RunSelection
from stepwell.engine.engine import Engine
from stepwell.store.records import RunFilter, RunRecord
from tests.conformance.conftest import Backend, backend

__all__ = ["backend"]

app = stepwell.App("bulkd")
RUNS = 11
GROUP = 3


@app.function("nap", trigger="bulkd/nap")
async def nap(ctx: stepwell.Context) -> str:
    await ctx.step.sleep("long", "1d")
    return "woke"


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several reads and several units of work for a handful of runs."""
    monkeypatch.setattr(operations, "PAGE", 4)
    monkeypatch.setattr(operations, "GROUP", GROUP)


@asynccontextmanager
async def node(
    backend: Backend, clock: FakeClock, name: str, *, loops: bool = False
) -> AsyncIterator[Engine]:
    engine = Engine(backend.make(), clock=clock, node_id=name)
    await engine.start(loops=loops)
    try:
        await engine.register(app.register_request(), {f.full_id: f for f in app.functions})
        yield engine
    finally:
        await engine.stop(grace_s=1)


class Stall:
    """Stalls one node's bulk work once it has read its ``after``-th page of runs to act on
    (holding that page, as a node that froze would), until ``go`` is set."""

    def __init__(self, engine: Engine, after: int, monkeypatch: pytest.MonkeyPatch) -> None:
        self.engine = engine
        self.after = after
        self.pages = 0
        self.reached = asyncio.Event()
        self.go = asyncio.Event()
        self._scan = operations.scan_runs
        monkeypatch.setattr(operations, "scan_runs", self.scan_runs)

    async def scan_runs(self, engine: Engine, *args: Any, **kwargs: Any) -> Any:
        found = await self._scan(engine, *args, **kwargs)
        if engine is self.engine and kwargs.get("want") is not None:
            self.pages += 1
            if self.pages == self.after:
                self.reached.set()
                await self.go.wait()
        return found


async def napping_runs(engine: Engine, clock: FakeClock) -> list[str]:
    """Start RUNS runs that sleep; the bulk operation is asked for a second later."""
    events = await engine.send_wire([{"name": "bulkd/nap", "data": {"i": i}} for i in range(RUNS)])
    await engine.run_until_idle()
    clock.advance(1000)
    return events


async def all_runs(engine: Engine) -> list[RunRecord]:
    return await engine.store.read(lambda tx: tx.list_runs(RunFilter(limit=1000)))


async def assert_acted_once(engine: Engine, kind: BulkKind, events: list[str]) -> None:
    """Every selected run cancelled, or rerun exactly once (one new run per trigger event)."""
    runs = await all_runs(engine)
    if kind == "cancel":
        assert [r.status for r in runs] == ["Cancelled"] * RUNS
    else:
        per_event = [
            len(await engine.store.read(lambda tx, e=e: tx.runs_for_event(e))) for e in events
        ]
        assert per_event == [2] * RUNS and len(runs) == 2 * RUNS


@pytest.mark.parametrize("kind", ["cancel", "replay"])
async def test_a_stalled_nodes_bulk_operation_is_read_and_finished_by_another_node_once(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, kind: BulkKind
) -> None:
    clock = FakeClock()
    async with node(backend, clock, "A") as a, node(backend, clock, "B") as b:
        events = await napping_runs(a, clock)
        stall = Stall(a, after=2, monkeypatch=monkeypatch)
        job = await a.bulk.start(kind, RunSelection(function_id="bulkd-nap"))
        await asyncio.wait_for(stall.reached.wait(), 10)

        seen = await b.bulk.get(job.job_id)  # B answers for A's operation, from the store
        assert (seen.state, seen.total, seen.processed, seen.node_id) == (
            "running",
            RUNS,
            GROUP,
            "A",
        )
        noun = "cancellations" if kind == "cancel" else "replays"
        transport = httpx.ASGITransport(app=build_app(b))
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as web:
            rest = (await web.get(f"/v1/{noun}/{job.job_id}")).json()
            assert (rest["id"], rest["processed"], rest["total"]) == (job.job_id, GROUP, RUNS)
            assert rest["node_id"] == "A"
            page = await web.get(f"/bulk/{job.job_id}")
            assert page.status_code == 200 and f'value="{GROUP}"' in page.text

        assert await b.bulk.resume() == 0  # A's lease still holds
        clock.advance(a.lease_ms)
        assert await b.bulk.resume() == 1
        done = await asyncio.wait_for(b.bulk.wait(job.job_id), 10)
        assert (done.state, done.total, done.processed, done.changed, done.skipped) == (
            "done", RUNS, RUNS, RUNS, 0,
        )  # fmt: skip

        stall.go.set()  # A wakes holding a page B has already handled: it must not act on it
        for _ in range(500):
            if not a.bulk.working():
                break
            await asyncio.sleep(0.01)
        assert not a.bulk.working()
        assert await a.bulk.get(job.job_id) == done
        await assert_acted_once(a, kind, events)


@pytest.mark.parametrize("kind", ["cancel", "replay"])
async def test_a_bulk_operation_stopped_with_its_node_is_finished_when_a_node_starts(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, kind: BulkKind
) -> None:
    clock = FakeClock()
    async with node(backend, clock, "A") as a:
        events = await napping_runs(a, clock)
        stall = Stall(a, after=3, monkeypatch=monkeypatch)
        job = await a.bulk.start(kind, RunSelection(function_id="bulkd-nap"))
        await asyncio.wait_for(stall.reached.wait(), 10)
    # A stopped mid-way and gave its lease back; a node starting on the store continues.
    async with node(backend, clock, "B", loops=True) as b:
        done = await asyncio.wait_for(b.bulk.wait(job.job_id), 10)
        assert (done.state, done.total, done.processed, done.changed, done.skipped) == (
            "done", RUNS, RUNS, RUNS, 0,
        )  # fmt: skip
        await assert_acted_once(b, kind, events)
