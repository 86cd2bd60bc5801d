"""A served call runs steps back to back when the engine allows it (``ctx.qi_id``): the answer
carries every finished step, then the run's end, a suspension, or nothing (budget spent)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi
import pytest

import stepwell
from stepwell.errors import NonRetriableError
from stepwell.sdk import serve
from stepwell.sdk.serve import _handler
from tests.serve.servers import uvicorn_thread
from tests.support import Served, engine_server

app = stepwell.App("inline")
ran: Counter[str] = Counter()


def _count(name: str, value: Any = None) -> Any:
    ran[name] += 1
    return value


@app.function("ten", trigger="inline/ten")
async def ten(ctx: stepwell.Context) -> int:
    total = 0
    for i in range(10):
        total += await ctx.step.run(f"s{i}", _count, f"s{i}", i)
    return total


@app.function("slow", trigger="inline/slow")
async def slow(ctx: stepwell.Context) -> int:
    async def step(i: int) -> int:
        ran[f"slow{i}"] += 1
        await asyncio.sleep(0.1)
        return i

    return sum([await ctx.step.run(f"w{i}", step, i) for i in range(6)])


@app.function("fails", trigger="inline/fails", retries=0)
async def fails(ctx: stepwell.Context) -> None:
    await ctx.step.run("a", _count, "fa")
    await ctx.step.run("b", _count, "fb")
    raise NonRetriableError("gave up after b")


@app.function("mixed", trigger="inline/mixed")
async def mixed(ctx: stepwell.Context) -> list[Any]:
    before = await ctx.step.run("before", _count, "before", 1)
    ids = await ctx.step.send_event("tell", stepwell.Event("inline/told", {"n": 1}))
    await ctx.step.sleep("nap", "1s")
    return [before, len(ids), await ctx.step.run("after", _count, "after", 2)]


@asynccontextmanager
async def _served(tmp_path: Path, *, checkpointing: bool = True) -> AsyncIterator[Any]:
    web = fastapi.FastAPI()
    calls: list[str] = []

    @web.middleware("http")
    async def count_calls(request: fastapi.Request, call_next: Any) -> Any:
        if request.method == "POST":
            calls.append(request.url.query)
        return await call_next(request)

    async with engine_server(tmp_path / "e.db", checkpointing=checkpointing) as served:
        serve.fastapi(web, app, mode="dev", api_base_url=served.url, event_api_base_url=served.url)
        with uvicorn_thread(web) as base:
            state = await served.syncer.sync(f"{base}/api/stepwell")
            assert state.ok, state.error
            yield served, calls


async def _run(served: Served, name: str, timeout: float = 20) -> Any:
    engine = served.engine
    [event_id] = await engine.send_wire([{"name": name, "data": {}}])
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        [run] = await engine.store.read(lambda tx: tx.runs_for_event(event_id)) or [None]
        if run is not None and run.status in {"Completed", "Failed", "Cancelled"}:
            memo = await engine.store.read(lambda tx, r=run.run_id: tx.get_memo(r))
            return run, [m.step_id for m in memo]
        assert asyncio.get_running_loop().time() < deadline, f"{name} did not finish"
        await asyncio.sleep(0.05)


@pytest.fixture(autouse=True)
def _fresh() -> None:
    ran.clear()


async def test_consecutive_steps_run_in_one_call_and_are_recorded_in_order(
    tmp_path: Path,
) -> None:
    async with _served(tmp_path) as (served, calls):
        run, steps = await _run(served, "inline/ten")
        assert (run.status, run.output) == ("Completed", 45)
        assert steps == [f"s{i}" for i in range(10)]
        assert len(calls) == 1
        assert all(ran[f"s{i}"] == 1 for i in range(10))


async def test_a_call_answers_once_its_time_budget_is_spent(tmp_path: Path) -> None:
    async with _served(tmp_path) as (served, calls):
        run, steps = await _run(served, "inline/slow")
        assert (run.status, run.output) == ("Completed", 15)
        assert steps == [f"w{i}" for i in range(6)]
        # 6 steps of 0.1 s with a 0.25 s budget: answered with some steps, then called again
        assert 2 <= len(calls) <= 6, calls
        assert all(ran[f"slow{i}"] == 1 for i in range(6))
        assert _handler.INLINE_BUDGET_S == 0.25


async def test_steps_run_before_the_handler_raised_are_kept(tmp_path: Path) -> None:
    async with _served(tmp_path) as (served, _):
        run, steps = await _run(served, "inline/fails")
        assert run.status == "Failed"
        assert "gave up after b" in run.error["message"]
        assert steps == ["a", "b"]
        assert (ran["fa"], ran["fb"]) == (1, 1)  # the replay that reported the error memoized them


async def test_sent_events_and_a_sleep_after_inline_steps(tmp_path: Path) -> None:
    async with _served(tmp_path) as (served, _):
        run, steps = await _run(served, "inline/mixed")
        assert (run.status, run.output) == ("Completed", [1, 1, 2])
        assert steps == ["before", "tell", "nap", "after"]
        told = await served.engine.store.read(lambda tx: tx.list_events("inline/told"))
        assert len(told) == 1
        assert (ran["before"], ran["after"]) == (1, 1)


async def test_an_engine_that_does_not_offer_it_gets_one_step_per_call(tmp_path: Path) -> None:
    async with _served(tmp_path, checkpointing=False) as (served, calls):
        run, steps = await _run(served, "inline/ten")
        assert (run.status, run.output) == ("Completed", 45)
        assert len(steps) == 10
        assert len(calls) == 11
