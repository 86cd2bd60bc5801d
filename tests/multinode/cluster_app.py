"""The app every node of tests/multinode/test_nodes.py serves in-process.

Each step body appends ``<node> <run_id> <step>`` to ``$CLUSTER_LOG``, so the test can tell
which node ran what, and how many times.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import stepwell

app = stepwell.App("cluster")
NODE = os.environ.get("CLUSTER_NODE", "?")


def record(run_id: str, step: str, value: Any) -> Any:
    # One short O_APPEND write is atomic: a killed process leaves whole lines.
    fd = os.open(os.environ["CLUSTER_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{NODE} {run_id} {step}\n".encode())
    finally:
        os.close(fd)
    return value


@app.function("quote")
async def quote(ctx: stepwell.Context) -> int:
    n = ctx.event.data["n"]
    return int(await ctx.step.run("price", record, ctx.run_id, "price", 10 * n))


@app.function("order", trigger="cluster/order")
async def order(ctx: stepwell.Context) -> dict[str, Any]:
    n = ctx.event.data["n"]
    loaded = await ctx.step.run("load", record, ctx.run_id, "load", n)
    await ctx.step.sleep("nap", "1s")
    shipped = await ctx.step.wait_for_event(
        "shipped", event="cluster/shipped", match="data.n", timeout="5m"
    )
    items = [stepwell.Event("cluster/item", {"n": n, "i": i}) for i in range(2)]
    await ctx.step.send_event("fan-out", items)
    price = await ctx.step.invoke("quote", quote, {"n": n})
    total = await ctx.step.run("total", record, ctx.run_id, "total", loaded + price)
    return {"n": n, "tracking": shipped.data["tracking"] if shipped else None, "total": total}


@app.function(
    "audit",
    trigger=stepwell.Trigger(
        "inngest/function.finished", if_exp="event.data.function_id == 'cluster-nothing'"
    ),
)
async def audit(ctx: stepwell.Context) -> None:
    """Listens to every run's end, so that each stores its ``inngest/function.finished`` (the
    test counts them: one per run); its ``if`` holds for no run, so it starts none."""


@app.function("item", trigger="cluster/item")
async def item(ctx: stepwell.Context) -> str:
    data = ctx.event.data
    return str(await ctx.step.run("pack", record, ctx.run_id, "pack", f"{data['n']}.{data['i']}"))


@app.function("long", trigger="cluster/long")
async def long(ctx: stepwell.Context) -> int:
    for i in range(8):
        await ctx.step.run(f"s{i}", _slow, ctx.run_id, f"s{i}")
    await ctx.step.sleep("nap", "1s")
    return int(await ctx.step.run("end", record, ctx.run_id, "end", ctx.event.data["n"]))


@app.function("hold", trigger="cluster/hold")
async def hold(ctx: stepwell.Context) -> int:
    await ctx.step.run("hold", _hold, ctx.run_id)
    return int(ctx.event.data["n"])


async def _hold(run_id: str) -> str:
    # On entry: the step is still running for 8 s, so it outlasts a 5 s grace even when the
    # runs entered it up to 3 s apart (a busy machine).
    record(run_id, "hold", None)
    await asyncio.sleep(8)
    return "held"


async def _slow(run_id: str, step: str) -> str:
    await asyncio.sleep(0.2)
    return str(record(run_id, step, step))
