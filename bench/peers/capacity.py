"""W5 and W7 on a peer: what they measure and report, alike for every peer.

A peer's W5 starts ``peer_w5_runs`` runs, 10 at a time at ``W5_RATE`` runs/s (as stepwell's W5
does), each sleeping until a due time ``peer_w5_sleep_s`` after it was sent with the peer's own
durable sleep, then running one step that reads the wall clock: lateness is that step's start −
due. RSS (of the process that holds the sleeping runs, named in ``rss_process``) and the size of
the peer's storage are read once all of them sleep.

A peer's W7 starts ``peer_w7_waits`` runs, each waiting for a message keyed by its own id with the
peer's own durable wait; then sends ``peer_w7_matches`` matching messages and times them to the last
resumed run's end. Where the peer has an equivalent of an event nobody waits for, it also measures
the rate at which it accepts those, before the waits exist and while they all wait.

The figures use the keys of stepwell's (:mod:`bench.capacity`), so that the report puts them in
the same rows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.sizes import Sizes
from bench.stats import percentile

W5_RATE = 250.0
"""Runs started per second, as stepwell's W5 in quick mode."""
W5_BATCH = 10
IN_FLIGHT = 300
"""Runs sent but not yet parked before more are sent."""
INGEST_MESSAGES = 2000
INGEST_S = 3.0
"""Each ingest measurement stops after ``INGEST_MESSAGES`` messages or ``INGEST_S`` seconds."""


def process_rss_mb(pid: int | str = "self") -> float:
    """The resident set size of process ``pid`` now, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def group_processes(pgid: int) -> Iterable[tuple[int, str]]:
    """(pid, command name) of every process of the process group ``pgid``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            yield int(entry.name), name


def dir_mb(path: Path) -> float:
    """The bytes of every file under ``path``, in MB."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total / 1e6


@dataclass(frozen=True, slots=True)
class Held:
    """Where a peer holds its sleeping or waiting runs: the process whose RSS is read and the
    storage whose size is read, as the report names them."""

    rss_process: str
    storage: str


async def ingest(send: Callable[[int], Awaitable[None]]) -> tuple[int, float]:
    """Call ``send(first)`` (messages ``first`` to ``first + 99``), one call at a time, for at most
    ``INGEST_MESSAGES`` messages or ``INGEST_S`` seconds; the messages sent and their rate."""
    start = time.perf_counter()
    sent = 0
    while sent < INGEST_MESSAGES and time.perf_counter() - start < INGEST_S:
        await send(sent)
        sent += 100
    return sent, sent / (time.perf_counter() - start)


def ingest_figures(
    before: tuple[int, float], waiting: tuple[int, float], what: str
) -> dict[str, Any]:
    """W7's ingest figures, under the keys of stepwell's: before the waits and while they wait."""
    return {
        "ingest_events_no_waits": before[0],
        "ingest_per_s_no_waits": before[1],
        "ingest_events": waiting[0],
        "ingest_per_s_waiting": waiting[1],
        "ingest_is": what,
    }


def w5_result(
    sizes: Sizes,
    start_s: float,
    late_ms: list[float],
    rss: dict[str, float],
    storage_mb: float,
    held: Held,
) -> dict[str, Any]:
    """``rss``: the MB of the process that holds the runs, ``idle`` (before any run) and
    ``asleep`` (once all of them sleep)."""
    return {
        "w5": {
            "runs": sizes.peer_w5_runs,
            "sleep_s": sizes.peer_w5_sleep_s,
            "arrivals_per_s": W5_RATE,
            "start_seconds": start_s,
            "idle_rss_mb": rss["idle"],
            "rss_mb": rss["asleep"],
            "rss_process": held.rss_process,
            "db_mb": storage_mb,
            "storage": held.storage,
            "late_p50_ms": percentile(late_ms, 50),
            "late_p99_ms": percentile(late_ms, 99),
            "late_max_ms": max(late_ms),
            "samples": len(late_ms),
        }
    }


def w7_result(
    sizes: Sizes,
    start_s: float,
    resume_s: float,
    rss: dict[str, float],
    storage_mb: float,
    held: Held,
    ingest: dict[str, Any],
) -> dict[str, Any]:
    """``rss``: as for W5, ``idle`` and ``waiting``; ``ingest``: from ``ingest_figures``."""
    return {
        "w7": {
            "waits": sizes.peer_w7_waits,
            "matches": sizes.peer_w7_matches,
            "start_seconds": start_s,
            "idle_rss_mb": rss["idle"],
            "rss_mb": rss["waiting"],
            "rss_process": held.rss_process,
            "db_mb": storage_mb,
            "storage": held.storage,
            "resume_seconds": resume_s,
            "resumed_per_s": sizes.peer_w7_matches / resume_s,
            **ingest,
        }
    }
