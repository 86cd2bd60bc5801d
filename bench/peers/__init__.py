"""Peers measured beside stepwell by `python -m bench`: Celery, DBOS and Restate.

Each peer is a module runnable as `python -m bench.peers.<name> --mode quick|full|tiny --out FILE`,
run in a process of its own so that its globals (DBOS's singleton, Celery's app) and its services
end with it. It runs W1–W4 (`bench.sizes`) the way its own documentation recommends and writes one
JSON object:

    {"system": ..., "settings": ..., "w1": {...}, "w2": {...}, "w3": {...}, "w4": {...}}

or {"system": ..., "unavailable": "<reason>"} when it cannot run on this machine. A peer with
durable sleeps and waits (DBOS, Restate) also runs W5 or W7 alone, each in a fresh process, with
`--workload w5|w7` (`bench.peers.capacity`); its object then has the W5 or W7 figures under the
same keys as stepwell's (`bench.capacity`). The peers are an
optional extra (`pip install -e '.[bench]'`); nothing in the test suite imports them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.sizes import MODES, Sizes
from bench.stats import W1_STEPS, latency_result, w1_result


def time_w1(sizes: Sizes, run_once: Callable[[], object]) -> dict[str, float]:
    """Time `run_once` (one run of W1_STEPS steps, to its end) after a warm-up."""
    for _ in range(sizes.w1_warmup):
        run_once()
    samples = []
    for _ in range(sizes.w1_runs):
        start = time.perf_counter()
        run_once()
        samples.append((time.perf_counter() - start) * 1000 / W1_STEPS)
    return w1_result(samples)


def time_w3(sizes: Sizes, run_once: Callable[[int], float]) -> dict[str, Any]:
    """W3: `run_once(n)` starts run `n`, waits for its end and returns `time.monotonic()` taken
    when its first step's body started (in whatever process it ran: CLOCK_MONOTONIC is one
    clock for the whole machine); samples are the ms from calling it to that moment."""
    samples = []
    for n in range(sizes.w3_events):
        start = time.monotonic()
        samples.append((run_once(n) - start) * 1000)
    return latency_result(samples)


def peer_main(
    system: str,
    measure: Callable[[Sizes], dict[str, Any]],
    capacity: dict[str, Callable[[Sizes], dict[str, Any]]] | None = None,
) -> None:
    """Command line of a peer module: measure W1–W4 (or, with `--workload`, one of `capacity`'s
    workloads), then write the JSON object to `--out`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--workload", choices=["w1-w4", *(capacity or {})], default="w1-w4")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    run = measure if args.workload == "w1-w4" else (capacity or {})[args.workload]
    try:
        result = {"system": system, **run(MODES[args.mode])}
    except Unavailable as exc:
        result = {"system": system, "unavailable": str(exc)}
    except Exception as exc:  # any failure is reported as the reason it could not run
        traceback.print_exc()
        result = {"system": system, "unavailable": f"{type(exc).__name__}: {exc}"}
    args.out.write_text(json.dumps(result, indent=2))
    sys.exit(0)


class Unavailable(Exception):
    """The peer cannot run on this machine; the message says exactly why."""
