"""The Restate services of the benchmark, an ASGI app served by hypercorn (as the SDK's docs do).

`Bench` has W1–W4's handlers and W5's `sleeper` (`ctx.sleep` until a due time, then one `ctx.run`
that reads the clock); the workflow `Waiter` is W7's: its `run` waits on the durable promise
`approve`, which its shared handler `approve` resolves (a workflow signal, keyed by the workflow's
id as W7's events are by `data.id`).

python -m hypercorn bench.peers.restate_service:app --bind 127.0.0.1:9080
"""

from __future__ import annotations

import time
from datetime import timedelta

import restate

bench = restate.Service("Bench")


async def value(i: int) -> int:
    return i


async def monotonic() -> float:
    return time.monotonic()


@bench.handler("tenSteps")
async def ten_steps(ctx: restate.Context, n: int) -> int:
    total = 0
    for i in range(10):
        total += await ctx.run_typed(f"s{i}", value, i=i)
    return total


@bench.handler("threeSteps")
async def three_steps(ctx: restate.Context, n: int) -> int:
    a = await ctx.run_typed("a", value, i=1)
    b = await ctx.run_typed("b", value, i=2)
    return a + b + await ctx.run_typed("c", value, i=3)


@bench.handler("firstStep")
async def first_step(ctx: restate.Context, n: int) -> float:
    """W3: the machine's monotonic clock when the first step's body started."""
    return await ctx.run_typed("started", monotonic)


@bench.handler("child")
async def child(ctx: restate.Context, i: int) -> int:
    return await ctx.run_typed("a", value, i=i)


@bench.handler("fanOut")
async def fan_out(ctx: restate.Context, children: int) -> list[str]:
    """W4: send `children` one-way invocations of `child`; their invocation ids."""
    handles = [ctx.service_send(child, i) for i in range(children)]
    return [await handle.invocation_id() for handle in handles]


async def wall_ms() -> float:
    return time.time() * 1000


@bench.handler("sleeper")
async def sleeper(ctx: restate.Context, due_ms: float) -> float:
    """W5: sleep until `due_ms` (ms since the epoch); how late the next step started, ms."""
    await ctx.sleep(timedelta(milliseconds=max(0.0, due_ms - time.time() * 1000)))
    return await ctx.run_typed("woke", wall_ms) - due_ms


waiter = restate.Workflow("Waiter")


@waiter.main()
async def run(ctx: restate.WorkflowContext) -> int:
    """W7: wait for this workflow's `approve` promise."""
    return await ctx.promise("approve", type_hint=int).value()


@waiter.handler()
async def approve(ctx: restate.WorkflowSharedContext, n: int) -> None:
    await ctx.promise("approve", type_hint=int).resolve(n)


app = restate.app(services=[bench, waiter])
