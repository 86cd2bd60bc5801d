"""Two engines on one store: an expired lease is taken over, and every effect stays single."""

from __future__ import annotations

import asyncio
from pathlib import Path

import stepwell
from stepwell.clock import FakeClock
from stepwell.engine.engine import Engine
from stepwell.store.records import RunFilter
from stepwell.store.sqlite import SqliteStore


async def test_a_stalled_node_is_taken_over_and_the_run_ends_once(tmp_path: Path) -> None:
    app = stepwell.App("t")
    gate = asyncio.Event()
    entered = asyncio.Event()
    bodies: list[str] = []

    async def slow() -> str:
        bodies.append("slow")
        entered.set()
        if len(bodies) == 1:
            await gate.wait()  # the first node stalls here, holding its lease
        return "done"

    @app.function("job", trigger="t/go")
    async def job(ctx: stepwell.Context) -> str:
        first = await ctx.step.run("first", lambda: "one")
        return first + "/" + await ctx.step.run("slow", slow)

    @app.function("watch", trigger="inngest/function.finished")
    async def watch(ctx: stepwell.Context) -> str:
        return str(ctx.event.data["run_id"])

    clock = FakeClock()
    handlers = {fn.full_id: fn for fn in app.functions}
    a = Engine(SqliteStore(str(tmp_path / "s.db")), clock=clock, lease_ms=10_000, node_id="A")
    b = Engine(SqliteStore(str(tmp_path / "s.db")), clock=clock, lease_ms=10_000, node_id="B")
    for engine in (a, b):
        await engine.start(loops=False)
        await engine.register(app.register_request(), handlers)
    [event_id] = await a.send_wire([{"name": "t/go"}])

    await entered.wait()  # A started the run directly, in the event's own transaction
    assert await b.tick() == 0  # A's lease holds
    clock.advance(10_001)
    await b.run_until_idle()  # B takes the expired lease over and finishes the run
    gate.set()
    await a.run_until_idle()  # A's late outcome must change nothing

    runs = await b.store.read(lambda tx: tx.runs_for_event(event_id))
    assert [(r.status, r.output) for r in runs] == [("Completed", "one/done")]
    memo = await b.store.read(lambda tx: tx.get_memo(runs[0].run_id))
    assert [m.step_id for m in memo] == ["first", "slow"]
    finished = await b.store.read(lambda tx: tx.list_events("inngest/function.finished"))
    assert len(finished) == 1
    assert bodies == ["slow", "slow"]  # at least once: the stalled body ran on both nodes
    all_runs = await b.store.read(lambda tx: tx.list_runs(RunFilter(limit=10)))
    watched = [r.output for r in all_runs if r.function_id == "t-watch"]
    assert len(all_runs) == 2 and watched == [runs[0].run_id]  # one end event, one run of it
    for engine in (a, b):
        await engine.stop()
