"""Benchmarks on PostgreSQL: W1 and W2 with one, two and four engine nodes (steps per second,
per-step latency and CPU time), an idle node's cost, and how fast work committed by one node
reaches an idle one.

    python -m bench.postgres            # quick sizes
    python -m bench.postgres --full     # the sizes of docs/postgres.md

Every node is a process of its own (``python -m bench.postgres node URL``): an
:class:`~stepwell.engine.engine.Engine` on a :class:`~stepwell.store.postgres.PostgresStore`
with the bench functions in-process, driven through its stdin, announcing every run that ends on
its stdout. Events are sent by the nodes themselves, split evenly, as behind a load balancer;
the clock runs in this process, from the command to the last run's end, wherever it ended.

The server is ``$STEPWELL_BENCH_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); each measurement gets a fresh schema, dropped
after it. Durability stays at the server's settings. Prints what it measured; never used as a
test assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import stepwell
from bench import __main__ as embedded_bench
from stepwell.engine.engine import Engine
from stepwell.store.base import Tx
from stepwell.store.postgres import PostgresStore, _Connection, parse_url

T = TypeVar("T")
URL = os.environ.get("STEPWELL_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
W1_RUNS = 20
W1_WARMUP = 3
NODE_COUNTS = (1, 2, 4)
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


# -- a node ---------------------------------------------------------------------------------------


def build_app() -> stepwell.App:
    app = embedded_bench.build_app()

    @app.function("one-step", trigger="bench/one")
    async def one_step(ctx: stepwell.Context) -> int:
        return await ctx.step.run("a", _value, 1)

    return app


async def _value(i: int) -> int:
    return i


class CountingStore:
    """A PostgreSQL store that counts units of work and reads: one transaction each."""

    def __init__(self, url: str) -> None:
        self.inner = PostgresStore(url)
        self.transactions = 0

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def run(self, work: Callable[[Tx], T]) -> T:
        self.transactions += 1
        return await self.inner.run(work)

    async def read(self, work: Callable[[Tx], T]) -> T:
        self.transactions += 1
        return await self.inner.read(work)

    async def wait_for_notify(self, timeout_s: float) -> bool:
        return await self.inner.wait_for_notify(timeout_s)


ROUND_TRIPS = {"work": 0, "keep-alive": 0}


def _count_round_trips() -> None:
    """Count every request the store's connections send: statements and BEGIN/COMMIT, apart
    from the listener's empty keep-alive queries. Bench-only instrumentation of the store's
    private connection class."""
    for name in ("execute", "once", "simple"):
        original = getattr(_Connection, name)

        def counted(self: Any, *args: Any, _original: Any = original) -> Any:
            ROUND_TRIPS["keep-alive" if args == ("",) else "work"] += 1
            return _original(self, *args)

        setattr(_Connection, name, counted)


async def node_main(url: str, concurrency: int) -> None:
    """Serve commands from stdin: ``send NAME COUNT``, ``stats``, ``quit``."""
    _count_round_trips()
    app = build_app()
    store = CountingStore(url)
    engine = Engine(store, concurrency=concurrency)  # type: ignore[arg-type]
    out = sys.stdout

    def ended(run: Any, status: str) -> None:
        out.write("ended\n")
        out.flush()

    await engine.start()
    await engine.register(app.register_request(), {fn.full_id: fn for fn in app.functions})
    engine.run_listeners.append(ended)
    out.write("ready\n")
    out.flush()
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command = line.split()
        if command[0] == "send":
            name, count = command[1], int(command[2])
            await engine.send_wire([{"name": name, "data": {"n": n}} for n in range(count)])
        elif command[0] == "stats":
            trips = ROUND_TRIPS
            out.write(f"stats {store.transactions} {trips['work']} {trips['keep-alive']}\n")
            out.flush()
        elif command[0] == "quit":
            break
    await engine.stop()


# -- the nodes, seen from here ------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """What a node sent its database so far."""

    transactions: int
    round_trips: int
    """Statements, BEGIN, COMMIT..., but not the listener's keep-alives."""
    keep_alives: int

    def __sub__(self, other: Stats) -> Stats:
        return Stats(
            self.transactions - other.transactions,
            self.round_trips - other.round_trips,
            self.keep_alives - other.keep_alives,
        )


@dataclass
class Node:
    proc: asyncio.subprocess.Process
    ended: int = 0
    stats: asyncio.Queue[Stats] = field(default_factory=asyncio.Queue)

    async def command(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        await self.proc.stdin.drain()

    async def read_stats(self) -> Stats:
        await self.command("stats")
        return await self.stats.get()

    def cpu_s(self) -> float:
        """CPU time (user + system) the node process has used so far, in seconds."""
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            # fields after the parenthesised command name; utime and stime are 14 and 15
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


class Cluster:
    """Node processes on one schema; counts the runs that ended on any of them."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.changed = asyncio.Event()
        self._readers: list[asyncio.Task[None]] = []

    @property
    def ended(self) -> int:
        return sum(node.ended for node in self.nodes)

    async def add(self, url: str, concurrency: int = 64) -> Node:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.postgres",
            "node",
            url,
            "--concurrency",
            str(concurrency),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        node = Node(proc)
        assert proc.stdout is not None
        ready = await proc.stdout.readline()
        if ready != b"ready\n":
            raise RuntimeError(f"a node did not start: {ready!r}")
        self.nodes.append(node)
        self._readers.append(asyncio.create_task(self._read(node)))
        return node

    async def _read(self, node: Node) -> None:
        assert node.proc.stdout is not None
        while line := await node.proc.stdout.readline():
            if line == b"ended\n":
                node.ended += 1
                self.changed.set()
            elif line.startswith(b"stats "):
                _, *counts = line.split()
                node.stats.put_nowait(Stats(*map(int, counts)))

    async def until_ended(self, count: int, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while self.ended < count:
            self.changed.clear()
            if self.ended >= count:
                break
            await asyncio.wait_for(self.changed.wait(), max(0.0, deadline - time.monotonic()))

    async def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(ConnectionError):
                await node.command("quit")
        for node in self.nodes:
            try:
                await asyncio.wait_for(node.proc.wait(), 30)
            except TimeoutError:
                node.proc.kill()
                await node.proc.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


@contextlib.asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    schema = f"bench_{uuid.uuid4().hex[:16]}"
    yield f"{URL}{'&' if '?' in URL else '?'}schema={schema}"
    await asyncio.to_thread(_drop_schema, schema)


def _drop_schema(schema: str) -> None:
    import pg8000.native

    target = parse_url(URL)
    conn = pg8000.native.Connection(
        target.user,
        host=target.host,
        port=target.port,
        database=target.database,
        password=target.password,
    )
    try:
        conn.run(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        conn.close()


@contextlib.asynccontextmanager
async def cluster(nodes: int) -> AsyncIterator[Cluster]:
    async with fresh_schema() as url:
        made = Cluster()
        try:
            # The first node migrates the fresh schema; the others then start together.
            await made.add(url)
            await asyncio.gather(*(made.add(url) for _ in range(nodes - 1)))
            yield made
        finally:
            await made.stop()


# -- the workloads ------------------------------------------------------------------------------


async def sequential_ms(made: Cluster, sender: Node, name: str, runs: int) -> list[float]:
    """Milliseconds from sending one event to its run's end, one run at a time."""
    samples = []
    for _ in range(runs):
        target = made.ended + 1
        start = time.perf_counter()
        await sender.command(f"send {name} 1")
        await made.until_ended(target)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def w1(made: Cluster) -> dict[str, Any]:
    """W1: median ms per step of a 10-step run, events sent to the first node; and what the
    other nodes did meanwhile."""
    await sequential_ms(made, made.nodes[0], "bench/w1", W1_WARMUP)
    before = [await node.read_stats() for node in made.nodes]
    samples = await sequential_ms(made, made.nodes[0], "bench/w1", W1_RUNS)
    after = [await node.read_stats() for node in made.nodes]
    spent = [a - b for a, b in zip(after, before, strict=True)]
    return {"w1": statistics.median(samples) / 10, "w1_spent": spent}


async def w2(made: Cluster, runs: int) -> dict[str, Any]:
    """W2: ``runs`` 3-step runs started at once, the events split between the nodes."""
    before = [node.ended for node in made.nodes]
    target = made.ended + runs
    shares = [
        runs // len(made.nodes) + (i < runs % len(made.nodes)) for i in range(len(made.nodes))
    ]
    cpu_before = sum(node.cpu_s() for node in made.nodes)
    start = time.perf_counter()
    await asyncio.gather(
        *(
            node.command(f"send bench/w2 {share}")
            for node, share in zip(made.nodes, shares, strict=True)
        )
    )
    await made.until_ended(target)
    elapsed = time.perf_counter() - start
    cpu = sum(node.cpu_s() for node in made.nodes) - cpu_before
    return {
        "runs_per_s": runs / elapsed,
        "steps_per_s": 3 * runs / elapsed,
        "wall_ms_per_step": elapsed * 1000 / (3 * runs),
        "cpu_ms_per_step": cpu * 1000 / (3 * runs),
        "seconds": elapsed,
        "ended_per_node": [node.ended - b for node, b in zip(made.nodes, before, strict=True)],
    }


async def idle(seconds: float) -> Stats:
    """What one idle node sends its database in ``seconds``."""
    async with cluster(1) as made:
        [node] = made.nodes
        await asyncio.sleep(2)  # past start-up
        before = await node.read_stats()
        await asyncio.sleep(seconds)
        return await node.read_stats() - before


async def hand_off() -> tuple[float, float]:
    """Median ms from sending a 1-step run's event to the run's end, one run at a time: sent to
    the idle node that runs it (direct dispatch), then sent to a node at capacity (concurrency
    0) that can only commit it, so that the idle node runs it once the store wakes it."""
    async with fresh_schema() as url:
        made = Cluster()
        try:
            worker = await made.add(url)
            sender = await made.add(url, concurrency=0)
            await sequential_ms(made, worker, "bench/one", W1_WARMUP)
            direct = await sequential_ms(made, worker, "bench/one", W1_RUNS)
            await sequential_ms(made, sender, "bench/one", W1_WARMUP)
            handed = await sequential_ms(made, sender, "bench/one", W1_RUNS)
        finally:
            await made.stop()
    return statistics.median(direct), statistics.median(handed)


async def main(full: bool) -> None:
    load_before = os.getloadavg()[0]
    w2_runs = 1000 if full else 300
    results: dict[int, dict[str, Any]] = {}
    for nodes in NODE_COUNTS:
        async with cluster(nodes) as made:
            results[nodes] = {**await w1(made), **await w2(made, w2_runs)}
    idle_s = 120 if full else 30
    quiet = await idle(idle_s)
    direct, handed = await hand_off()

    print(f"stepwell on PostgreSQL ({parse_url(URL)}), each node a process, concurrency 64")
    # Every node and the server share this machine's cores: a busy machine halves the figures.
    print(
        f"  {os.cpu_count()} cores; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    header = "".join(f"{f'{n} node' + 's' * (n > 1):>16}" for n in NODE_COUNTS)
    print(f"  {'':<44}{header}")
    rows = [
        (f"W1 ms/step (median of {W1_RUNS}, 10 steps)", "w1", "{:.3f}"),
        (f"W2 runs/s ({w2_runs} runs of 3 steps)", "runs_per_s", "{:.0f}"),
        ("W2 steps/s", "steps_per_s", "{:.0f}"),
        ("W2 wall ms per step (all nodes)", "wall_ms_per_step", "{:.2f}"),
        ("W2 node CPU ms per step (all nodes)", "cpu_ms_per_step", "{:.2f}"),
    ]
    for label, key, fmt in rows:
        cells = "".join(f"{fmt.format(results[n][key]):>16}" for n in NODE_COUNTS)
        print(f"  {label:<44}{cells}")
    shares = ["/".join(str(e) for e in results[n]["ended_per_node"]) for n in NODE_COUNTS]
    print(f"  {'W2 runs ended per node':<44}{''.join(f'{s:>16}' for s in shares)}")
    for n in NODE_COUNTS[1:]:
        others = results[n]["w1_spent"][1:]
        transactions = statistics.mean(o.transactions for o in others) / W1_RUNS
        trips = statistics.mean(o.round_trips for o in others) / W1_RUNS
        print(
            f"  during W1 on {n} nodes, each node not sent to: {transactions:.1f} "
            f"transactions and {trips:.1f} round trips per run"
        )
    per_minute = 60 / idle_s
    print(
        f"  one idle node, per minute (over {idle_s} s): "
        f"{quiet.transactions * per_minute:.1f} transactions, "
        f"{quiet.round_trips * per_minute:.1f} round trips, "
        f"{quiet.keep_alives * per_minute:.1f} listener keep-alives"
    )
    print(
        f"  1-step run, median of {W1_RUNS}: {direct:.1f} ms sent to the node that runs it; "
        f"{handed:.1f} ms committed by a node at capacity, run by an idle node it woke"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "node"])
    parser.add_argument("url", nargs="?")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    if args.mode == "node":
        asyncio.run(node_main(args.url, args.concurrency))
    else:
        asyncio.run(main(args.full))
