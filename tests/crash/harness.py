"""The crash-safety suite's moving parts: engine nodes and the app as real processes, a driver
that sends events to whichever node is up, and a chaos loop that kills them.

Everything runs as subprocesses of the test, stopped with real signals; the test reads the
database directly through a :data:`~tests.crash.checker.Query`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.crash.checker import Query, Sent
from tests.crash.crash_app import STEPS
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
SIGNING_KEY = "signkey-test-" + "c4" * 32
EVENT_KEY = "crash"


@dataclass
class Proc:
    """A process the suite can kill and start again, on the same port."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.command, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, and wait until it is gone."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def wait_ready(self, path: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(self.url + path, timeout=0.5).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if not self.alive() or time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)


@dataclass
class Counts:
    """What the chaos loop did."""

    node_kills: int = 0
    node_restarts: int = 0
    app_kills: int = 0
    connections_terminated: int = 0

    def __str__(self) -> str:
        done = (
            f"{self.node_kills} node SIGKILLs, {self.node_restarts} node restarts, "
            f"{self.app_kills} app SIGKILL(s)"
        )
        if self.connections_terminated:
            done += f", {self.connections_terminated} PostgreSQL connections terminated"
        return done


@dataclass
class Cluster:
    """The app process and ``count`` engine nodes on ``database``.

    Args:
        node_module: the module run as a node (``stepwell.cli.main``, or a test wrapper).
    """

    tmp: Path
    database: str
    count: int = 3
    lease_s: float = 5
    node_module: str = "stepwell.cli.main"
    extra_env: dict[str, str] = field(default_factory=dict)
    nodes: list[Proc] = field(default_factory=list)
    app: Proc | None = None

    @property
    def log(self) -> Path:
        return self.tmp / "steps.log"

    def __post_init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.extra_env}
        ports = [free_port() for _ in range(self.count)]
        app_port = free_port()
        app_url = f"http://127.0.0.1:{app_port}/api/stepwell"
        self.app = Proc(
            "app",
            [sys.executable, "-m", "tests.crash.crash_app"],
            {
                **env,
                "CRASH_PORT": str(app_port),
                "CRASH_LOG": str(self.log),
                "CRASH_NODES": ",".join(f"http://127.0.0.1:{p}" for p in ports),
                "CRASH_SIGNING_KEY": SIGNING_KEY,
                "CRASH_EVENT_KEY": EVENT_KEY,
            },
            app_port,
            self.tmp / "app.log",
        )
        for i, port in enumerate(ports):
            command = [
                sys.executable,
                "-m",
                self.node_module,
                "start",
                "--database",
                self.database,
                "--signing-key",
                SIGNING_KEY,
                "--event-key",
                EVENT_KEY,
                "--port",
                str(port),
                "--lease-timeout",
                str(self.lease_s),
                "--retry-interval",
                "0.5",
                "--poll-interval",
                "5",
                "-u",
                app_url,
            ]
            self.nodes.append(Proc(f"n{i}", command, env, port, self.tmp / f"n{i}.log"))

    def start(self, query: Query) -> None:
        """Start the app and the nodes; return once the app's functions are synced (events sent
        before would start no run)."""
        assert self.app is not None
        self.app.start()
        self.app.wait_ready("/api/stepwell")
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_ready("/health")
        deadline = time.monotonic() + 30
        while query("SELECT COUNT(*) FROM functions") != [[len(STEPS)]]:
            if time.monotonic() > deadline:
                raise AssertionError("the nodes did not sync the app's functions")
            time.sleep(0.05)

    def stop(self) -> None:
        for proc in [*self.nodes, self.app]:
            if proc is not None:
                proc.stop()

    def live_nodes(self) -> list[Proc]:
        return [node for node in self.nodes if node.alive()] or self.nodes


@contextmanager
def running(cluster: Cluster, query: Query) -> Iterator[Cluster]:
    try:
        cluster.start(query)
        yield cluster
    finally:
        cluster.stop()


def send(cluster: Cluster, events: list[dict[str, Any]], timeout_s: float = 60) -> None:
    """POST ``events`` to a live node, trying others until one commits them.

    Every event carries a user-given id, so a batch sent again after an answer was lost (the
    node died mid-request) is de-duplicated by the engine rather than stored twice.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        node = random.choice(cluster.live_nodes())
        try:
            response = httpx.post(f"{node.url}/e/{EVENT_KEY}", json=events, timeout=10)
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"no node accepted {len(events)} events in {timeout_s} s")
        time.sleep(0.1)


def drive(
    cluster: Cluster,
    query: Query,
    orders: int,
    works: int,
    batch: int = 25,
    timeout_s: float = 240,
) -> Sent:
    """Send ``orders`` orders and ``works`` works, then each order's shipment once its wait is
    committed (an event only resumes waits that exist when it arrives); returns what was sent.
    """
    sent = Sent()
    pending = [sent.add(f"order-{n}", "crash/order", {"n": n}) for n in range(orders)]
    pending += [sent.add(f"work-{n}", "crash/work", {"n": n}) for n in range(works)]
    random.shuffle(pending)
    for start in range(0, len(pending), batch):
        send(cluster, pending[start : start + batch])
    shipped: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        waiting, ended = _orders(query)
        waiting = [n for n in waiting if n not in shipped]
        for start in range(0, len(waiting), batch):
            chunk = waiting[start : start + batch]
            send(
                cluster,
                [
                    sent.add(f"ship-{n}", "crash/shipped", {"n": n, "tracking": f"T{n}"})
                    for n in chunk
                ],
            )
            shipped.update(chunk)
        # an order that ended without waiting (failed) is the checker's to report
        if len(shipped | ended) >= orders:
            return sent
        if time.monotonic() > deadline:
            raise AssertionError(
                f"after {timeout_s} s, {orders - len(shipped | ended)} of {orders} orders "
                "neither reached their wait nor ended"
            )
        time.sleep(0.3)


def _orders(query: Query) -> tuple[list[int], set[int]]:
    """The orders waiting for their shipment, and those that ended."""
    waiting = query(
        "SELECT e.data FROM waits w JOIN runs r ON r.run_id = w.run_id "
        "JOIN events e ON e.event_id = r.event_id WHERE w.event_name = 'crash/shipped'"
    )
    ended = query(
        "SELECT e.data FROM runs r JOIN events e ON e.event_id = r.event_id "
        "WHERE r.function_id = 'crash-order' AND r.status IN ('Completed', 'Failed', 'Cancelled')"
    )
    return (
        sorted(json.loads(data)["n"] for [data] in waiting),
        {json.loads(data)["n"] for [data] in ended},
    )


class Chaos:
    """A background loop that SIGKILLs a random node every ``every_s`` seconds (give or take),
    ``kills`` times, restarting it each time, and once each kills the app process and terminates
    the database connections. It stops on its own so that the runs can settle.
    """

    def __init__(
        self,
        cluster: Cluster,
        kills: int = 20,
        every_s: tuple[float, float] = (1.0, 3.0),
        terminate: Callable[[], int] | None = None,
        app_kill_at: int = 3,
        terminate_at: int = 6,
    ) -> None:
        self.cluster = cluster
        self.kills = kills
        self.every_s = every_s
        self.terminate = terminate
        self.app_kill_at = app_kill_at
        self.terminate_at = terminate_at
        self.counts = Counts()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> Chaos:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def join(self) -> None:
        """Wait until the loop has done its kills."""
        self._thread.join()

    def stop(self) -> None:
        """Stop killing, and bring every process back up."""
        self._stop.set()
        self._thread.join()
        for proc in [self.cluster.app, *self.cluster.nodes]:
            assert proc is not None
            if not proc.alive():
                proc.start()
                self.counts.node_restarts += proc is not self.cluster.app
        assert self.cluster.app is not None
        self.cluster.app.wait_ready("/api/stepwell")
        for node in self.cluster.nodes:
            node.wait_ready("/health")
        if self.error is not None:
            raise self.error

    def _loop(self) -> None:
        try:
            rounds = 0
            while rounds < self.kills and not self._stop.wait(random.uniform(*self.every_s)):
                rounds += 1
                node = random.choice(self.cluster.nodes)
                if node.alive():
                    node.kill()
                    self.counts.node_kills += 1
                if rounds == self.app_kill_at:
                    self._kill_app()
                # once, from that round on: until it has found connections to terminate
                due = rounds >= self.terminate_at and not self.counts.connections_terminated
                if due and self.terminate is not None:
                    self.counts.connections_terminated += self.terminate()
                if self._stop.wait(random.uniform(0.2, 1.0)):
                    return
                node.start()
                self.counts.node_restarts += 1
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def _kill_app(self) -> None:
        app = self.cluster.app
        assert app is not None
        app.kill()
        self.counts.app_kills += 1
        time.sleep(0.5)
        app.start()
        app.wait_ready("/api/stepwell")


def wait_until_settled(query: Query, expected_runs: int, timeout_s: float = 240) -> None:
    """Until at least ``expected_runs`` runs (cron runs aside) exist, all ended, and no queue
    item is left."""
    deadline = time.monotonic() + timeout_s
    state: tuple[Any, ...] = ()
    while time.monotonic() < deadline:
        [[runs, open_runs]] = query(
            "SELECT COALESCE(SUM(CASE WHEN function_id = 'crash-tick' THEN 0 ELSE 1 END), 0), "
            "COALESCE(SUM(CASE WHEN status IN ('Completed', 'Failed', 'Cancelled') "
            "THEN 0 ELSE 1 END), 0) FROM runs"
        )
        [[queued]] = query("SELECT COUNT(*) FROM queue")
        state = (runs, open_runs, queued)
        if runs >= expected_runs and open_runs == 0 and queued == 0:
            return
        time.sleep(0.5)
    runs, open_runs, queued = state
    raise AssertionError(
        f"not settled after {timeout_s} s: {runs} of {expected_runs} runs, {open_runs} not "
        f"ended, {queued} queue items"
    )
