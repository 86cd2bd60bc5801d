"""The dispatch loop is woken only when a committed unit may have made work for it to claim
(``LeasingTx.made_work``), or when an invocation ends while work waited for a free slot.

Both halves are guarantees. Work dispatched directly costs no claim after it, and every path that
makes work still wakes the loop. Each scenario below runs on the loop with the real clock, so a
missed wake would leave its run waiting for the idle poll (a minute) and the test would time out.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import stepwell
from stepwell.clock import SystemClock
from stepwell.engine.engine import Engine
from stepwell.engine.local_lease import QUIET, LeasingTx
from stepwell.store.base import Tx
from stepwell.store.records import QueueItem
from tests.flow.conftest import Bed, BedFactory, backend, bed

__all__ = ["backend", "bed"]

DEADLINE_S = 20.0

app = stepwell.App("wakes")
flaky_attempts: list[int] = []


@app.function("one", trigger="w/one")
async def one(ctx: stepwell.Context) -> int:
    return int(await ctx.step.run("a", lambda: 1))


@app.function("slow", trigger="w/slow")
async def slow(ctx: stepwell.Context) -> None:
    await ctx.step.run("a", asyncio.sleep, 0.05)


@app.function("sleeper", trigger="w/sleep")
async def sleeper(ctx: stepwell.Context) -> str:
    await ctx.step.sleep("nap", 0.2)
    return "awake"


@app.function("flaky", trigger="w/flaky", retries=2)
async def flaky(ctx: stepwell.Context) -> str:
    flaky_attempts.append(ctx.attempt)
    if ctx.attempt == 0:
        raise stepwell.RetryAfterError("not yet", 0.2)
    return "ok"


@app.function("debounced", trigger="w/debounce", debounce=stepwell.Debounce(period="1s"))
async def debounced(ctx: stepwell.Context) -> Any:
    return ctx.event.data["v"]


@app.function("waiter", trigger="w/wait")
async def waiter(ctx: stepwell.Context) -> Any:
    got = await ctx.step.wait_for_event("go", event="w/go", match="data.id", timeout="1h")
    return None if got is None else got.data["id"]


@app.function("serial", trigger="w/serial", concurrency=1)
async def serial(ctx: stepwell.Context) -> None:
    await ctx.step.run("a", asyncio.sleep, 0.02)


@app.function("fan", trigger="w/fan")
async def fan(ctx: stepwell.Context) -> int:
    children = [stepwell.Event("w/one", {"i": i}) for i in range(20)]
    return len(await ctx.step.send_event("out", children))


async def _until_all_ended(b: Bed, count: int) -> list[Any]:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while True:
        runs = await b.runs()
        if len(runs) >= count and all(r.ended_at is not None for r in runs):
            return runs
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, [(r.function_id, r.status) for r in runs]
        await asyncio.sleep(0.02)


async def test_every_path_that_makes_work_wakes_the_dispatch_loop(bed: BedFactory) -> None:
    flaky_attempts.clear()
    # Two slots: the slow runs saturate them, so their ends must wake the loop for the rest.
    async with bed(app, clock=SystemClock(), loops=True, concurrency=2) as b:
        for _ in range(4):
            await b.send("w/slow")
        await b.send("w/sleep")
        await b.send("w/flaky")
        for v in range(3):
            await b.send("w/debounce", {"v": v})
        await b.send("w/wait", {"id": "k"})
        for _ in range(3):
            await b.send("w/serial")
        await b.send("w/fan")
        await asyncio.sleep(0.3)  # the waiter waits by now
        await b.send("w/go", {"id": "k"})
        # 4 slow, sleeper, flaky, one debounced, waiter, 3 serial, fan and its 20 children
        runs = await _until_all_ended(b, 4 + 1 + 1 + 1 + 1 + 3 + 1 + 20)
    assert {r.status for r in runs} == {"Completed"}
    outputs = {r.function_id.removeprefix("wakes-"): r.output for r in runs}
    assert outputs["sleeper"] == "awake"
    assert outputs["flaky"] == "ok" and flaky_attempts == [0, 1]
    assert outputs["debounced"] == 2
    assert outputs["waiter"] == "k"
    assert outputs["fan"] == 20


async def test_work_dispatched_directly_costs_no_claim(bed: BedFactory) -> None:
    async with bed(app, clock=SystemClock(), loops=True) as b:
        claims = _count_claims(b.engine)
        ended: asyncio.Queue[str] = asyncio.Queue()
        b.engine.run_listeners.append(lambda run, status: ended.put_nowait(status))
        await asyncio.sleep(0.1)  # the loop's first claim, at start, is behind us
        before = claims[0]
        for _ in range(20):
            await b.send("w/one")
            assert await asyncio.wait_for(ended.get(), DEADLINE_S) == "Completed"
        await asyncio.sleep(0.1)
        # Each run was started by its event's own unit and ended in its first invocation:
        # nothing was left for the loop (before, every event and every end woke it).
        assert claims[0] - before <= 2


def _count_claims(engine: Engine) -> list[int]:
    count = [0]
    claim = engine._claim

    @functools.wraps(claim)
    def counted(tx: Tx, *, now: int, limit: int) -> Any:
        count[0] += 1
        return claim(tx, now=now, limit=limit)

    engine._claim = counted  # type: ignore[method-assign]
    return count


# -- LeasingTx.made_work, call by call -------------------------------------------------------


async def test_made_work_says_which_calls_leave_due_work_to_the_loop(
    bed: BedFactory,
) -> None:
    async with bed(app) as b:
        now = b.clock.now_ms()

        def check(tx: Tx) -> dict[str, bool]:
            seen = {}

            def leasing() -> LeasingTx:
                return LeasingTx(tx, owner="me", now=now, lease_ms=1000, capacity=1)

            quiet = leasing()
            quiet.get_run("nope")
            quiet.next_available_at()
            seen["reads"] = quiet.made_work
            direct = leasing()
            direct.enqueue(_item("i1", now))
            seen["leased"] = direct.made_work
            over = leasing()
            over.enqueue(_item("i2", now))
            over.enqueue(_item("i3", now))  # past its capacity: left for a claim
            seen["over capacity"] = over.made_work
            later = leasing()
            later.enqueue(_item("i4", now + 60_000))
            seen["due later"] = later.made_work
            acked = leasing()
            acked.ack("i1", "me", 0)
            seen["acked"] = acked.made_work
            lost = leasing()
            lost.ack("i2", "someone else", 0)
            seen["ack refused"] = lost.made_work
            released = leasing()
            released.release("i4", "me", now)
            seen["released"] = released.made_work
            return seen

        seen = await b.engine.store.run(check)
    assert seen == {
        "reads": False,
        "leased": False,
        "over capacity": True,
        "due later": True,
        "acked": False,
        "ack refused": True,
        "released": True,
    }


def test_quiet_names_are_methods_of_tx() -> None:
    """A misspelt name would make nothing quiet; a method renamed on Tx must be renamed here."""
    assert {name for name in dir(Tx) if not name.startswith("_")} >= QUIET
    assert not QUIET & {"enqueue", "ack", "release", "release_all", "unblock", "defer_start"}


def _item(item_id: str, at: int) -> QueueItem:
    return QueueItem(
        item_id=item_id,
        kind="start",
        run_id=f"run-{item_id}",
        function_id="wakes-one",
        available_at=at,
    )
