"""How fast the machine is right now: a fixed probe run before each part of the bench.

This machine's speed drifts (a shared VM: a third within the hour has been seen), so the same
code measures differently from one part to the next. Two fixed workloads, timed just before a
part starts and printed beside its figures, tell a part that ran in a slow phase from a change
that made it slower:

* ``cpu_ms``: pure-Python work (JSON round trips and dict churn, like an engine's), median of 5;
* ``commit_ms``: one SQLite commit of one row in WAL mode with ``synchronous=FULL`` (the
  embedded store's durability), the median of 50, on a fresh file in the temp directory.

    python -m bench.probe
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

CPU_ROUNDS = 5
COMMITS = 50


def cpu_ms() -> float:
    """Median ms of a fixed piece of pure-Python work."""
    samples = []
    for _ in range(CPU_ROUNDS):
        start = time.perf_counter()
        _work()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def _work() -> int:
    total = 0
    for i in range(2_000):
        record = {"run_id": f"run-{i}", "step": i % 10, "data": {"n": i, "tags": ["a", "b"]}}
        text = json.dumps(record, sort_keys=True)
        total += len(json.loads(text)["run_id"])
        index = {f"k{j}": j for j in range(20)}
        total += sum(index.values())
    return total


def commit_ms() -> float:
    """Median ms of a one-row SQLite commit, WAL, ``synchronous=FULL``."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "probe.db", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("CREATE TABLE t (n INTEGER)")
            samples = []
            for n in range(COMMITS):
                start = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO t VALUES (?)", (n,))
                conn.execute("COMMIT")
                samples.append((time.perf_counter() - start) * 1000)
        finally:
            conn.close()
    return statistics.median(samples)


def measure() -> dict[str, Any]:
    return {"cpu_ms": cpu_ms(), "commit_ms": commit_ms()}


def describe(probe: dict[str, Any]) -> str:
    return f"CPU probe {probe['cpu_ms']:.1f} ms, commit probe {probe['commit_ms']:.2f} ms"


if __name__ == "__main__":
    print(describe(measure()))
