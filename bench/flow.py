"""The cost of flow control: W2 with and without limits, in one process, on one machine.

``python -m bench.flow [--runs 1000] [--rounds 3]``

W2 is 1,000 runs of 3 steps sent in one batch and timed to the last run's end, on stepwell
embedded (SQLite, WAL, ``synchronous=FULL``). It runs on three functions with the same body:

* ``plain``: no flow control;
* ``keyed``: a concurrency limit of 10 per key over 100 distinct keys, plus a throttle of
  100,000 starts per second — limits that do not bind, so what is measured is their bookkeeping
  (keys evaluated per run, every invocation claimed through the flow-aware claim, slots counted
  and released, a GCRA reservation per start);
* ``bound``: a concurrency limit of 10 over the whole function, which binds: the figure shows how
  fast work drains through a saturated limit.

The rounds alternate between functions so machine noise spreads evenly; the table gives the
median of each and the ratio to ``plain``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import stepwell
from stepwell.embedded import Embedded
from stepwell.store.records import RunRecord

FUNCTIONS = ("plain", "keyed", "bound")


def build_app() -> stepwell.App:
    app = stepwell.App("flow-bench")

    async def body(ctx: stepwell.Context) -> int:
        a = await ctx.step.run("a", lambda: 1)
        b = await ctx.step.run("b", lambda: 2)
        return a + b + await ctx.step.run("c", lambda: 3)

    app.function("plain", trigger="bench/plain")(body)
    app.function(
        "keyed",
        trigger="bench/keyed",
        concurrency=stepwell.Concurrency(10, key="event.data.k"),
        throttle=stepwell.Throttle(limit=100_000, period="1s", burst=1000),
    )(body)
    app.function("bound", trigger="bench/bound", concurrency=10)(body)
    return app


class Ends:
    """Counts ended runs per function, from the engine's run listeners."""

    def __init__(self) -> None:
        self.count = dict.fromkeys(FUNCTIONS, 0)
        self.changed = asyncio.Event()

    def __call__(self, run: RunRecord, status: str) -> None:
        self.count[run.function_id.removeprefix("flow-bench-")] += 1
        self.changed.set()

    async def until(self, function: str, count: int, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count[function] < count:
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{function}: {self.count[function]} of {count} runs ended")
            try:
                await asyncio.wait_for(self.changed.wait(), min(remaining, 1.0))
            except TimeoutError:
                continue


async def measure(runs: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per W2 round, per function."""
    app = build_app()
    ends = Ends()
    times: dict[str, list[float]] = {f: [] for f in FUNCTIONS}
    with tempfile.TemporaryDirectory() as tmp:
        async with Embedded([app], db=str(Path(tmp) / "flow.db")) as embedded:
            embedded.engine.run_listeners.append(ends)
            for _ in range(rounds):
                for function in FUNCTIONS:
                    before = ends.count[function]
                    events = [
                        stepwell.Event(f"bench/{function}", {"k": n % 100}) for n in range(runs)
                    ]
                    start = time.perf_counter()
                    await app.send(events)
                    await ends.until(function, before + runs)
                    times[function].append(time.perf_counter() - start)
    return times


def report(times: dict[str, list[float]], runs: int) -> str:
    plain = statistics.median(times["plain"])
    lines = [
        f"W2 flow control: {runs} runs x 3 steps, median of {len(times['plain'])} rounds, "
        f"load average {os.getloadavg()[0]:.2f}",
        f"{'function':<8} {'runs/s':>8} {'steps/s':>8} {'vs plain':>9}",
    ]
    for function in FUNCTIONS:
        seconds = statistics.median(times[function])
        lines.append(
            f"{function:<8} {runs / seconds:>8.0f} {3 * runs / seconds:>8.0f} "
            f"{plain / seconds:>8.2f}x"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times = asyncio.run(measure(args.runs, args.rounds))
    print(report(times, args.runs))


if __name__ == "__main__":
    main()
