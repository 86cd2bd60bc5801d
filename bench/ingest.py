"""W6 ingest: events/s accepted by ``POST /e/{key}`` of a ``stepwell dev`` server, from a client
in another process.

    python -m bench.ingest --seconds 10                  # start a server, then a client
    python -m bench.ingest client URL SECONDS OUT        # the client alone

The server is ``stepwell dev`` on a fresh SQLite file at its defaults (WAL, ``synchronous=FULL``),
with no app, so the events start no run: what is measured is accepting them, i.e. validating,
storing and routing each batch and answering 200 once it is committed. The client keeps
``CONNECTIONS`` requests of 100 events in flight for the given time, counts the events the server
answered 200 for, and reports events/s and the request latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.stats import latency_result

BATCH = 100
CONNECTIONS = 4
ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0


async def client(url: str, seconds: float) -> dict[str, Any]:
    """Post batches of ``BATCH`` events to ``url`` from ``CONNECTIONS`` loops for ``seconds``."""
    accepted = 0
    failed = 0
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:
        await http.post(url, json=[{"name": "bench/w6", "data": {"warm": True}}])
        deadline = time.perf_counter() + seconds

        async def loop(worker: int) -> None:
            nonlocal accepted, failed
            sent = 0
            while time.perf_counter() < deadline:
                batch = [
                    {"name": "bench/w6", "data": {"worker": worker, "n": sent + i}}
                    for i in range(BATCH)
                ]
                start = time.perf_counter()
                response = await http.post(url, json=batch)
                latencies.append((time.perf_counter() - start) * 1000)
                if response.status_code == 200:
                    accepted += len(response.json()["ids"])
                else:
                    failed += 1
                sent += BATCH

        start = time.perf_counter()
        await asyncio.gather(*(loop(w) for w in range(CONNECTIONS)))
        elapsed = time.perf_counter() - start
    return {
        "events_per_s": accepted / elapsed,
        "events": accepted,
        "seconds": elapsed,
        "failed_requests": failed,
        "batch": BATCH,
        "connections": CONNECTIONS,
        "request_ms": latency_result(latencies),
    }


def measure(seconds: float) -> dict[str, Any]:
    """Start ``stepwell dev`` on a fresh database, run the client process against it, stop it."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    stepwell_cli = Path(sys.executable).with_name("stepwell")
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [
                str(stepwell_cli),
                "dev",
                "--port",
                str(port),
                "--db",
                str(Path(tmp) / "ingest.db"),
                "--no-discovery",
                "--poll-interval",
                "0",
            ],
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_ready(server, f"{base}/health")
            out = Path(tmp) / "client.json"
            command = ["-m", "bench.ingest", "client", f"{base}/e/bench", str(seconds), str(out)]
            subprocess.run(
                [sys.executable, *command],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                check=True,
                timeout=seconds + 60,
            )
            result: dict[str, Any] = json.loads(out.read_text())
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    result["settings"] = "stepwell dev, SQLite in WAL mode, synchronous=FULL (durable); no app"
    return result


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(server: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"stepwell dev exited at start with code {server.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"stepwell dev did not answer {url} within {START_TIMEOUT_S:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "client"])
    parser.add_argument("args", nargs="*")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if args.mode == "client":
        url, seconds, out = args.args
        Path(out).write_text(json.dumps(asyncio.run(client(url, float(seconds)))))
        return
    result = measure(args.seconds)
    print(
        f"W6 ingest: {result['events_per_s']:.0f} events/s accepted ({result['events']} events "
        f"in {result['seconds']:.1f} s, batches of {BATCH}, {CONNECTIONS} connections; "
        f"request p50 {result['request_ms']['p50_ms']:.1f} ms, p99 "
        f"{result['request_ms']['p99_ms']:.1f} ms over {result['request_ms']['samples']})"
    )


if __name__ == "__main__":
    main()
