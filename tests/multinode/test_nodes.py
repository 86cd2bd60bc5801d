"""Several engine nodes on one PostgreSQL schema: they share the work, every run ends once, every
step is recorded once, a cron tick fires once, and a node killed mid-flight loses nothing.

The nodes are ``stepwell start`` processes serving ``cluster_app.py`` in-process. Runs and memo
are read straight from the database; the step log the app writes tells which node ran what.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

import stepwell
from stepwell.clock import FakeClock
from stepwell.engine.engine import Engine
from stepwell.protocol.step_ids import hash_step_id
from stepwell.store.postgres import PostgresStore
from tests.conformance.conftest import pg_connect
from tests.support import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

T = TypeVar("T")
APP = Path(__file__).with_name("cluster_app.py")
SIGNING_KEY = "signkey-test-" + "5e" * 32
EVENT_KEY = "multinode"


@dataclass
class Node:
    """One ``stepwell start`` process."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def send(self, name: str, data: dict[str, Any]) -> str:
        response = httpx.post(
            f"http://127.0.0.1:{self.port}/e/{EVENT_KEY}", json={"name": name, "data": data}
        )
        response.raise_for_status()
        [event_id] = response.json()["ids"]
        return str(event_id)

    def healthy(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=0.5).is_success
        except httpx.HTTPError:
            return False


@contextmanager
def cluster(tmp: Path, url: str, count: int = 3, lease_s: float = 30) -> Iterator[list[Node]]:
    """``count`` nodes on ``url``, started together; stopped (or already dead) on exit."""
    nodes = [_spawn(tmp, url, f"n{i}", lease_s) for i in range(count)]
    try:
        deadline = time.monotonic() + 30
        for node in nodes:
            while not node.healthy():
                if node.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"{node.name} did not start:\n{node.log.read_text()}")
                time.sleep(0.05)
        yield nodes
    finally:
        for node in nodes:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in nodes:
            try:
                node.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()


def _spawn(tmp: Path, url: str, name: str, lease_s: float) -> Node:
    port = free_port()
    log = tmp / f"{name}.log"
    env = {**os.environ, "CLUSTER_LOG": str(tmp / "steps.log"), "CLUSTER_NODE": name}
    command = [
        sys.executable,
        "-m",
        "stepwell.cli.main",
        "start",
        str(APP),
        "--database",
        url,
        "--signing-key",
        SIGNING_KEY,
        "--event-key",
        EVENT_KEY,
        "--port",
        str(port),
        "--lease-timeout",
        str(lease_s),
    ]
    with log.open("ab") as stderr:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    return Node(name, port, proc, log)


def eventually(check: Callable[[], T | None], what: str, timeout_s: float = 90) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.1)


def step_log(tmp: Path) -> list[tuple[str, str, str]]:
    """``(node, run_id, step)`` for every step body execution so far."""
    path = tmp / "steps.log"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [(node, run, step) for node, run, step in (line.split() for line in lines)]


def runs_by_function(db: Any) -> dict[str, list[dict[str, Any]]]:
    rows = db.run("SELECT run_id, function_id, status, event_id, output FROM runs")
    found: dict[str, list[dict[str, Any]]] = {}
    for run_id, function_id, status, event_id, output in rows:
        found.setdefault(function_id.removeprefix("cluster-"), []).append(
            {
                "run_id": run_id,
                "status": status,
                "event_id": event_id,
                "output": None if output is None else json.loads(output),
            }
        )
    return found


def all_completed(db: Any, expected: int) -> bool:
    [[done]] = db.run("SELECT count(*) FROM runs WHERE status = 'Completed'")
    return bool(done == expected)


def assert_each_ended_once(db: Any, run_ids: set[str]) -> None:
    """One ``function.finished`` event per run of ``run_ids``, and none twice for any run."""
    rows = db.run("SELECT data FROM events WHERE name = 'inngest/function.finished'")
    finished = Counter(json.loads(data)["run_id"] for [data] in rows)
    assert run_ids <= set(finished)
    assert set(finished.values()) == {1}


def memo_keys(db: Any) -> list[tuple[str, str]]:
    return [(run_id, step_key) for run_id, step_key in db.run("SELECT run_id, step_key FROM memo")]


def assert_memo_once(db: Any, expected: set[tuple[str, str]]) -> None:
    """Every step of every run (``(run_id, step_id)``) is in the memo exactly once."""
    memo = Counter(memo_keys(db))
    assert set(memo) == {(run_id, hash_step_id(step_id)) for run_id, step_id in expected}
    assert set(memo.values()) == {1}


def test_three_nodes_share_the_work_and_every_run_ends_once(tmp_path: Path, pg_url: str) -> None:
    orders = 100
    with cluster(tmp_path, pg_url) as nodes, closing(pg_connect(pg_url)) as db:
        sent = {nodes[n % 3].send("cluster/order", {"n": n}): n for n in range(orders)}

        def waiting() -> bool:
            [[count]] = db.run("SELECT count(*) FROM waits WHERE event_name = 'cluster/shipped'")
            return bool(count == orders)

        eventually(waiting, "every order slept and waits for its shipment")
        for n in range(orders):
            nodes[(n + 1) % 3].send("cluster/shipped", {"n": n, "tracking": f"T{n}"})
        eventually(lambda: all_completed(db, 4 * orders), "every run completed")
        runs = runs_by_function(db)

        assert {f: len(r) for f, r in runs.items()} == {
            "order": orders,
            "item": 2 * orders,
            "quote": orders,
        }
        assert Counter(r["event_id"] for r in runs["order"]) == Counter(list(sent))
        assert sorted((r["output"] for r in runs["order"]), key=lambda o: o["n"]) == [
            {"n": n, "tracking": f"T{n}", "total": 11 * n} for n in range(orders)
        ]
        assert sorted(r["output"] for r in runs["item"]) == sorted(
            f"{n}.{i}" for n in range(orders) for i in range(2)
        )
        assert sorted(r["output"] for r in runs["quote"]) == [10 * n for n in range(orders)]

        steps = {
            "order": ["load", "nap", "shipped", "fan-out", "quote", "total"],
            "item": ["pack"],
            "quote": ["price"],
        }
        expected = {(r["run_id"], s) for f, rs in runs.items() for r in rs for s in steps[f]}
        assert_memo_once(db, expected)
        # Runs started by invoke emit no end event of their own: their result goes to the caller.
        assert_each_ended_once(db, {r["run_id"] for f in ("order", "item") for r in runs[f]})

    executions = step_log(tmp_path)
    bodies = {"load", "total", "pack", "price"}
    assert {(run, step) for _, run, step in executions} == {
        (run, step) for run, step in expected if step in bodies
    }, "every step body ran at least once"
    ended_on = Counter(node for node, _, step in executions if step in {"total", "pack", "price"})
    assert set(ended_on) == {"n0", "n1", "n2"}, f"the work was not shared: {ended_on}"


def test_a_killed_nodes_runs_are_taken_over_once_its_lease_expires(
    tmp_path: Path, pg_url: str
) -> None:
    count = 30
    # Leases of 3 s: short for the test, long enough that a busy machine delaying the
    # victim's renewals does not hand its runs over before it is killed.
    with cluster(tmp_path, pg_url, lease_s=3) as nodes, closing(pg_connect(pg_url)) as db:
        victim = nodes[0]
        sent = {victim.send("cluster/long", {"n": n}): n for n in range(count)}
        eventually(
            lambda: len(step_log(tmp_path)) >= 2 * count, "the victim is halfway through its runs"
        )
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        memo_at_kill = set(memo_keys(db))
        by_victim = step_log(tmp_path)

        eventually(lambda: all_completed(db, count), "the survivors completed every run")
        [runs] = runs_by_function(db).values()
        assert Counter(r["event_id"] for r in runs) == Counter(list(sent))
        assert sorted(r["output"] for r in runs) == list(range(count))
        steps = [*(f"s{i}" for i in range(8)), "nap", "end"]
        expected = {(r["run_id"], s) for r in runs for s in steps}
        assert_memo_once(db, expected)
        assert_each_ended_once(db, {r["run_id"] for r in runs})

    assert {node for node, _, _ in by_victim} == {"n0"}, "only the victim had run steps"
    executions = Counter((run, step) for _, run, step in step_log(tmp_path))
    assert {key for key in expected if key[1] != "nap"} <= set(executions), "a step never ran"
    for run, step in expected:
        if (run, hash_step_id(step)) in memo_at_kill and step != "nap":
            times = executions[run, step]
            assert times == 1, f"step {step} of {run} was recorded, yet ran {times} times"
    taken_over = {run for node, run, _ in step_log(tmp_path) if node != "n0"}
    unfinished = {r["run_id"] for r in runs} - {run for _, run, step in by_victim if step == "end"}
    assert unfinished, "the victim had finished everything; the test proves nothing"
    assert taken_over == unfinished


def test_a_stopped_node_hands_its_runs_over_at_once(tmp_path: Path, pg_url: str) -> None:
    count = 10
    # With 10-minute leases, the other nodes look at the queue on their own only once a minute,
    # after this test's deadline: only the stopping node handing its items back moves them.
    with cluster(tmp_path, pg_url, lease_s=600) as nodes, closing(pg_connect(pg_url)) as db:
        victim = nodes[0]
        sent = {victim.send("cluster/hold", {"n": n}): n for n in range(count)}
        eventually(lambda: len(step_log(tmp_path)) == count, "the victim holds every run")
        victim.proc.send_signal(signal.SIGTERM)  # its steps outlast the 5 s grace
        assert victim.proc.wait(timeout=30) == 0
        eventually(lambda: all_completed(db, count), "the others completed every run", 40)
        [runs] = runs_by_function(db).values()
        assert Counter(r["event_id"] for r in runs) == Counter(list(sent))
        assert sorted(r["output"] for r in runs) == list(range(count))
        assert_memo_once(db, {(r["run_id"], "hold") for r in runs})

    entered = Counter((node == "n0", run) for node, run, _ in step_log(tmp_path))
    assert entered == Counter({(stopped, r["run_id"]): 1 for r in runs for stopped in (1, 0)})


async def test_a_cron_tick_fires_once_across_nodes(pg_url: str) -> None:
    app = stepwell.App("cluster-cron")
    ticks: list[str] = []

    @app.function("minutely", trigger=stepwell.Cron("* * * * *"))
    async def minutely(ctx: stepwell.Context) -> str:
        return await ctx.step.run("tick", lambda: ticks.append(ctx.run_id) or ctx.run_id)

    clock = FakeClock()
    nodes = [Engine(PostgresStore(pg_url), clock=clock, node_id=f"n{i}") for i in range(3)]
    handlers = {fn.full_id: fn for fn in app.functions}
    for node in nodes:
        await node.start(loops=False)
        await node.register(app.register_request(), handlers)
    try:
        for _ in range(5):
            clock.advance(60_000)
            # every node finds the same tick due and tries to fire it, at the same time
            await asyncio.gather(*(node.tick() for node in nodes))
            await asyncio.gather(*(node.run_until_idle() for node in nodes))
        with closing(pg_connect(pg_url)) as db:
            runs = db.run("SELECT run_id, status FROM runs")
            [[fired]] = db.run("SELECT count(*) FROM cron_ticks")
    finally:
        for node in nodes:
            await node.stop()
    assert fired == 5
    assert sorted(runs) == sorted([run_id, "Completed"] for run_id in ticks)
    assert len(ticks) == 5
