"""A concurrency limit removed by a re-sync stops holding back the runs it had blocked."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import stepwell
from stepwell.engine.engine import BLOCKED_CHECK_ROUNDS
from tests.flow.conftest import Bed, BedFactory


def gate_app(release: asyncio.Event, entered: asyncio.Event, *, limited: bool) -> stepwell.App:
    """``t-gate``: the run of an event with ``data.hold`` waits in its step for ``release``."""
    app = stepwell.App("t")

    async def step(hold: bool) -> str:
        if hold:
            entered.set()
            await release.wait()
        return "done"

    @app.function("gate", trigger="t/go", concurrency=1 if limited else None)
    async def gate(ctx: stepwell.Context) -> str:
        return await ctx.step.run("a", step, bool(ctx.event.data.get("hold")))

    return app


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def test_runs_blocked_by_a_removed_limit_start_while_its_holder_still_runs(
    bed: BedFactory,
) -> None:
    release, entered = asyncio.Event(), asyncio.Event()
    limited = gate_app(release, entered, limited=True)
    async with bed(limited) as b:
        holder = await b.send("t/go", {"hold": True})
        await b.engine.tick()
        await asyncio.wait_for(entered.wait(), 5)
        waiting = [await b.send("t/go") for _ in range(2)]
        await b.engine.tick()  # the slot is taken: both are blocked
        assert await _statuses(b, waiting) == ["Queued", "Queued"]

        unlimited = gate_app(release, entered, limited=False)
        await b.engine.register(
            unlimited.register_request(), {f.full_id: f for f in unlimited.functions}
        )
        assert not b.engine.registry.limits_claims
        for rounds in range(1, BLOCKED_CHECK_ROUNDS + 1):  # a minute, with default leases
            await b.engine.lease_round(rounds)
        await b.engine.tick()

        async def started() -> bool:
            return await _statuses(b, waiting) == ["Completed", "Completed"]

        await _until(started)
        assert await _statuses(b, [holder]) == ["Running"]  # still holding its old slot
        release.set()
        await b.settle()
        assert await _statuses(b, [holder]) == ["Completed"]


async def _statuses(b: Bed, event_ids: list[str]) -> list[str]:
    return [run.status for e in event_ids for run in await b.runs_for(e)]
