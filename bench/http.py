"""Per-step overhead over HTTP (W1), beside the in-process driver, in one run.

    python -m bench.http

Each mode runs one function of 10 sequential steps, 20 times, and reports the median time per
step from the event being accepted to the run's end. Over HTTP the Python apps are served by
uvicorn on loopback in the same process as the engine (so both share one core's event loop):
stepwell's own SDK through `stepwell.serve.fastapi`, and the official `inngest` Python SDK (dev
mode). The official TS SDK (npm `inngest`) runs in the Next.js app of `tests/official/nextjs`
(`next start`, built and cached by `tests/official/harness.py`), with its async checkpointing on
(the SDK's default: steps run back to back in one call, each posted to `/v1/checkpoint`) and off
(one call per step, like the Python SDKs). For the modes that make one call per step, the
calls of the last run are then replayed in order with nothing else running: the app alone's
time per step, which no engine can go below.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import fastapi
import uvicorn
from yarl import URL

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
RUN_TIMEOUT_S = 60.0
"""A run not ended this long after its event fails the mode (reported as not run)."""


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
        await asyncio.wait_for(fut, RUN_TIMEOUT_S)
        if n >= 3:  # warm-up
            samples.append((time.perf_counter() - start) * 1000 / STEPS)
    engine.run_listeners.remove(ended)
    return statistics.median(samples)


MODES = (
    "in-process (stepwell SDK)",
    "stepwell SDK served (FastAPI)",
    "official inngest Python SDK",
    "official TS SDK (Next.js), checkpointing on",
    "official TS SDK (Next.js), checkpointing off",
)


@asynccontextmanager
async def _served(mode: str, engine_url: str, port: int) -> AsyncIterator[str]:
    """Serve the W1 function the way ``mode`` does on ``port``; yields its serve URL."""
    if mode.startswith("official TS"):
        from tests.official.harness import start_nextjs

        app = start_nextjs(
            engine_url, port=port, mode="dev", checkpointing=mode.endswith("checkpointing on")
        )
        async with app:
            yield app.url
        return
    if mode.startswith("stepwell"):
        api = fastapi.FastAPI()
        stepwell.serve.fastapi(api, stepwell_app())
        path = "/api/stepwell"
    else:
        api = inngest_app(engine_url)
        path = "/api/inngest"
    async with _serve(api, port):
        yield f"http://127.0.0.1:{port}{path}"


ONE_CALL_PER_STEP = (
    "official inngest Python SDK",
    "official TS SDK (Next.js), checkpointing off",
)
"""Modes whose SDK runs one step per call: what the app alone costs per step is measured too."""

REPLAYS = 10


class _RunCalls:
    """A call hook of the HTTP driver keeping the calls the engine makes to the app, by run."""

    def __init__(self) -> None:
        self.by_run: dict[str, list[tuple[str, dict[str, str], bytes]]] = {}

    def __call__(self, url: str, headers: Mapping[str, str], body: bytes) -> None:
        if headers.get("X-Inngest-Step-ID") == "step":
            calls = self.by_run.setdefault(headers.get("X-Run-ID", ""), [])
            calls.append((url, dict(headers), body))

    async def replay_ms_per_step(self) -> float:
        """The calls of the last run made again, in order, ``REPLAYS`` times (after a warm-up)
        with nothing else going on: the median ms per step of what the app itself (server,
        framework, SDK replaying the memo it is sent and running one step) costs."""
        if not self.by_run:
            raise RuntimeError("no call to replay was made")
        calls = list(self.by_run.values())[-1]
        samples = []
        # The client the driver uses, so that its cost per call is counted on both sides.
        timeout = aiohttp.ClientTimeout(total=RUN_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as client:
            for n in range(REPLAYS + 2):
                start = time.perf_counter()
                for url, headers, body in calls:
                    async with client.post(
                        URL(url, encoded=True), headers=headers, data=body
                    ) as response:
                        await response.read()
                        if response.status >= 300:
                            raise RuntimeError(f"replayed call answered {response.status}")
                if n >= 2:  # warm-up
                    samples.append((time.perf_counter() - start) * 1000 / STEPS)
        return statistics.median(samples)


async def measure_mode(mode: str, db: Path) -> dict[str, Any]:
    """W1 in ``mode`` (one of ``MODES``), on a fresh SQLite file: the median ms per step, and
    for the modes of :data:`ONE_CALL_PER_STEP` the app's own ms per step."""
    if mode == MODES[0]:
        app = stepwell_app()
        async with Embedded([app], db=str(db)) as embedded:
            ms = await _measure(embedded.engine, lambda: app.send(stepwell.Event("bench/w1", {})))
            return {"ms_per_step_median": ms, "samples": RUNS}
    engine_port, app_port = _port(), _port()
    engine_url = f"http://127.0.0.1:{engine_port}"
    calls = _RunCalls()
    driver = HttpDriver(SystemClock(), call_hooks=[calls])
    async with Embedded([], db=str(db), http=driver) as embedded:
        engine = embedded.engine
        syncer = Syncer(engine, server_kind="dev", signing_key=None)
        os.environ["INNGEST_DEV"] = engine_url
        async with (
            _serve(build_app(engine, syncer=syncer), engine_port),
            _served(mode, engine_url, app_port) as url,
        ):
            state = await syncer.sync(url)
            if not state.ok:
                raise RuntimeError(f"{mode}: sync failed: {state.error}")
            ms = await _measure(
                engine, lambda: engine.send_wire([{"name": "bench/w1", "data": {}}])
            )
            result: dict[str, Any] = {"ms_per_step_median": ms, "samples": RUNS}
            if mode in ONE_CALL_PER_STEP:
                result["app_ms_per_step_median"] = await calls.replay_ms_per_step()
                result["app_samples"] = REPLAYS
            return result


async def measure(modes: tuple[str, ...] = MODES) -> dict[str, dict[str, Any]]:
    """W1 in each of ``modes``: ``{mode: {"ms_per_step_median", "samples"}}``, or
    ``{mode: {"unavailable": reason}}`` for a mode that could not run here."""
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, mode in enumerate(modes):
            try:
                result = await measure_mode(mode, Path(tmp) / f"{n}.db")
            except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
                raise
            # Reported as the reason the mode could not run; BaseException too, because the
            # harness skips (pytest's Skipped) when Node.js is missing.
            except BaseException as exc:
                results[mode] = {"unavailable": f"{type(exc).__name__}: {exc}"[:500]}
            else:
                results[mode] = result
    return results


async def main() -> None:
    results = await measure()
    print(f"W1 per-step overhead, one run of {STEPS} steps, median of {RUNS} runs:")
    for mode, result in results.items():
        if "unavailable" in result:
            print(f"  {mode:<46} could not run: {result['unavailable']}")
        else:
            alone = result.get("app_ms_per_step_median")
            app = f"   (the app alone: {alone:.3f} ms/step)" if alone is not None else ""
            print(f"  {mode:<46} {result['ms_per_step_median']:7.3f} ms/step{app}")


if __name__ == "__main__":
    asyncio.run(main())
