"""The official Python SDK (`inngest` on PyPI) runs its functions on stepwell unchanged."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable
from typing import Any

import fastapi
import inngest
import inngest.fast_api
import pytest

from tests.support import free_port, uvicorn_app

SEEN: dict[str, list[Any]] = {}


def build(
    engine_url: str, *, signing_key: str | None = None, event_key: str | None = None
) -> fastapi.FastAPI:
    client = inngest.Inngest(
        app_id="py-app",
        is_production=signing_key is not None,
        api_base_url=engine_url,
        event_api_base_url=engine_url,
        signing_key=signing_key,
        event_key=event_key,
    )

    @client.create_function(fn_id="sequential", trigger=inngest.TriggerEvent(event="py/sequential"))
    async def sequential(ctx: inngest.Context) -> str:
        async def a() -> str:
            return "A"

        first = await ctx.step.run("a", a)

        async def b() -> str:
            return first + "B"

        return await ctx.step.run("b", b)

    @client.create_function(fn_id="sleeper", trigger=inngest.TriggerEvent(event="py/sleep"))
    async def sleeper(ctx: inngest.Context) -> str:
        await ctx.step.sleep("nap", datetime.timedelta(seconds=1))
        return "slept"

    @client.create_function(fn_id="waiter", trigger=inngest.TriggerEvent(event="py/wait"))
    async def waiter(ctx: inngest.Context) -> Any:
        got = await ctx.step.wait_for_event(
            "w",
            event="py/approve",
            if_exp="event.data.id == async.data.id",
            timeout=datetime.timedelta(seconds=2),
        )
        return got.data if got else None

    @client.create_function(fn_id="child", trigger=inngest.TriggerEvent(event="py/child"))
    async def child(ctx: inngest.Context) -> Any:
        return dict(ctx.event.data)

    @client.create_function(fn_id="fanout", trigger=inngest.TriggerEvent(event="py/fanout"))
    async def fanout(ctx: inngest.Context) -> int:
        ids = await ctx.step.send_event(
            "fan", [inngest.Event(name="py/child", data={"n": n}) for n in range(3)]
        )
        return len(ids)

    @client.create_function(fn_id="invoker", trigger=inngest.TriggerEvent(event="py/invoke"))
    async def invoker(ctx: inngest.Context) -> Any:
        return await ctx.step.invoke("call", function=child, data={"x": 1})

    @client.create_function(
        fn_id="flaky", trigger=inngest.TriggerEvent(event="py/flaky"), retries=3
    )
    async def flaky(ctx: inngest.Context) -> str:
        async def attempt() -> str:
            SEEN.setdefault("flaky", []).append(ctx.attempt)
            if ctx.attempt < 1:
                raise inngest.RetryAfterError("not yet", datetime.timedelta(seconds=1))
            return "ok"

        return await ctx.step.run("try", attempt)

    async def on_fatal_failure(ctx: inngest.Context) -> None:
        SEEN.setdefault("fatal-failure", []).append(ctx.event.data["error"]["message"])

    @client.create_function(
        fn_id="fatal", trigger=inngest.TriggerEvent(event="py/fatal"), on_failure=on_fatal_failure
    )
    async def fatal(ctx: inngest.Context) -> None:
        raise inngest.NonRetriableError("no way")

    @client.create_function(fn_id="parallel", trigger=inngest.TriggerEvent(event="py/parallel"))
    async def parallel(ctx: inngest.Context) -> Any:
        def make(n: int) -> Callable[[], Awaitable[int]]:
            async def step() -> int:
                async def body() -> int:
                    return n * 10

                return await ctx.step.run(f"p{n}", body)

            return step

        return list(await ctx.group.parallel(tuple(make(n) for n in range(3))))

    @client.create_function(
        fn_id="cancellable",
        trigger=inngest.TriggerEvent(event="py/cancellable"),
        cancel=[inngest.Cancel(event="py/cancel", if_exp="event.data.id == async.data.id")],
    )
    async def cancellable(ctx: inngest.Context) -> str:
        await ctx.step.sleep("long", datetime.timedelta(hours=1))
        return "not cancelled"

    app = fastapi.FastAPI()
    functions = [
        sequential,
        sleeper,
        waiter,
        child,
        fanout,
        invoker,
        flaky,
        fatal,
        parallel,
        cancellable,
    ]
    inngest.fast_api.serve(app, client, functions)
    return app


async def _runs(engine, event_id: str, n: int = 1, timeout: float = 15) -> list[Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        runs = await engine.store.read(lambda tx: tx.runs_for_event(event_id))
        if len(runs) >= n and all(r.status in {"Completed", "Failed", "Cancelled"} for r in runs):
            return runs
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"runs of {event_id} did not finish: {runs}")
        await asyncio.sleep(0.05)


async def _send(engine, name: str, data: dict[str, Any] | None = None) -> str:
    [event_id] = await engine.send_wire([{"name": name, "data": data or {}}])
    return event_id


@pytest.mark.parametrize("mode", ["dev", "cloud"])
async def test_official_python_sdk_scenarios(engine_at, mode: str) -> None:
    key = "signkey-prod-" + "ab" * 32 if mode == "cloud" else None
    SEEN.clear()
    async with engine_at(signing_key=key, event_keys=["evkey"] if key else None) as served:
        port = free_port()
        app = build(served.url, signing_key=key, event_key="evkey" if key else None)
        async with uvicorn_app(app, port):
            state = await served.syncer.sync(f"http://127.0.0.1:{port}/api/inngest")
            assert state.ok, state.error
            engine = served.engine
            assert "py-app-sequential" in {s.function_id for s in engine.registry.all()}

            [run] = await _runs(engine, await _send(engine, "py/sequential"))
            assert (run.status, run.output) == ("Completed", "AB")

            [run] = await _runs(engine, await _send(engine, "py/sleep"))
            assert (run.status, run.output) == ("Completed", "slept")

            waiting = await _send(engine, "py/wait", {"id": 7})
            timing_out = await _send(engine, "py/wait", {"id": 8})
            await asyncio.sleep(0.5)
            await _send(engine, "py/approve", {"id": 7, "ok": True})
            [run] = await _runs(engine, waiting)
            assert run.output == {"id": 7, "ok": True}
            [run] = await _runs(engine, timing_out)
            assert (run.status, run.output) == ("Completed", None)

            [run] = await _runs(engine, await _send(engine, "py/fanout"))
            assert run.output == 3
            children = await engine.store.read(lambda tx: tx.list_events("py/child"))
            assert len(children) == 3

            [run] = await _runs(engine, await _send(engine, "py/invoke"))
            assert {k: v for k, v in run.output.items() if k != "_inngest"} == {"x": 1}

            [run] = await _runs(engine, await _send(engine, "py/flaky"))
            assert (run.status, run.output) == ("Completed", "ok")
            assert SEEN["flaky"] == [0, 1]

            [run] = await _runs(engine, await _send(engine, "py/fatal"))
            assert run.status == "Failed"
            for _ in range(100):
                if SEEN.get("fatal-failure"):
                    break
                await asyncio.sleep(0.05)
            assert SEEN["fatal-failure"] == ["no way"]

            [run] = await _runs(engine, await _send(engine, "py/parallel"))
            assert run.output == [0, 10, 20]

            cancellable = await _send(engine, "py/cancellable", {"id": 3})
            await asyncio.sleep(0.3)
            await _send(engine, "py/cancel", {"id": 3})
            [run] = await _runs(engine, cancellable)
            assert run.status == "Cancelled"
