"""A FastAPI app serving Inngest functions with the official Python SDK (``inngest==0.5.19``).

stepwell's tests start it with uvicorn (see ``tests/official/harness.py``) and point it at
the engine through the SDK's own environment variables. The functions mirror the Next.js
app in ``../nextjs/inngest/functions.ts``: same ids, triggers and return values, so one
scenario table can drive both.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any

import fastapi
import inngest
import inngest.fast_api

client = inngest.Inngest(app_id="py-app")


def _now_ms() -> int:
    return int(time.time() * 1000)


@client.create_function(fn_id="sequential", trigger=inngest.TriggerEvent(event="test/sequential"))
async def sequential(ctx: inngest.Context) -> str:
    """Two sequential steps: returns ``data.a + data.b`` ("A" + "B" by default)."""

    async def first() -> str:
        return str(ctx.event.data.get("a", "A"))

    a = await ctx.step.run("a", first)

    async def second() -> str:
        return a + str(ctx.event.data.get("b", "B"))

    return await ctx.step.run("b", second)


@client.create_function(fn_id="sleeper", trigger=inngest.TriggerEvent(event="test/sleeper"))
async def sleeper(ctx: inngest.Context) -> str:
    await ctx.step.sleep("nap", datetime.timedelta(seconds=2))
    return "slept"


@client.create_function(fn_id="waiter", trigger=inngest.TriggerEvent(event="test/waiter"))
async def waiter(ctx: inngest.Context) -> object:
    """Returns the data of the matching ``test/approve`` event, or ``None`` on timeout."""
    approval = await ctx.step.wait_for_event(
        "w",
        event="test/approve",
        if_exp="event.data.id == async.data.id",
        timeout=datetime.timedelta(hours=1),
    )
    return dict(approval.data) if approval is not None else None


@client.create_function(
    fn_id="waiter-timeout", trigger=inngest.TriggerEvent(event="test/waiter-timeout")
)
async def waiter_timeout(ctx: inngest.Context) -> dict[str, bool]:
    approval = await ctx.step.wait_for_event(
        "w",
        event="test/approve",
        if_exp="event.data.id == async.data.id",
        timeout=datetime.timedelta(seconds=2),
    )
    return {"timed_out": approval is None}


@client.create_function(fn_id="child", trigger=inngest.TriggerEvent(event="test/child"))
async def child(ctx: inngest.Context) -> object:
    """Returns its event's data, so fan-out and invoke tests can see what arrived."""
    return dict(ctx.event.data)


@client.create_function(fn_id="fanout", trigger=inngest.TriggerEvent(event="test/fanout"))
async def fanout(ctx: inngest.Context) -> dict[str, int]:
    parent = ctx.event.data.get("id")
    ids = await ctx.step.send_event(
        "fan",
        [inngest.Event(name="test/child", data={"parent": parent, "i": i}) for i in range(3)],
    )
    return {"sent": len(ids)}


@client.create_function(fn_id="invoker", trigger=inngest.TriggerEvent(event="test/invoker"))
async def invoker(ctx: inngest.Context) -> object:
    return await ctx.step.invoke(
        "call",
        function=child,
        data={"via": "invoke", "n": ctx.event.data.get("n", 1)},
    )


@client.create_function(fn_id="flaky", retries=3, trigger=inngest.TriggerEvent(event="test/flaky"))
async def flaky(ctx: inngest.Context) -> dict[str, int]:
    """The step fails on attempts 0 and 1 and succeeds on attempt 2."""

    async def shaky() -> dict[str, int]:
        if ctx.attempt < 2:
            raise RuntimeError(f"flaky step fails on attempt {ctx.attempt}")
        return {"attempt": ctx.attempt}

    return await ctx.step.run("shaky", shaky)


async def _fatal_failed(ctx: inngest.Context) -> dict[str, bool]:
    return {"handled": True}


@client.create_function(
    fn_id="fatal", on_failure=_fatal_failed, trigger=inngest.TriggerEvent(event="test/fatal")
)
async def fatal(ctx: inngest.Context) -> None:
    raise inngest.NonRetriableError("fatal: do not retry")


@client.create_function(fn_id="parallel", trigger=inngest.TriggerEvent(event="test/parallel"))
async def parallel(ctx: inngest.Context) -> list[int]:
    async def one() -> int:
        return 1

    async def two() -> int:
        return 2

    async def three() -> int:
        return 3

    results = await ctx.group.parallel(
        (
            lambda: ctx.step.run("p1", one),
            lambda: ctx.step.run("p2", two),
            lambda: ctx.step.run("p3", three),
        )
    )
    return list(results)


@client.create_function(
    fn_id="cancellable",
    cancel=[inngest.Cancel(event="test/cancel", if_exp="event.data.id == async.data.id")],
    trigger=inngest.TriggerEvent(event="test/cancellable"),
)
async def cancellable(ctx: inngest.Context) -> str:
    """Sleeps for an hour unless a ``test/cancel`` event with the same ``data.id`` arrives."""
    await ctx.step.sleep("long", datetime.timedelta(hours=1))
    return "woke"


@client.create_function(
    fn_id="limited",
    concurrency=[inngest.Concurrency(limit=1)],
    trigger=inngest.TriggerEvent(event="test/limited"),
)
async def limited(ctx: inngest.Context) -> dict[str, int]:
    """At most one run at a time; the step records when it ran (epoch ms)."""

    async def work() -> dict[str, int]:
        started = _now_ms()
        await asyncio.sleep(0.3)
        return {"started": started, "finished": _now_ms()}

    return await ctx.step.run("work", work)


@client.create_function(fn_id="cron", trigger=inngest.TriggerCron(cron="* * * * *"))
async def cron(ctx: inngest.Context) -> str:
    return "tick"


functions: list[inngest.Function[Any]] = [
    sequential,
    sleeper,
    waiter,
    waiter_timeout,
    fanout,
    child,
    invoker,
    flaky,
    fatal,
    parallel,
    cancellable,
    limited,
    cron,
]

app = fastapi.FastAPI()
inngest.fast_api.serve(app, client, functions)
