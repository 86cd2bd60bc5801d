"""stepwell embedded (SQLite): the bench app and the workloads that run in the caller's process.

W1 per-step overhead, W2 throughput, W3 start latency and W4 fan-out run here, on one engine; W5
(sleeping runs) and W7 (waits) need a process of their own, see :mod:`bench.capacity`, and W6
(ingest over HTTP) two, see :mod:`bench.ingest`. Durability stays at its defaults: SQLite in WAL
mode with ``synchronous=FULL``.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import stepwell
from bench.sizes import Sizes
from bench.stats import fan_out_result, latency_result, w1_result, w2_result
from stepwell.embedded import Embedded
from stepwell.store.records import RunRecord

APP_ID = "bench"
SETTINGS = "stepwell embedded, SQLite in WAL mode, synchronous=FULL (durable)"


class Probe:
    """What the bench functions' step bodies report, read by the workloads in this process."""

    def __init__(self) -> None:
        self.first_step: dict[int, float] = {}
        """W3: event number → ``time.perf_counter()`` when its run's first step started."""
        self.woke_late_ms: list[float] = []
        """W5: per run, ms between the due time of its sleep and its next step's start."""
        self.asleep = 0
        """W5: runs whose step before the sleep ran."""

    def started(self, n: int) -> int:
        self.first_step[n] = time.perf_counter()
        return n

    def going_to_sleep(self) -> None:
        self.asleep += 1

    def woke(self, due_ms: int) -> None:
        self.woke_late_ms.append(time.time() * 1000 - due_ms)


def build_app(probe: Probe | None = None) -> stepwell.App:
    """The bench app: one function per workload; other benches extend it."""
    probe = probe or Probe()
    app = stepwell.App(APP_ID)

    @app.function("ten-steps", trigger="bench/w1")
    async def ten_steps(ctx: stepwell.Context) -> int:
        total = 0
        for i in range(10):
            total += await ctx.step.run(f"s{i}", _value, i)
        return total

    @app.function("three-steps", trigger="bench/w2")
    async def three_steps(ctx: stepwell.Context) -> int:
        a = await ctx.step.run("a", _value, 1)
        b = await ctx.step.run("b", _value, 2)
        return a + b + await ctx.step.run("c", _value, 3)

    @app.function("w3-start", trigger="bench/w3")
    async def first_step(ctx: stepwell.Context) -> int:
        return await ctx.step.run("a", probe.started, int(ctx.event.data["n"]))

    @app.function("w4-parent", trigger="bench/w4")
    async def parent(ctx: stepwell.Context) -> int:
        count = int(ctx.event.data["children"])
        children = [stepwell.Event("bench/w4-child", {"i": i}) for i in range(count)]
        return len(await ctx.step.send_event("fan-out", children))

    @app.function("w4-child", trigger="bench/w4-child")
    async def child(ctx: stepwell.Context) -> int:
        return await ctx.step.run("a", _value, int(ctx.event.data["i"]))

    @app.function("w5-sleeper", trigger="bench/w5")
    async def sleeper(ctx: stepwell.Context) -> None:
        due = int(ctx.event.data["due"])
        await ctx.step.run("before", probe.going_to_sleep)
        await ctx.step.sleep_until("nap", due)
        await ctx.step.run("after", probe.woke, due)

    @app.function("w7-waiter", trigger="bench/w7")
    async def waiter(ctx: stepwell.Context) -> bool:
        match = await ctx.step.wait_for_event(
            "approval", event="bench/w7-approve", match="data.id", timeout="1h"
        )
        return match is not None

    return app


async def _value(i: int) -> int:
    return i


def full_id(function: str) -> str:
    return f"{APP_ID}-{function}"


class Ends:
    """A run listener: counts ended runs per function and lets workloads await them."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self._changed = asyncio.Event()
        self._futures: dict[str, asyncio.Future[None]] = {}
        self._early: set[str] = set()

    def __call__(self, run: RunRecord, status: str) -> None:
        self.count[run.function_id] += 1
        self._changed.set()
        future = self._futures.pop(run.event_id, None)
        if future is None:
            self._early.add(run.event_id)
        elif not future.done():
            future.set_result(None)

    async def of_event(self, event_id: str, timeout_s: float = 60) -> None:
        """Until the run started by ``event_id`` has ended."""
        if event_id in self._early:
            self._early.discard(event_id)
            return
        future = asyncio.get_running_loop().create_future()
        self._futures[event_id] = future
        await asyncio.wait_for(future, timeout_s)

    async def until(self, function: str, count: int, timeout_s: float = 600) -> None:
        """Until ``count`` runs of ``function`` (its id in the bench app) have ended."""
        deadline = time.monotonic() + timeout_s
        while self.count[full_id(function)] < count:
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.count[full_id(function)]}/{count} {function} runs ended")
            await asyncio.wait_for(self._changed.wait(), left)


# -- the workloads --------------------------------------------------------------------------------


async def w1_per_step(app: stepwell.App, ends: Ends, runs: int) -> dict[str, Any]:
    """W1: one run of 10 sequential steps at a time; median ms per step over ``runs`` runs."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        [event_id] = await app.send(stepwell.Event("bench/w1", {}))
        await ends.of_event(event_id)
        samples.append((time.perf_counter() - start) * 1000 / 10)
    return w1_result(samples)


async def w2_throughput(app: stepwell.App, ends: Ends, runs: int) -> dict[str, Any]:
    """W2: ``runs`` runs of 3 steps sent in one batch, timed to the last run's end."""
    before = ends.count[full_id("three-steps")]
    start = time.perf_counter()
    await app.send([stepwell.Event("bench/w2", {"n": n}) for n in range(runs)])
    await ends.until("three-steps", before + runs)
    return w2_result(runs, time.perf_counter() - start)


async def w3_start_latency(
    app: stepwell.App, ends: Ends, probe: Probe, events: int
) -> dict[str, Any]:
    """W3: ms from sending an event to its run's first step body starting, one event at a time
    (each run ends before the next event is sent)."""
    samples = []
    for n in range(events):
        start = time.perf_counter()
        [event_id] = await app.send(stepwell.Event("bench/w3", {"n": n}))
        await ends.of_event(event_id)
        samples.append((probe.first_step.pop(n) - start) * 1000)
    return latency_result(samples)


async def w4_fan_out(app: stepwell.App, ends: Ends, children: int) -> dict[str, Any]:
    """W4: one run sends ``children`` events in one step, each starting a one-step child run;
    timed from the parent's event to the last child's end."""
    before = ends.count[full_id("w4-child")]
    start = time.perf_counter()
    await app.send(stepwell.Event("bench/w4", {"children": children}))
    await ends.until("w4-child", before + children)
    elapsed = time.perf_counter() - start
    return fan_out_result(children, elapsed)


async def measure(sizes: Sizes) -> dict[str, Any]:
    """W1–W4 on one embedded engine on a fresh SQLite file."""
    probe = Probe()
    app = build_app(probe)
    ends = Ends()
    with tempfile.TemporaryDirectory() as tmp:
        async with Embedded([app], db=str(Path(tmp) / "bench.db")) as embedded:
            embedded.engine.run_listeners.append(ends)
            await w1_per_step(app, ends, sizes.w1_warmup)
            result = {
                "w1": await w1_per_step(app, ends, sizes.w1_runs),
                "w2": await w2_throughput(app, ends, sizes.w2_runs),
                "w3": await w3_start_latency(app, ends, probe, sizes.w3_events),
                "w4": await w4_fan_out(app, ends, sizes.w4_children),
            }
    return {"system": "stepwell", "settings": SETTINGS, **result}
