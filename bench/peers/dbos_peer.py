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

W5 and W7 (`--workload w5|w7`) each run in a fresh process on a fresh database of their own
(`bench_dbos_w5`, `bench_dbos_w7`, dropped first) with async workflows, which DBOS runs as tasks on
the caller's event loop instead of a thread each: W5's workflow sleeps with `DBOS.sleep_async`
until its due time, then runs one `@DBOS.step()` that reads the clock; W7's waits with
`DBOS.recv_async(topic="approve")` under the workflow id `w7-{n}` (set with `SetWorkflowID`),
and a match is `DBOS.send_bulk` of 100 messages to those ids. DBOS is a library: the runs are held
by this process, whose RSS is reported, and by PostgreSQL, whose database size is reported.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from bench.peers import capacity, peer_main, time_w1, time_w3
from bench.sizes import Sizes
from bench.stats import W1_STEPS, fan_out_result, w2_result

DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/bench_dbos"
RECV_TIMEOUT_S = 3600.0
"""W7's `DBOS.recv` timeout (60 s by default): longer than any run of W7."""


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


def fresh_database(name: str) -> str:
    """Drop the database ``name`` if it exists; its URL, for DBOS to create it again at launch."""
    import pg8000.native

    conn = pg8000.native.Connection("postgres", host="127.0.0.1", port=5432, database="postgres")
    try:
        conn.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()
    return DATABASE_URL.rsplit("/", 1)[0] + f"/{name}"


def database_mb(name: str) -> float:
    import pg8000.native

    conn = pg8000.native.Connection("postgres", host="127.0.0.1", port=5432, database="postgres")
    try:
        return float(conn.run("SELECT pg_database_size(:name)", name=name)[0][0]) / 1e6
    finally:
        conn.close()


def launch(database: str) -> Any:
    from dbos import DBOS, DBOSConfig

    config: DBOSConfig = {
        "name": "stepwell-bench",
        "system_database_url": fresh_database(database),
        "log_level": "WARNING",
    }
    DBOS(config=config)
    return DBOS


def held(database: str) -> capacity.Held:
    return capacity.Held(
        "the benchmark's process, which runs DBOS and its workflows",
        f"PostgreSQL database {database} (pg_database_size)",
    )


def measure_w5(sizes: Sizes) -> dict[str, Any]:
    dbos = launch("bench_dbos_w5")
    late: list[float] = []
    asleep = 0

    @dbos.step()
    async def woke() -> float:
        return time.time()

    @dbos.workflow()
    async def sleeper(due_ms: float) -> None:
        nonlocal asleep
        asleep += 1
        await dbos.sleep_async(max(0.0, due_ms / 1000 - time.time()))
        late.append(await woke() * 1000 - due_ms)

    async def run() -> dict[str, Any]:
        runs, sleep_ms = sizes.peer_w5_runs, sizes.peer_w5_sleep_s * 1000
        rss = {"idle": capacity.process_rss_mb()}
        start = time.perf_counter()
        handles = []
        for sent in range(0, runs, capacity.W5_BATCH):
            await asyncio.sleep(max(0.0, start + sent / capacity.W5_RATE - time.perf_counter()))
            for _ in range(min(capacity.W5_BATCH, runs - sent)):
                due = time.time() * 1000 + sleep_ms
                handles.append(await dbos.start_workflow_async(sleeper, due))
        while asleep < runs:
            await asyncio.sleep(0.02)
        started = time.perf_counter() - start
        await asyncio.sleep(0.5)  # the last sleeps' records committed
        rss["asleep"] = capacity.process_rss_mb()
        size = database_mb("bench_dbos_w5")
        for handle in handles:
            await handle.get_result()
        return capacity.w5_result(sizes, started, late, rss, size, held("bench_dbos_w5"))

    dbos.launch()
    try:
        return asyncio.run(run())
    finally:
        dbos.destroy()


def measure_w7(sizes: Sizes) -> dict[str, Any]:
    from dbos import SendMessage, SetWorkflowID

    dbos = launch("bench_dbos_w7")
    waiting = 0

    @dbos.workflow()
    async def waiter(n: int) -> int:
        nonlocal waiting
        waiting += 1
        message = await dbos.recv_async("approve", timeout_seconds=RECV_TIMEOUT_S)
        return int(message)

    @dbos.workflow()
    async def sink() -> None:
        return None

    async def to_sink(first: int) -> None:
        """100 messages to a workflow that waits for none."""
        await dbos.send_bulk_async([SendMessage("w7-sink", first + n, "none") for n in range(100)])

    async def run() -> dict[str, Any]:
        waits, matches = sizes.peer_w7_waits, sizes.peer_w7_matches
        rss = {"idle": capacity.process_rss_mb()}
        with SetWorkflowID("w7-sink"):
            await (await dbos.start_workflow_async(sink)).get_result()
        before = await capacity.ingest(to_sink)
        start = time.perf_counter()
        handles = []
        for n in range(waits):
            while n - waiting >= capacity.IN_FLIGHT:
                await asyncio.sleep(0.01)
            with SetWorkflowID(f"w7-{n}"):
                handles.append(await dbos.start_workflow_async(waiter, n))
        while waiting < waits:
            await asyncio.sleep(0.02)
        started = time.perf_counter() - start
        await asyncio.sleep(0.5)
        rss["waiting"] = capacity.process_rss_mb()
        size = database_mb("bench_dbos_w7")
        while_waiting = await capacity.ingest(to_sink)
        start = time.perf_counter()
        for first in range(0, matches, 100):
            batch = range(first, min(first + 100, matches))
            await dbos.send_bulk_async([SendMessage(f"w7-{n}", n, "approve") for n in batch])
        for handle in handles[:matches]:
            await handle.get_result()
        resumed = time.perf_counter() - start
        # the runs still waiting are cancelled in this process when it ends (they stay durable)
        logging.getLogger("dbos").setLevel(logging.ERROR)
        what = "DBOS.send_bulk of 100 messages to a workflow that waits for none"
        figures = capacity.ingest_figures(before, while_waiting, what)
        return capacity.w7_result(
            sizes, started, resumed, rss, size, held("bench_dbos_w7"), figures
        )

    dbos.launch()
    try:
        return asyncio.run(run())
    finally:
        dbos.destroy(destroy_registry=True)


if __name__ == "__main__":
    peer_main("dbos", measure, {"w5": measure_w5, "w7": measure_w7})
