"""A run that ends in its first invocation starts and ends in one write, on both stores: it still
records when it started, and an end made meanwhile by someone else (a cancel) wins over it."""

from __future__ import annotations

import asyncio
from typing import Any

import stepwell
from stepwell.clock import FakeClock
from tests.flow.conftest import Bed, BedFactory, backend, bed

__all__ = ["backend", "bed"]

FINISHED = "inngest/function.finished"

app = stepwell.App("lifecycle")
gate: dict[str, asyncio.Event] = {}
attempts: list[int] = []


@app.function("quick", trigger="t/quick")
async def quick(ctx: stepwell.Context) -> int:
    return int(await ctx.step.run("one", lambda: 1)) + 1


@app.function("refuses", trigger="t/refuses", retries=3)
async def refuses(ctx: stepwell.Context) -> None:
    raise stepwell.NonRetriableError("no")


@app.function("flaky", trigger="t/flaky", retries=3)
async def flaky(ctx: stepwell.Context) -> str:
    attempts.append(ctx.attempt)
    if ctx.attempt == 0:
        raise RuntimeError("first try fails")
    return "ok"


@app.function("held", trigger="t/held")
async def held(ctx: stepwell.Context) -> str:
    gate["entered"].set()
    await gate["release"].wait()
    return "finished anyway"


async def _end_events(b: Bed, run_id: str) -> list[dict[str, Any]]:
    stored = await b.engine.store.read(lambda tx: tx.list_events(FINISHED))
    return [e.data for e in stored if e.data["run_id"] == run_id]


async def test_a_run_ending_in_its_first_invocation_records_its_start(bed: BedFactory) -> None:
    clock = FakeClock()
    async with bed(app, clock=clock) as b:
        await b.send("t/quick")
        await b.send("t/refuses")
        await b.settle()
        [ok] = await b.runs("quick")
        [failed] = await b.runs("refuses")
        assert (ok.status, ok.output) == ("Completed", 2)
        assert failed.status == "Failed" and failed.error["message"] == "no"
        for run in (ok, failed):
            assert run.started_at is not None and run.ended_at is not None
            assert run.started_at <= run.ended_at
            [end] = await _end_events(b, run.run_id)
            assert end["_inngest"]["status"] == run.status


async def test_a_retried_run_keeps_the_start_of_its_first_attempt(bed: BedFactory) -> None:
    attempts.clear()
    clock = FakeClock()
    async with bed(app, clock=clock) as b:
        await b.send("t/flaky")
        await b.settle()
        [run] = await b.runs("flaky")
        assert run.status == "Running" and run.started_at is not None
        first_start = run.started_at
        await b.advance(60_000)
        [run] = await b.runs("flaky")
        assert (run.status, run.output, run.started_at) == ("Completed", "ok", first_start)
        assert attempts == [0, 1]


async def test_a_run_cancelled_during_its_first_invocation_stays_cancelled(
    bed: BedFactory,
) -> None:
    gate.update(entered=asyncio.Event(), release=asyncio.Event())
    async with bed(app) as b:
        await b.send("t/held")
        settling = asyncio.create_task(b.settle())
        await asyncio.wait_for(gate["entered"].wait(), 10)
        [run] = await b.runs("held")
        assert await b.engine.cancel(run.run_id, "stopped by a test")
        gate["release"].set()  # the invocation now returns a result, too late
        await asyncio.wait_for(settling, 10)
        [run] = await b.runs("held")
        assert (run.status, run.output, run.cancel_reason) == (
            "Cancelled",
            None,
            "stopped by a test",
        )
        [end] = await _end_events(b, run.run_id)  # one end, the cancel's
        assert end["_inngest"]["status"] == "Cancelled"
        queued = await b.engine.store.read(lambda tx: tx.next_available_at())
        assert queued is None  # the invocation's item was settled, nothing left behind
