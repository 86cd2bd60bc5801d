"""Restate: the server from npm (`@restatedev/restate-server`) and the Python SDK (`restate-sdk`).

A step is a `ctx.run` inside a service handler; a run is one invocation through the ingress,
awaited with a request-response call. W4's parent handler sends its children as one-way calls
(`ctx.service_send`) and returns their invocation ids; the benchmark then attaches to each
(`GET /restate/invocation/{id}/attach`) until it has ended. The server is started here as its docs show
(`npx @restatedev/restate-server`, or the binary named by `RESTATE_SERVER`), single node, with its
data in a temporary directory; the service is served by hypercorn on 127.0.0.1:9080 and
registered through the admin API, as `restate deployments register` does. Durability: the
server's default settings.
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
from pathlib import Path
from typing import Any

import httpx

from bench.peers import Unavailable, peer_main
from bench.sizes import Sizes
from bench.stats import W1_STEPS, fan_out_result, latency_result, w1_result, w2_result

ROOT = Path(__file__).resolve().parents[2]
INGRESS = "http://127.0.0.1:8080"
ADMIN = "http://127.0.0.1:9070"
SERVICE_URI = "http://127.0.0.1:9080"
SERVER_PACKAGE = "@restatedev/restate-server@1.7"


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


def measure(sizes: Sizes) -> dict[str, Any]:
    version = subprocess.run(
        [*server_command(), "--version"], capture_output=True, text=True, timeout=120, check=False
    ).stdout.split()
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
            result = asyncio.run(measure_async(sizes))
        finally:
            if service is not None:
                stop(service)
            stop(server)
    return {
        "settings": (
            "Restate server 1.7 (npm), single node, default settings, data in a temporary "
            "directory; Python SDK served by hypercorn (HTTP/2); runs invoked through the "
            "ingress, request-response"
        ),
        "server_version": version[-1] if version else "unknown",
        **result,
    }


if __name__ == "__main__":
    peer_main("restate", measure)
