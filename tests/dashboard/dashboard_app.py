"""The app the dashboard tests run: a two-step pipeline, a sleeper and a failing function."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import stepwell

app = stepwell.App("dash")


def fetch(n: int) -> dict[str, int]:
    return {"n": n}


def double(fetched: dict[str, int]) -> int:
    return fetched["n"] * 2


@app.function("pipeline", trigger="demo/pipeline")
async def pipeline(ctx: stepwell.Context) -> dict[str, Any]:
    fetched = await ctx.step.run("fetch", fetch, ctx.event.data.get("n", 1))
    doubled = await ctx.step.run("double", double, fetched)
    return {"result": doubled}


@app.function("sleeper", trigger="demo/sleep")
async def sleeper(ctx: stepwell.Context) -> str:
    await ctx.step.run("before", fetch, 1)
    await ctx.step.sleep("nap", "1h")
    await ctx.step.run("after", fetch, 2)
    return "woke"


def explode() -> None:
    raise stepwell.NonRetriableError("the payment provider said no")


@app.function("charge", trigger="demo/charge", retries=0)
async def charge(ctx: stepwell.Context) -> None:
    await ctx.step.run("explode", explode)


@app.function("flaky", trigger="demo/flaky", retries=2)
async def flaky(ctx: stepwell.Context) -> str:
    def once_then_fine() -> str:
        if ctx.attempt == 0:
            raise stepwell.RetryAfterError("not yet", timedelta(milliseconds=20))
        return "fine"

    return await ctx.step.run("try", once_then_fine)


@app.function("limited", trigger="demo/limited", rate_limit=stepwell.RateLimit(1, "1h"))
async def limited(ctx: stepwell.Context) -> str:
    return "ran"


@app.function("waiter", trigger="demo/wait")
async def waiter(ctx: stepwell.Context) -> Any:
    approval = await ctx.step.wait_for_event(
        "approval", event="demo/approved", match="data.id", timeout="1h"
    )
    return approval.data if approval else None
