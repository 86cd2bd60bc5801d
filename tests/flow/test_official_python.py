"""Flow control registered by the official Python SDK (`inngest` on PyPI), served over HTTP:
every option it sends is parsed as configured, and the limits hold for its functions."""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any

import fastapi
import inngest
import inngest.fast_api

from tests.conformance.conftest import Backend
from tests.support import engine_server, free_port, uvicorn_app

SECONDS = datetime.timedelta(seconds=1)


def build(engine_url: str, seen: dict[str, Any]) -> fastapi.FastAPI:
    client = inngest.Inngest(
        app_id="py-flow",
        is_production=False,
        api_base_url=engine_url,
        event_api_base_url=engine_url,
    )
    seen.update(running=0, peak=0, batches=[], debounced=[])

    @client.create_function(
        fn_id="limited",
        trigger=inngest.TriggerEvent(event="flow/limited"),
        concurrency=[inngest.Concurrency(limit=1, key="event.data.user")],
        throttle=inngest.Throttle(limit=100, period=60 * SECONDS, burst=10),
        priority=inngest.Priority(run="event.data.boost"),
        timeouts=inngest.Timeouts(start=300 * SECONDS, finish=600 * SECONDS),
    )
    async def limited(ctx: inngest.Context) -> str:
        async def hold() -> str:
            seen["running"] += 1
            seen["peak"] = max(seen["peak"], seen["running"])
            await asyncio.sleep(0.03)
            seen["running"] -= 1
            return "held"

        await ctx.step.run("one", hold)
        return await ctx.step.run("two", hold)

    @client.create_function(
        fn_id="rated",
        trigger=inngest.TriggerEvent(event="flow/rated"),
        rate_limit=inngest.RateLimit(limit=1, period=60 * SECONDS, key="event.data.user"),
        idempotency="event.data.order",
        singleton=inngest.Singleton(key="event.data.user", mode="skip"),
    )
    async def rated(ctx: inngest.Context) -> str:
        return "ran"

    @client.create_function(
        fn_id="batched",
        trigger=inngest.TriggerEvent(event="flow/batched"),
        batch_events=inngest.Batch(max_size=3, timeout=SECONDS),
    )
    async def batched(ctx: inngest.Context) -> list[int]:
        seen["batches"].append([e.data["n"] for e in ctx.events])
        return [int(e.data["n"]) for e in ctx.events]  # type: ignore[call-overload]

    @client.create_function(
        fn_id="debounced",
        trigger=inngest.TriggerEvent(event="flow/debounced"),
        debounce=inngest.Debounce(period=SECONDS, timeout=10 * SECONDS),
    )
    async def debounced(ctx: inngest.Context) -> Any:
        seen["debounced"].append(ctx.event.data["v"])
        return ctx.event.data["v"]

    app = fastapi.FastAPI()
    inngest.fast_api.serve(app, client, [limited, rated, batched, debounced])
    return app


async def _wait_for(check: Any, timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_official_python_sdk_flow_control(backend: Backend) -> None:
    seen: dict[str, Any] = {}
    async with engine_server(backend.url) as served:  # type: ignore[arg-type]
        port = free_port()
        async with uvicorn_app(build(served.url, seen), port):
            state = await served.syncer.sync(f"http://127.0.0.1:{port}/api/inngest")
            assert state.ok, state.error
            engine = served.engine

            # every option the SDK registered is parsed as configured
            limited = engine.registry.get("py-flow-limited")
            assert limited is not None
            flow = limited.flow
            assert [(c.limit, c.scope) for c in flow.concurrency] == [(1, "fn")]
            assert flow.throttle is not None
            assert (flow.throttle.limit, flow.throttle.period_ms, flow.throttle.burst) == (
                100,
                60_000,
                10,
            )
            assert flow.priority is not None and flow.priority.source == "event.data.boost"
            assert (flow.start_timeout_ms, flow.finish_timeout_ms) == (300_000, 600_000)
            rated = engine.registry.get("py-flow-rated")
            assert rated is not None and rated.flow.rate_limit is not None
            assert (rated.flow.rate_limit.limit, rated.flow.rate_limit.period_ms) == (1, 60_000)
            assert rated.flow.idempotency is not None and rated.flow.singleton is not None
            assert rated.flow.singleton.mode == "skip"
            batched = engine.registry.get("py-flow-batched")
            assert batched is not None and batched.flow.batch is not None
            assert (batched.flow.batch.max_size, batched.flow.batch.timeout_ms) == (3, 1000)
            debounced = engine.registry.get("py-flow-debounced")
            assert debounced is not None and debounced.flow.debounce is not None

            # concurrency: one step at a time per user, over the protocol
            for _ in range(4):
                await engine.send_wire([{"name": "flow/limited", "data": {"user": "u1"}}])

            async def limited_done() -> bool:
                runs = await engine.store.read(lambda tx: tx.list_runs(_filter("limited")))
                return len(runs) == 4 and all(r.status == "Completed" for r in runs)

            await _wait_for(limited_done)
            assert seen["peak"] == 1

            # rate limit: the second event for the same user starts no run, and says why
            ids = [
                *await engine.send_wire({"name": "flow/rated", "data": {"user": "a", "order": 1}}),
                *await engine.send_wire({"name": "flow/rated", "data": {"user": "a", "order": 2}}),
            ]
            skips = await engine.store.read(lambda tx: tx.skips_for_event(ids[1]))
            assert [f for f, _ in skips] == ["py-flow-rated"]

            # batching: three events make one run whose handler gets all three
            await engine.send_wire([{"name": "flow/batched", "data": {"n": n}} for n in range(3)])
            await _wait_for(lambda: _true(seen["batches"]))
            assert seen["batches"] == [[0, 1, 2]]

            # debounce: a burst makes one run, with the last event
            for v in range(3):
                await engine.send_wire({"name": "flow/debounced", "data": {"v": v}})
            await _wait_for(lambda: _true(seen["debounced"]), timeout_s=10)
            await asyncio.sleep(0.3)
            assert seen["debounced"] == [2]


def _filter(short_id: str) -> Any:
    from stepwell.store.records import RunFilter

    return RunFilter(function_id=f"py-flow-{short_id}", limit=100)


async def _true(value: Any) -> Any:
    return value
