"""DBOS Transact on PostgreSQL.

A step is a `@DBOS.step()` inside a `@DBOS.workflow()`, configured with `DBOS(config=...)` and
started with `DBOS.launch()` as its docs show. W1 calls the workflow directly (it runs in the
caller's thread, each step checkpointed before the next starts); W2 enqueues the runs on a queue
(`DBOS.register_queue`), the way its docs recommend running many workflows concurrently, and
waits on their handles; W3 starts each run with `DBOS.start_workflow` (in the background at once:
a queue is polled, once a second by default); W4's parent is a workflow that enqueues its children on the same queue and
returns their workflow ids, which the benchmark then awaits. Durability: PostgreSQL's defaults
(fsync on, synchronous_commit on) in the database `bench_dbos` (PostgreSQL 15 on
127.0.0.1:5432), which DBOS creates and migrates at launch.
"""

from __future__ import annotations

import time
from typing import Any

from bench.peers import peer_main, time_w1, time_w3
from bench.sizes import Sizes
from bench.stats import W1_STEPS, fan_out_result, w2_result

DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/bench_dbos"


def measure(sizes: Sizes) -> dict[str, Any]:
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

    @DBOS.step()
    def started() -> float:
        return time.monotonic()

    @DBOS.workflow()
    def ten_steps() -> int:
        return sum(value(i) for i in range(W1_STEPS))

    @DBOS.workflow()
    def three_steps(n: int) -> int:
        return value(1) + value(2) + value(3)

    @DBOS.workflow()
    def first_step(n: int) -> float:
        return started()

    @DBOS.workflow()
    def child(i: int) -> int:
        return value(i)

    @DBOS.workflow()
    def fan_out(children: int) -> list[str]:
        return [queue.enqueue(child, i).get_workflow_id() for i in range(children)]

    DBOS.launch()
    queue = DBOS.register_queue("bench")
    try:
        w1 = time_w1(sizes, ten_steps)
        start = time.perf_counter()
        handles = [queue.enqueue(three_steps, n) for n in range(sizes.w2_runs)]
        for handle in handles:
            handle.get_result()
        w2 = w2_result(sizes.w2_runs, time.perf_counter() - start)
        w3 = time_w3(sizes, lambda n: float(DBOS.start_workflow(first_step, n).get_result()))
        start = time.perf_counter()
        ids = queue.enqueue(fan_out, sizes.w4_children).get_result()
        for workflow_id in ids:
            DBOS.retrieve_workflow(workflow_id).get_result()
        w4 = fan_out_result(len(ids), time.perf_counter() - start)
    finally:
        DBOS.destroy()
    return {
        "settings": (
            f"DBOS Transact, system database {DATABASE_URL}, PostgreSQL defaults "
            "(fsync on, synchronous_commit on); W2 and W4 through a DBOS Queue with default settings, "
            "W3 started with DBOS.start_workflow"
        ),
        "w1": w1,
        "w2": w2,
        "w3": w3,
        "w4": w4,
    }


if __name__ == "__main__":
    peer_main("dbos", measure)
