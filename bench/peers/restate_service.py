"""The Restate service of the benchmark, an ASGI app served by hypercorn (as the SDK's docs do).

python -m hypercorn bench.peers.restate_service:app --bind 127.0.0.1:9080
"""

from __future__ import annotations

import restate

bench = restate.Service("Bench")


async def value(i: int) -> int:
    return i


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


app = restate.app(services=[bench])
