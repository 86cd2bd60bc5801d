"""Restate: the server from npm (`@restatedev/restate-server`) and the Python SDK (`restate-sdk`).

A step is a `ctx.run` inside a service handler; a run is one invocation through the ingress,
awaited with a request-response call. W4's parent handler sends its children as one-way calls
(`ctx.service_send`) and returns their invocation ids; the benchmark then attaches to each
(`GET /restate/invocation/{id}/attach`) until it has ended. The server is started here as its docs show
(`npx @restatedev/restate-server`, or the binary named by `RESTATE_SERVER`), single node, with its
data in a temporary directory; the service is served by hypercorn on 127.0.0.1:9080 and
registered through the admin API, as `restate deployments register` does. Durability: the
server's default settings.

W5 and W7 (`--workload w5|w7`) each start a server of their own. W5's `sleeper` handler is sent
one-way (`/Bench/sleeper/send`) and sleeps with `ctx.sleep`; the benchmark attaches to each
invocation for its lateness. W7's runs are the workflow `Waiter` keyed `w{n}`, waiting on a durable
promise, resolved by its shared handler `approve` (one-way `/Waiter/w{n}/approve/send`); ingest
is the same signal sent to ids no run waits for. Runs are counted as asleep or waiting once their
journal holds the sleep or promise command (the server's SQL introspection, `POST /query`). RSS is
the `restate-server` process's (the one that keeps the runs); the hypercorn service's is recorded
as `service_rss_mb`: by default the server keeps an invocation open on the service for a minute
before suspending it, so a sleep shorter than that (quick mode's 15 s) is held there too.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.peers import Unavailable, capacity, peer_main
from bench.sizes import Sizes
from bench.stats import W1_STEPS, fan_out_result, latency_result, w1_result, w2_result

ROOT = Path(__file__).resolve().parents[2]
INGRESS = "http://127.0.0.1:8080"
ADMIN = "http://127.0.0.1:9070"
SERVICE_URI = "http://127.0.0.1:9080"
SERVER_PACKAGE = "@restatedev/restate-server@1.7"
HELD = capacity.Held(
    "the restate-server process", "the server's data directory (RocksDB and its log), every file"
)


def server_command() -> list[str]:
    if command := os.environ.get("RESTATE_SERVER"):
        return shlex.split(command)
    if path := shutil.which("restate-server"):
        return [path]
    if npx := shutil.which("npx"):
        return [npx, "--yes", SERVER_PACKAGE]
    raise Unavailable("no restate-server: set RESTATE_SERVER, or install Node.js for npx")


def spawn(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process's whole group (npx, node, the server) and wait until it is gone."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            process.poll()
            os.killpg(process.pid, 0)
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def wait_ready(process: subprocess.Popen[bytes], url: str, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Unavailable(f"{what} exited at start with code {process.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise Unavailable(f"{what} did not answer at {url} within {timeout:.0f} s")


async def measure_async(sizes: Sizes) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=INGRESS, timeout=120.0, limits=limits) as client:

        async def run(handler: str, n: int) -> Any:
            response = await client.post(f"/Bench/{handler}", json=n)
            response.raise_for_status()
            return response.json()

        for n in range(sizes.w1_warmup):
            await run("tenSteps", n)
        samples = []
        for n in range(sizes.w1_runs):
            start = time.perf_counter()
            await run("tenSteps", n)
            samples.append((time.perf_counter() - start) * 1000 / W1_STEPS)
        runs = sizes.w2_runs
        start = time.perf_counter()
        await asyncio.gather(*(run("threeSteps", n) for n in range(runs)))
        w2 = w2_result(runs, time.perf_counter() - start)
        latencies = []
        for n in range(sizes.w3_events):
            start = time.monotonic()
            latencies.append((float(await run("firstStep", n)) - start) * 1000)
        start = time.perf_counter()
        ids = await run("fanOut", sizes.w4_children)
        attached = asyncio.Semaphore(100)

        async def attach(invocation_id: str) -> None:
            async with attached:
                response = await client.get(f"/restate/invocation/{invocation_id}/attach")
                response.raise_for_status()

        await asyncio.gather(*(attach(i) for i in ids))
        w4 = fan_out_result(len(ids), time.perf_counter() - start)
        return {"w1": w1_result(samples), "w2": w2, "w3": latency_result(latencies), "w4": w4}


@dataclass
class Running:
    """A started server and service: the server's process group, the service's process, and the
    server's data directory."""

    server: subprocess.Popen[bytes]
    service: subprocess.Popen[bytes]
    data: Path

    def server_rss_mb(self) -> float:
        """The RSS of the `restate-server` process itself (npx and node only launched it)."""
        for pid, name in capacity.group_processes(self.server.pid):
            if name.startswith("restate-server"):
                return capacity.process_rss_mb(pid)
        return capacity.process_rss_mb(self.server.pid)

    async def parked(
        self, client: httpx.AsyncClient, command: str, runs: int, start: float
    ) -> tuple[float, float, float]:
        """Wait until ``runs`` journals hold ``command``; the seconds since ``start``, the
        service's RSS and the data directory's size then, in MB."""
        while await journal_count(client, command) < runs:
            await asyncio.sleep(0.2)
        started = time.perf_counter() - start
        return started, capacity.process_rss_mb(self.service.pid), capacity.dir_mb(self.data)


@contextmanager
def running() -> Iterator[Running]:
    """Start the server and the hypercorn-served service, register it; stop both at the end."""
    with tempfile.TemporaryDirectory() as tmp:
        server = spawn(server_command(), Path(tmp))
        service = None
        try:
            wait_ready(server, f"{ADMIN}/health", "restate-server", 120)
            hypercorn = [sys.executable, "-m", "hypercorn", "bench.peers.restate_service:app"]
            service = spawn([*hypercorn, "--bind", "127.0.0.1:9080"], ROOT)
            wait_ready(service, SERVICE_URI, "the hypercorn-served service", 30)
            registered = httpx.post(f"{ADMIN}/deployments", json={"uri": SERVICE_URI}, timeout=30)
            if registered.is_error:
                raise Unavailable(f"registering the deployment failed: {registered.text}")
            yield Running(server, service, Path(tmp))
        finally:
            if service is not None:
                stop(service)
            stop(server)


def measure(sizes: Sizes) -> dict[str, Any]:
    version = subprocess.run(
        [*server_command(), "--version"], capture_output=True, text=True, timeout=120, check=False
    ).stdout.split()
    with running():
        result = asyncio.run(measure_async(sizes))
    return {
        "settings": (
            "Restate server 1.7 (npm), single node, default settings, data in a temporary "
            "directory; Python SDK served by hypercorn (HTTP/2); runs invoked through the "
            "ingress, request-response"
        ),
        "server_version": version[-1] if version else "unknown",
        **result,
    }


async def journal_count(client: httpx.AsyncClient, entry_type: str) -> int:
    """How many invocations' journals hold a command of ``entry_type`` (the server's SQL
    introspection API): how many runs have reached their sleep or wait."""
    query = f"SELECT count(*) AS n FROM sys_journal WHERE entry_type = '{entry_type}'"
    response = await client.post(
        f"{ADMIN}/query", json={"query": query}, headers={"accept": "application/json"}
    )
    response.raise_for_status()
    return int(response.json()["rows"][0]["n"])


def _client() -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    return httpx.AsyncClient(base_url=INGRESS, timeout=600.0, limits=limits)


async def _gather_limited(calls: list[Any], limit: int = 100) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Any) -> Any:
        async with gate:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


async def w5_async(sizes: Sizes, at: Running) -> dict[str, Any]:
    runs, sleep_ms = sizes.peer_w5_runs, sizes.peer_w5_sleep_s * 1000
    rss = {"idle": at.server_rss_mb()}
    async with _client() as client:

        async def send(due: float) -> str:
            response = await client.post("/Bench/sleeper/send", json=due)
            response.raise_for_status()
            return str(response.json()["invocationId"])

        async def attach(invocation_id: str) -> float:
            response = await client.get(f"/restate/invocation/{invocation_id}/attach")
            response.raise_for_status()
            return float(response.json())

        start = time.perf_counter()
        ids: list[str] = []
        for sent in range(0, runs, capacity.W5_BATCH):
            await asyncio.sleep(max(0.0, start + sent / capacity.W5_RATE - time.perf_counter()))
            dues = [
                time.time() * 1000 + sleep_ms for _ in range(min(capacity.W5_BATCH, runs - sent))
            ]
            ids += await asyncio.gather(*(send(due) for due in dues))
        started, service_rss, size = await at.parked(client, "Command: Sleep", runs, start)
        rss["asleep"] = at.server_rss_mb()
        late = await _gather_limited([attach(i) for i in ids])
    result = capacity.w5_result(sizes, started, late, rss, size, HELD)
    result["w5"]["service_rss_mb"] = service_rss
    return result


async def w7_async(sizes: Sizes, at: Running) -> dict[str, Any]:
    waits, matches = sizes.peer_w7_waits, sizes.peer_w7_matches
    rss = {"idle": at.server_rss_mb()}
    async with _client() as client:

        async def post(path: str, body: Any = None) -> None:
            response = await client.post(path, json=body)
            response.raise_for_status()

        async def to_nobody(first: int) -> None:
            """Signals `approve` to 100 workflows that do not run, at once."""
            paths = [f"/Waiter/none-{first + n}/approve/send" for n in range(100)]
            await asyncio.gather(*(post(path, 0) for path in paths))

        # warm-up, untimed: a freshly started server accepts the first of these far slower
        await capacity.ingest(lambda first: to_nobody(-100_000 + first))
        before = await capacity.ingest(to_nobody)
        start = time.perf_counter()
        for first in range(0, waits, 100):
            while first - await journal_count(client, "Command: GetPromise") >= capacity.IN_FLIGHT:
                await asyncio.sleep(0.05)
            batch = range(first, min(first + 100, waits))
            await asyncio.gather(*(post(f"/Waiter/w{n}/run/send") for n in batch))
        started, service_rss, size = await at.parked(client, "Command: GetPromise", waits, start)
        rss["waiting"] = at.server_rss_mb()
        while_waiting = await capacity.ingest(lambda first: to_nobody(100_000 + first))
        start = time.perf_counter()
        for first in range(0, matches, 100):
            batch = range(first, min(first + 100, matches))
            await asyncio.gather(*(post(f"/Waiter/w{n}/approve/send", n) for n in batch))
        attached = [client.get(f"/restate/workflow/Waiter/w{n}/attach") for n in range(matches)]
        for response in await _gather_limited(attached):
            response.raise_for_status()
        resumed = time.perf_counter() - start
    what = "one-way calls of Waiter/approve on ids no run waits for, 100 at once"
    figures = capacity.ingest_figures(before, while_waiting, what)
    result = capacity.w7_result(sizes, started, resumed, rss, size, HELD, figures)
    result["w7"]["service_rss_mb"] = service_rss
    return result


def measure_w5(sizes: Sizes) -> dict[str, Any]:
    with running() as at:
        return asyncio.run(w5_async(sizes, at))


def measure_w7(sizes: Sizes) -> dict[str, Any]:
    with running() as at:
        return asyncio.run(w7_async(sizes, at))


if __name__ == "__main__":
    peer_main("restate", measure, {"w5": measure_w5, "w7": measure_w7})
