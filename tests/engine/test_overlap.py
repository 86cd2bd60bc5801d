"""Two invocations of one run that overlap: the run goes on with the step results it recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import stepwell
from stepwell.clock import FakeClock
from stepwell.engine.engine import Engine
from stepwell.store.sqlite import SqliteStore


async def test_a_run_ends_with_the_step_results_its_memo_recorded_when_invocations_overlap(
    tmp_path: Path,
) -> None:
    app = stepwell.App("t")
    a_may_go, b_may_go = asyncio.Event(), asyncio.Event()
    entered = {"pick": asyncio.Event(), "then": asyncio.Event()}
    picks: list[str] = []

    async def pick(node: str) -> str:
        picks.append(node)
        entered["pick"].set()
        if len(picks) == 1:
            await a_may_go.wait()  # node A stalls past its lease inside this step
        return node

    async def then(node: str) -> str:
        entered["then"].set()
        if node == "B":
            await b_may_go.wait()  # node B, which took over, is slow to go on
        return "then"

    @app.function("job", trigger="t/go")
    async def job(ctx: stepwell.Context) -> str:
        node = ctx.event.data["node"][len(picks) % 2]
        picked = await ctx.step.run("pick", pick, node)
        return picked + "/" + await ctx.step.run("then", then, node)

    clock = FakeClock()
    handlers = {fn.full_id: fn for fn in app.functions}
    a = Engine(SqliteStore(str(tmp_path / "s.db")), clock=clock, lease_ms=10_000, node_id="A")
    b = Engine(SqliteStore(str(tmp_path / "s.db")), clock=clock, lease_ms=10_000, node_id="B")
    for engine in (a, b):
        await engine.start(loops=False)
        await engine.register(app.register_request(), handlers)
    [event_id] = await a.send_wire([{"name": "t/go", "data": {"node": "AB"}}])

    await entered["pick"].wait()
    [run] = await a.store.read(lambda tx: tx.runs_for_event(event_id))
    run_id = run.run_id
    clock.advance(10_001)
    entered["then"].clear()
    taken_over = asyncio.create_task(b.run_until_idle())
    await entered["then"].wait()  # B ran pick ("B") and waits in the next step
    while not await a.store.read(lambda tx: tx.get_memo(run_id)):
        await asyncio.sleep(0.005)  # until B's checkpoint of pick has landed
    a_may_go.set()  # A's pick returns "A", too late: A must not end the run with it
    await asyncio.sleep(0.05)
    b_may_go.set()
    await taken_over
    clock.advance(10_001)  # whichever invocation lost is retried
    for _ in range(3):
        await a.run_until_idle()
        await b.run_until_idle()

    runs = await b.store.read(lambda tx: tx.runs_for_event(event_id))
    memo = await b.store.read(lambda tx: tx.get_memo(runs[0].run_id))
    recorded = {m.step_id: m.value for m in memo}["pick"]["data"]
    assert recorded == "B"
    assert [(r.status, r.output) for r in runs] == [("Completed", "B/then")]
    for engine in (a, b):
        await engine.stop()
