"""The app every adapter serves in these tests: one function per kind of step and failure."""

from __future__ import annotations

from typing import Any

import stepwell

app = stepwell.App("serve-test")


def explode() -> None:
    raise ValueError("boom")


def refuse() -> None:
    raise stepwell.NonRetriableError("never")


@app.function("sequential", trigger="demo/go")
async def sequential(ctx: stepwell.Context) -> str:
    a = await ctx.step.run("a", lambda: "A")
    return await ctx.step.run("b", lambda: a + "B")


@app.function("sync-sequential", trigger="demo/go-sync")
def sync_sequential(ctx: Any) -> str:
    a = ctx.step.run("a", lambda: "A")
    return str(ctx.step.run("b", lambda: a + "B"))


@app.function("sleeper", trigger="demo/sleep")
async def sleeper(ctx: stepwell.Context) -> str:
    await ctx.step.sleep("nap", "1h")
    await ctx.step.sleep_until("until", "2030-01-01T09:00:00.123Z")
    return "slept"


@app.function("waiter", trigger="demo/wait")
async def waiter(ctx: stepwell.Context) -> Any:
    got = await ctx.step.wait_for_event(
        "approval", event="app/approved", timeout="3d", if_exp="event.data.id == async.data.id"
    )
    return dict(got.data) if got else None


@app.function("child")
async def child(ctx: stepwell.Context) -> Any:
    return dict(ctx.event.data)


@app.function("invoker", trigger="demo/invoke")
async def invoker(ctx: stepwell.Context) -> Any:
    return await ctx.step.invoke("call-child", "child", {"x": 1}, timeout="1h")


@app.function("parallel", trigger="demo/parallel")
async def parallel(ctx: stepwell.Context) -> list[Any]:
    results = await ctx.step.parallel(
        lambda: ctx.step.run("p1", lambda: 1),
        lambda: ctx.step.run("p2", lambda: 2),
    )
    return list(results)


async def _on_flaky_failure(ctx: stepwell.Context) -> str:
    return "noted"


@app.function("flaky", trigger="demo/flaky", retries=2, on_failure=_on_flaky_failure)
async def flaky(ctx: stepwell.Context) -> None:
    await ctx.step.run("boom", explode)


@app.function("fatal", trigger="demo/fatal")
async def fatal(ctx: stepwell.Context) -> None:
    await ctx.step.run("refuse", refuse)


@app.function("sender", trigger="demo/send")
async def sender(ctx: stepwell.Context) -> list[str]:
    return await ctx.step.send_event("notify", [stepwell.Event("demo/notified", {"n": 1})])


@app.function("crash", trigger="demo/crash")
async def crash(ctx: stepwell.Context) -> None:
    raise RuntimeError("handler broke")


@app.function("reject", trigger="demo/reject")
async def reject(ctx: stepwell.Context) -> None:
    raise stepwell.NonRetriableError("bad input")


@app.function("later", trigger="demo/later")
async def later(ctx: stepwell.Context) -> None:
    raise stepwell.RetryAfterError("not yet", 30)
