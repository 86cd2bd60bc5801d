"""How samples become the figures every system reports, so that all of them are computed alike."""

from __future__ import annotations

import statistics
from typing import Any

W1_STEPS = 10
W2_STEPS = 3


def percentile(samples: list[float], p: float) -> float:
    """The ``p``-th percentile (0–100), interpolating linearly between the closest ranks."""
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def w1_result(samples_ms_per_step: list[float]) -> dict[str, Any]:
    """W1: the median of per-run ms per step."""
    return {
        "ms_per_step_median": statistics.median(samples_ms_per_step),
        "samples": len(samples_ms_per_step),
    }


def w2_result(runs: int, elapsed: float) -> dict[str, Any]:
    """W2: ``runs`` runs of ``W2_STEPS`` steps done in ``elapsed`` seconds."""
    return {
        "runs_per_s": runs / elapsed,
        "steps_per_s": W2_STEPS * runs / elapsed,
        "runs": runs,
        "seconds": elapsed,
    }


def latency_result(samples_ms: list[float]) -> dict[str, Any]:
    """p50, p99 and max of latencies in ms."""
    return {
        "p50_ms": percentile(samples_ms, 50),
        "p99_ms": percentile(samples_ms, 99),
        "max_ms": max(samples_ms),
        "samples": len(samples_ms),
    }


def fan_out_result(children: int, elapsed: float) -> dict[str, Any]:
    """W4: ``children`` child runs done ``elapsed`` seconds after the parent's event."""
    return {"children_per_s": children / elapsed, "children": children, "seconds": elapsed}
