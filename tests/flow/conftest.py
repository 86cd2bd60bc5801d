"""Flow-control tests run on both stores: an engine on a fresh SQLite file or PostgreSQL schema,
driven step by step with fake time (or with its loops, for the tests between two nodes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

import stepwell
from stepwell.clock import Clock, FakeClock
from stepwell.engine.engine import Engine
from stepwell.store.records import RunFilter, RunRecord
from tests.conformance.conftest import Backend, backend, pg_backend

__all__ = ["Bed", "backend", "pg_backend"]


class Bed:
    """One engine on the test's database with an app registered in-process."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    async def send(self, name: str, data: dict[str, Any] | None = None, **fields: Any) -> str:
        [event_id] = await self.engine.send_wire([{"name": name, "data": data or {}, **fields}])
        return event_id

    async def settle(self) -> None:
        await self.engine.run_until_idle()

    async def advance(self, ms: int) -> None:
        await self.settle()
        assert isinstance(self.clock, FakeClock)
        self.clock.advance(ms)
        await self.settle()

    async def runs(self, function: str | None = None) -> list[RunRecord]:
        """Runs oldest first, of every function or the one with that (short) id."""
        runs = await self.engine.store.read(lambda tx: tx.list_runs(RunFilter(limit=1000)))
        if function is not None:
            runs = [r for r in runs if r.function_id.endswith(f"-{function}")]
        return sorted(runs, key=lambda r: r.run_id)

    async def runs_for(self, event_id: str) -> list[RunRecord]:
        return await self.engine.store.read(lambda tx: tx.runs_for_event(event_id))

    async def skips(self, event_id: str) -> list[tuple[str, str]]:
        return await self.engine.store.read(lambda tx: tx.skips_for_event(event_id))


BedFactory = Callable[..., Any]


@pytest.fixture
def bed(backend: Backend) -> BedFactory:
    """``async with bed(app) as b:`` — an engine on the test's database, fake time, no loops."""

    @asynccontextmanager
    async def make(
        app: stepwell.App,
        *,
        clock: Clock | None = None,
        loops: bool = False,
        node_id: str | None = None,
        concurrency: int = 64,
    ) -> AsyncIterator[Bed]:
        clock = clock or FakeClock()
        engine = Engine(backend.make(), clock=clock, node_id=node_id, concurrency=concurrency)
        await engine.start(loops=loops)
        try:
            await engine.register(app.register_request(), {f.full_id: f for f in app.functions})
            yield Bed(engine, clock)
        finally:
            await engine.stop(grace_s=1)

    return make
