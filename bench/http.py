"""Per-step overhead over HTTP (W1), beside the in-process driver, in one run.

    python -m bench.http

Each mode runs one function of 10 sequential steps, 20 times, and reports the median time per
step from the event being accepted to the run's end. Over HTTP the app is served by uvicorn on
loopback in the same process as the engine (so both share one core's event loop): stepwell's
own SDK through `stepwell.serve.fastapi`, and the official `inngest` Python SDK (dev mode).
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi
import uvicorn

import stepwell
import stepwell.serve
from stepwell.clock import SystemClock
from stepwell.embedded import Embedded
from stepwell.engine.api import build_app
from stepwell.engine.drivers.http import HttpDriver
from stepwell.engine.engine import Engine
from stepwell.engine.sync import Syncer
from stepwell.store.records import RunRecord

RUNS = 20
STEPS = 10


async def _value(i: int) -> int:
    return i


def stepwell_app() -> stepwell.App:
    app = stepwell.App("bench-http")

    @app.function("ten-steps", trigger="bench/w1")
    async def ten(ctx: stepwell.Context) -> int:
        total = 0
        for i in range(STEPS):
            total += await ctx.step.run(f"s{i}", _value, i)
        return total

    return app


def inngest_app(engine_url: str) -> fastapi.FastAPI:
    import inngest
    import inngest.fast_api

    client = inngest.Inngest(
        app_id="bench-py",
        is_production=False,
        api_base_url=engine_url,
        event_api_base_url=engine_url,
    )

    @client.create_function(fn_id="ten-steps", trigger=inngest.TriggerEvent(event="bench/w1"))
    async def ten(ctx: inngest.Context) -> int:
        total = 0
        for i in range(STEPS):

            async def step(i: int = i) -> int:
                return i

            total += await ctx.step.run(f"s{i}", step)
        return total

    api = fastapi.FastAPI()
    inngest.fast_api.serve(api, client, [ten])
    return api


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def _serve(app: Any, port: int) -> AsyncIterator[None]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


async def _measure(engine: Engine, send: Callable[[], Any]) -> float:
    done: dict[str, asyncio.Future[None]] = {}

    def ended(run: RunRecord, status: str) -> None:
        fut = done.get(run.event_id)
        if fut is not None and not fut.done():
            fut.set_result(None)

    engine.run_listeners.append(ended)
    samples = []
    for n in range(RUNS + 3):
        start = time.perf_counter()
        [event_id] = await send()
        fut = done.setdefault(event_id, asyncio.get_running_loop().create_future())
        await fut
        if n >= 3:  # warm-up
            samples.append((time.perf_counter() - start) * 1000 / STEPS)
    engine.run_listeners.remove(ended)
    return statistics.median(samples)


async def main() -> None:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        app = stepwell_app()
        async with Embedded([app], db=str(Path(tmp) / "inprocess.db")) as embedded:
            results["in-process (stepwell SDK)"] = await _measure(
                embedded.engine, lambda: app.send(stepwell.Event("bench/w1", {}))
            )
        for mode in ("stepwell SDK served (FastAPI)", "official inngest Python SDK"):
            engine_port, app_port = _port(), _port()
            engine_url = f"http://127.0.0.1:{engine_port}"
            http = HttpDriver(SystemClock())
            async with Embedded([], db=str(Path(tmp) / f"{app_port}.db"), http=http) as embedded:
                engine = embedded.engine
                syncer = Syncer(engine, server_kind="dev", signing_key=None)
                os.environ["INNGEST_DEV"] = engine_url
                if mode.startswith("stepwell"):
                    served = stepwell_app()
                    api = fastapi.FastAPI()
                    stepwell.serve.fastapi(api, served)
                    path = "/api/stepwell"
                else:
                    api = inngest_app(engine_url)
                    path = "/api/inngest"
                async with (
                    _serve(build_app(engine, syncer=syncer), engine_port),
                    _serve(api, app_port),
                ):
                    state = await syncer.sync(f"http://127.0.0.1:{app_port}{path}")
                    if not state.ok:
                        raise RuntimeError(f"{mode}: sync failed: {state.error}")
                    results[mode] = await _measure(
                        engine, lambda e=engine: e.send_wire([{"name": "bench/w1", "data": {}}])
                    )
    print(f"W1 per-step overhead, one run of {STEPS} steps, median of {RUNS} runs:")
    for mode, ms in results.items():
        print(f"  {mode:<34} {ms:7.3f} ms/step")


if __name__ == "__main__":
    asyncio.run(main())
