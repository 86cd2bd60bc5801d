"""Concurrency and throttle hold across two engine nodes sharing one PostgreSQL database."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from contextlib import AsyncExitStack

import pytest

import stepwell
from stepwell.clock import SystemClock
from stepwell.store.records import RunRecord
from tests.conformance.conftest import Backend
from tests.flow.conftest import Bed, BedFactory
from tests.flow.test_pause import build_app as pause_app


@pytest.fixture
def backend(pg_backend: Backend) -> Backend:
    """These tests run on PostgreSQL only: the database is what the nodes share."""
    return pg_backend


async def _until_done(nodes: list[Bed], count: int, timeout_s: float = 60) -> list[RunRecord]:
    deadline = time.monotonic() + timeout_s
    while True:
        runs = await nodes[0].runs()
        if len([r for r in runs if r.status == "Completed"]) >= count:
            return runs
        assert time.monotonic() < deadline, f"only {len(runs)} runs, {runs[-1:]}"
        await asyncio.sleep(0.05)


async def test_concurrency_limit_holds_across_two_nodes(bed: BedFactory) -> None:
    app = stepwell.App("t")
    running = 0
    peak = 0

    async def hold() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    @app.function("shared", trigger="t/go", concurrency=3)
    async def shared(ctx: stepwell.Context) -> None:
        await ctx.step.run("a", hold)
        await ctx.step.run("b", hold)

    ended: Counter[str] = Counter()
    async with AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(bed(app, clock=SystemClock(), loops=True, node_id=name))
            for name in ("A", "B")
        ]
        for node in nodes:
            node.engine.run_listeners.append(
                lambda run, status, n=node.engine.node_id: ended.update([n])
            )
        for i in range(24):
            await nodes[i % 2].send("t/go")
        runs = await _until_done(nodes, 24)
    assert len(runs) == 24
    print(f"peak executing steps {peak} (limit 3); runs ended per node {dict(ended)}")
    assert peak <= 3
    assert set(ended) == {"A", "B"}  # both nodes did the work


async def test_throttle_holds_across_two_nodes(bed: BedFactory) -> None:
    app = stepwell.App("t")
    starts: list[float] = []

    @app.function(
        "paced", trigger="t/go", throttle=stepwell.Throttle(limit=5, period="1s", burst=1)
    )
    async def paced(ctx: stepwell.Context) -> None:
        await ctx.step.run("a", lambda: starts.append(time.time() * 1000))

    async with AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(bed(app, clock=SystemClock(), loops=True, node_id=name))
            for name in ("A", "B")
        ]
        before = time.time() * 1000
        for i in range(16):
            await nodes[i % 2].send("t/go")
        await _until_done(nodes, 16)
    starts.sort()
    # limit + burst = 6 start at once, then one every 1 s / 5 = 200 ms, whichever node
    for k, at in enumerate(starts):
        assert at >= before + max(0, k - 5) * 200 - 5, (k, at - before)
    assert len(starts) == 16


async def test_a_pause_on_one_node_holds_on_the_others(bed: BedFactory) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(bed(pause_app(), node_id="A"))
        b = await stack.enter_async_context(bed(pause_app(), node_id="B"))
        await a.engine.pause("t-work")
        held = await b.send("t/go")
        await b.settle()
        assert await b.runs_for(held) == []
        await a.engine.pause("t-work", False)
        later = await b.send("t/go")
        await b.settle()
        assert [r.output for r in await b.runs_for(later)] == ["done"]
