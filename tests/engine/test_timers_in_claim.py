"""Timers that continue a run (a sleep that ended, a wait or invoke that timed out) are fired by
the claiming unit itself, their continuation leased in the same unit: a woken run is invoked
after one commit, not two. A timer that cannot be fired there does not hold up the others."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest

import stepwell
from stepwell.clock import SystemClock
from stepwell.store.base import Tx
from stepwell.store.records import QueueItem
from tests.flow.conftest import BedFactory, backend, bed

__all__ = ["backend", "bed"]

app = stepwell.App("timers")


@app.function("sleeper", trigger="t/sleep")
async def sleeper(ctx: stepwell.Context) -> str:
    await ctx.step.sleep("nap", 0.3)
    return "awake"


@app.function("waiter", trigger="t/wait")
async def waiter(ctx: stepwell.Context) -> Any:
    got = await ctx.step.wait_for_event("go", event="t/go", timeout=0.3)
    return "timed out" if got is None else "matched"


@pytest.mark.parametrize("trigger", ["t/sleep", "t/wait"])
async def test_a_woken_run_continues_after_one_unit(bed: BedFactory, trigger: str) -> None:
    async with bed(app, clock=SystemClock(), loops=True) as b:
        engine = b.engine
        ended: asyncio.Queue[str] = asyncio.Queue()
        engine.run_listeners.append(lambda run, status: ended.put_nowait(status))
        await b.send(trigger)
        # Parked: its timer is the one item queued, unleased.
        while await engine.store.read(lambda tx: tx.next_available_at()) is None:
            await asyncio.sleep(0.01)
        units = [0]
        run = engine.store.run

        @functools.wraps(run)
        async def counted(work: Any) -> Any:
            units[0] += 1
            return await run(work)

        engine.store.run = counted  # type: ignore[method-assign]
        assert await asyncio.wait_for(ended.get(), 10) == "Completed"
        # The claim that fired the timer and leased the continuation, then the run's end.
        # Fired in a unit of its own, it took three.
        assert units[0] == 2
        [finished] = await b.runs()
    assert finished.output == ("awake" if trigger == "t/sleep" else "timed out")


async def test_a_timer_that_fails_to_fire_in_the_claim_is_fired_alone(bed: BedFactory) -> None:
    async with bed(app) as b:
        await b.send("t/sleep")
        await b.settle()
        now = b.clock.now_ms()
        bad = QueueItem("sleep:bad", "sleep", "r-bad", "timers-sleeper", now, payload={})

        def enqueue(tx: Tx) -> None:
            tx.enqueue(bad)

        await b.engine.store.run(enqueue)
        b.clock.advance(1000)  # the good sleep is due too
        with pytest.raises(KeyError):  # no step key: the claiming unit fails as a whole
            await b.engine.tick()
        await b.settle()  # the next claim fires the good timer, and leaves the bad one alone
        [run] = await b.runs()
        assert (run.status, run.output) == ("Completed", "awake")
        # Its own unit failed too: it was released for a later retry, not lost.
        [item] = await b.engine.store.read(lambda tx: tx.list_run_queue_items("r-bad"))
        assert item.item_id == "sleep:bad"
        assert item.lease_owner is None and item.available_at > now + 1000
