"""W5 (sleeping runs) and W7 (waiting runs) on stepwell embedded, each in a process of its own.

    python -m bench.capacity w5 --runs 10000 --sleep 60 --out w5.json
    python -m bench.capacity w7 --waits 10000 --matches 1000 --out w7.json

A fresh process per workload, so the resident set size it reports is the engine's with those runs
parked, not what earlier workloads left behind. Runs are started in batches, each sent once the
runs of the batch before it are parked, the way a steady stream of work would arrive.

* **W5**: every run sleeps until a due time ``--sleep`` seconds after its event was sent
  (``step.sleep_until``), then runs one step that records how late it started (actual − due).
  Reports RSS and database size while all of them sleep, and p50/p99 of the lateness.
* **W7**: every run waits for ``bench/w7-approve`` with the same ``data.id``. Reports RSS and
  database size while they all wait; the ingest rate of non-matching ``bench/w7-approve`` events
  with no waits and with all of them waiting; then how long ``--matches`` matching events take to
  resume their runs, to the last run's end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import stepwell
from bench.embedded import SETTINGS, Ends, Probe, build_app
from bench.stats import percentile
from stepwell.embedded import Embedded

BATCH = 100
IN_FLIGHT = 300
"""Runs sent but not yet parked before the next batch is sent."""
INGEST_EVENTS = 50_000
"""Events sent (100 a call) to measure the ingest rate during W7, unless ``INGEST_S`` is up first."""
INGEST_S = 10.0


def rss_mb() -> float:
    """This process's resident set size now, in MB."""
    return _status_kb("VmRSS") / 1024


def peak_rss_mb() -> float:
    return _status_kb("VmHWM") / 1024


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def db_mb(db: Path) -> float:
    """The SQLite file and its WAL, in MB."""
    files = [db, db.with_name(db.name + "-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / 1e6


def count_rows(db: Path, sql: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        [count] = conn.execute(sql).fetchone()
        return int(count)


async def start_paced(
    app: stepwell.App,
    total: int,
    event: Callable[[int], stepwell.Event],
    parked: Callable[[], int],
    rate: float | None = None,
    batch_size: int = BATCH,
) -> float:
    """Send ``total`` events in batches of ``batch_size``, at most ``rate`` events/s (None: as fast as
    runs park), keeping at most ``IN_FLIGHT`` runs not yet parked; returns the seconds it took
    until all of them were parked."""
    start = time.perf_counter()
    sent = 0
    while sent < total:
        while sent - parked() >= IN_FLIGHT:
            await asyncio.sleep(0.01)
        if rate is not None:
            await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
        batch = [event(n) for n in range(sent, min(sent + batch_size, total))]
        await app.send(batch)
        sent += len(batch)
    while parked() < total:
        await asyncio.sleep(0.02)
    return time.perf_counter() - start


async def w5(runs: int, sleep_s: float, rate: float) -> dict[str, Any]:
    probe = Probe()
    app = build_app(probe)
    ends = Ends()
    sleep_ms = int(sleep_s * 1000)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "w5.db"
        async with Embedded([app], db=str(db)) as embedded:
            embedded.engine.run_listeners.append(ends)
            idle_rss = rss_mb()

            def event(n: int) -> stepwell.Event:
                return stepwell.Event("bench/w5", {"due": int(time.time() * 1000) + sleep_ms})

            def sleeping() -> int:
                return count_rows(db, "SELECT count(*) FROM queue WHERE kind = 'sleep'")

            started = await start_paced(
                app, runs, event, lambda: probe.asleep, rate=rate, batch_size=10
            )
            while sleeping() < runs and not probe.woke_late_ms:
                await asyncio.sleep(0.05)
            parked = sleeping()
            asleep_rss, asleep_db = rss_mb(), db_mb(db)
            await ends.until("w5-sleeper", runs, timeout_s=sleep_s + 600)
            late = probe.woke_late_ms
    return {
        "runs": runs,
        "sleep_s": sleep_s,
        "arrivals_per_s": rate,
        "start_seconds": started,
        "sleeping_when_measured": parked,
        "idle_rss_mb": idle_rss,
        "rss_mb": asleep_rss,
        "peak_rss_mb": peak_rss_mb(),
        "db_mb": asleep_db,
        "late_p50_ms": percentile(late, 50),
        "late_p99_ms": percentile(late, 99),
        "late_max_ms": max(late),
        "samples": len(late),
        "settings": SETTINGS,
    }


async def ingest_rate(app: stepwell.App, name: str) -> tuple[int, float]:
    """Events/s of events named ``name`` sent 100 a call, one call at a time, for at most
    ``INGEST_EVENTS`` events or ``INGEST_S`` seconds; none of them matches a wait or starts a run.
    Returns the events sent and the rate."""
    start = time.perf_counter()
    sent = 0
    while sent < INGEST_EVENTS and time.perf_counter() - start < INGEST_S:
        await app.send([stepwell.Event(name, {"id": f"none-{sent + n}"}) for n in range(100)])
        sent += 100
    return sent, sent / (time.perf_counter() - start)


async def w7(waits: int, matches: int) -> dict[str, Any]:
    app = build_app()
    ends = Ends()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "w7.db"
        async with Embedded([app], db=str(db)) as embedded:
            embedded.engine.run_listeners.append(ends)
            idle_rss = rss_mb()
            sent_before, rate_before = await ingest_rate(app, "bench/w7-approve")

            def waiting() -> int:
                return count_rows(db, "SELECT count(*) FROM waits")

            # A tenth of the runs first, then the rest: the rate with all of them waiting is
            # compared with the rate with a tenth (the same work per event, ten times the
            # waits), not only with no waits (where an event has no wait to look up at all).
            tenth = max(waits // 10, 1)
            started = await start_paced(
                app, tenth, lambda n: stepwell.Event("bench/w7", {"id": n}), waiting
            )
            sent_tenth, rate_tenth = await ingest_rate(app, "bench/w7-approve")
            started += await start_paced(
                app,
                waits - tenth,
                lambda n: stepwell.Event("bench/w7", {"id": tenth + n}),
                lambda: waiting() - tenth,
            )
            waiting_rss, waiting_db = rss_mb(), db_mb(db)
            sent_waiting, rate_waiting = await ingest_rate(app, "bench/w7-approve")
            start = time.perf_counter()
            for first in range(0, matches, 100):
                last = min(first + 100, matches)
                await app.send(
                    [stepwell.Event("bench/w7-approve", {"id": n}) for n in range(first, last)]
                )
            await ends.until("w7-waiter", matches)
            resumed_s = time.perf_counter() - start
    return {
        "waits": waits,
        "matches": matches,
        "start_seconds": started,
        "idle_rss_mb": idle_rss,
        "rss_mb": waiting_rss,
        "db_mb": waiting_db,
        "ingest_events_no_waits": sent_before,
        "ingest_events_tenth": sent_tenth,
        "ingest_events": sent_waiting,
        "ingest_per_s_no_waits": rate_before,
        "ingest_per_s_tenth": rate_tenth,
        "ingest_per_s_waiting": rate_waiting,
        "tenth": tenth,
        "resume_seconds": resumed_s,
        "resumed_per_s": matches / resumed_s,
        "settings": SETTINGS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workload", choices=["w5", "w7"])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--sleep", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=250.0, help="W5 runs started per second")
    parser.add_argument("--waits", type=int, default=10_000)
    parser.add_argument("--matches", type=int, default=1_000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.workload == "w5":
        result = asyncio.run(w5(args.runs, args.sleep, args.rate))
    else:
        result = asyncio.run(w7(args.waits, args.matches))
    args.out.write_text(json.dumps(result, indent=2))
    sys.exit(0)


if __name__ == "__main__":
    main()
