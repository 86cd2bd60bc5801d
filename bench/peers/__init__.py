"""Peers measured beside stepwell by `python -m bench.compare`: Celery, DBOS and Restate.

Each peer is a module runnable as `python -m bench.peers.<name> [--quick] --out FILE`, run in a
process of its own so that its globals (DBOS's singleton, Celery's app) and its services end with
it. It runs W1 and W2 the way its own documentation recommends and writes one JSON object:

    {"system": ..., "settings": ..., "w1": {...}, "w2": {...}}

or {"system": ..., "unavailable": "<reason>"} when it cannot run on this machine. The peers are an
optional extra (`pip install -e '.[bench]'`); nothing in the test suite imports them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

W1_STEPS = 10
W1_RUNS = 20
W1_WARMUP = 3
W2_STEPS = 3


def w2_runs(quick: bool) -> int:
    """Runs started by W2: 300 in `--quick`, else 1,000."""
    return 300 if quick else 1000


def w1_result(samples_ms_per_step: list[float]) -> dict[str, float]:
    return {
        "ms_per_step_median": statistics.median(samples_ms_per_step),
        "samples": len(samples_ms_per_step),
    }


def w2_result(runs: int, elapsed: float) -> dict[str, float]:
    return {
        "runs_per_s": runs / elapsed,
        "steps_per_s": W2_STEPS * runs / elapsed,
        "runs": runs,
        "seconds": elapsed,
    }


def time_w1(run_once: Callable[[], object]) -> dict[str, float]:
    """Time `run_once` (one run of W1_STEPS steps, to its end) after a warm-up."""
    for _ in range(W1_WARMUP):
        run_once()
    samples = []
    for _ in range(W1_RUNS):
        start = time.perf_counter()
        run_once()
        samples.append((time.perf_counter() - start) * 1000 / W1_STEPS)
    return w1_result(samples)


def peer_main(system: str, measure: Callable[[bool], dict[str, Any]]) -> None:
    """Command line of a peer module: measure, then write the JSON object to `--out`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        result = {"system": system, **measure(args.quick)}
    except Unavailable as exc:
        result = {"system": system, "unavailable": str(exc)}
    except Exception as exc:  # any failure is reported as the reason it could not run
        traceback.print_exc()
        result = {"system": system, "unavailable": f"{type(exc).__name__}: {exc}"}
    args.out.write_text(json.dumps(result, indent=2))
    sys.exit(0)


class Unavailable(Exception):
    """The peer cannot run on this machine; the message says exactly why."""
