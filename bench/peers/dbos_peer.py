"""DBOS Transact on PostgreSQL.

A step is a `@DBOS.step()` inside a `@DBOS.workflow()`, configured with `DBOS(config=...)` and
started with `DBOS.launch()` as its docs show. W1 calls the workflow directly (it runs in the
caller's thread, each step checkpointed before the next starts); W2 enqueues the runs on a
queue (`DBOS.register_queue`), the way its docs recommend running many workflows concurrently, and waits on their
handles. Durability: PostgreSQL's defaults (fsync on, synchronous_commit on) in the database
`bench_dbos` (PostgreSQL 15 on 127.0.0.1:5432), which DBOS creates and migrates at launch.
"""

from __future__ import annotations

import time
from typing import Any

from bench.peers import W1_STEPS, peer_main, time_w1, w2_result, w2_runs

DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/bench_dbos"


def measure(quick: bool) -> dict[str, Any]:
    from dbos import DBOS, DBOSConfig

    config: DBOSConfig = {
        "name": "stepwell-bench",
        "system_database_url": DATABASE_URL,
        "log_level": "WARNING",
    }
    DBOS(config=config)

    @DBOS.step()
    def value(i: int) -> int:
        return i

    @DBOS.workflow()
    def ten_steps() -> int:
        return sum(value(i) for i in range(W1_STEPS))

    @DBOS.workflow()
    def three_steps(n: int) -> int:
        return value(1) + value(2) + value(3)

    DBOS.launch()
    queue = DBOS.register_queue("bench")
    try:
        w1 = time_w1(ten_steps)
        runs = w2_runs(quick)
        start = time.perf_counter()
        handles = [queue.enqueue(three_steps, n) for n in range(runs)]
        for handle in handles:
            handle.get_result()
        w2 = w2_result(runs, time.perf_counter() - start)
    finally:
        DBOS.destroy()
    return {
        "settings": (
            f"DBOS Transact, system database {DATABASE_URL}, PostgreSQL defaults "
            "(fsync on, synchronous_commit on); W2 through a DBOS Queue with default settings"
        ),
        "w1": w1,
        "w2": w2,
    }


if __name__ == "__main__":
    peer_main("dbos", measure)
