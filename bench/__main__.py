"""Embedded-mode benchmarks: per-step overhead (W1) and throughput (W2).

    python -m bench            # quick sizes
    python -m bench --full     # the sizes of docs/benchmarks.md

Durability stays at its defaults: SQLite in WAL mode with synchronous=FULL. Prints what it
measured and on how many samples; never used as a test assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import stepwell
from stepwell.embedded import Embedded
from stepwell.store.records import RunRecord


def build_app(done: dict[str, asyncio.Future[None]] | None = None) -> stepwell.App:
    """The embedded workloads' app: W1 (ten steps) and W2 (three steps); other benches extend it."""
    app = stepwell.App("bench")

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

    return app


async def _value(i: int) -> int:
    return i


async def w1_per_step(
    app: stepwell.App, done: dict[str, asyncio.Future[None]], runs: int
) -> dict[str, float]:
    samples = []
    loop = asyncio.get_running_loop()
    for _ in range(runs):
        start = time.perf_counter()
        [event_id] = await app.send(stepwell.Event("bench/w1", {}))
        fut = done.setdefault(event_id, loop.create_future())
        await fut
        samples.append((time.perf_counter() - start) * 1000 / 10)
    return {"ms_per_step_median": statistics.median(samples), "samples": len(samples)}


async def w2_throughput(
    app: stepwell.App, done: dict[str, asyncio.Future[None]], runs: int
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    ids = await app.send([stepwell.Event("bench/w2", {"n": n}) for n in range(runs)])
    futures = [done.setdefault(i, loop.create_future()) for i in ids]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - start
    return {
        "runs_per_s": runs / elapsed,
        "steps_per_s": 3 * runs / elapsed,
        "runs": runs,
        "seconds": elapsed,
    }


async def main(full: bool) -> None:
    done: dict[str, asyncio.Future[None]] = {}
    app = build_app(done)
    with tempfile.TemporaryDirectory() as tmp:
        async with Embedded([app], db=str(Path(tmp) / "bench.db")) as embedded:

            def ended(run: RunRecord, status: str) -> None:
                fut = done.pop(run.event_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(None)

            embedded.engine.run_listeners.append(ended)
            await w1_per_step(app, done, 3)  # warm up
            w1 = await w1_per_step(app, done, 20)
            w2 = await w2_throughput(app, done, 1000 if full else 300)
    print("stepwell embedded (SQLite, WAL, synchronous=FULL)")
    print(
        f"  W1 per-step overhead: {w1['ms_per_step_median']:.3f} ms/step (median of {w1['samples']} runs of 10 steps)"
    )
    print(
        f"  W2 throughput: {w2['runs_per_s']:.0f} runs/s, {w2['steps_per_s']:.0f} steps/s ({w2['runs']} runs of 3 steps in {w2['seconds']:.2f} s)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().full))
