"""Every workload on every system, in one run: what ``python -m bench`` measures.

Parts, run one after the other so that none competes with another for the 2 cores:

* ``embedded``: W1–W4 on stepwell embedded, in this process (:mod:`bench.embedded`);
* ``w5``, ``w7``: stepwell embedded, each in a fresh process (:mod:`bench.capacity`);
* ``w6``: a ``stepwell dev`` server and a client process (:mod:`bench.ingest`);
* ``postgres``: W1 and W2 on PostgreSQL with one and two nodes (:mod:`bench.postgres`'s public functions);
* ``http``: W1 over HTTP: stepwell's SDK served, the official Python and TS SDKs (:mod:`bench.http`);
* ``celery``, ``dbos``, ``restate``: W1–W4 on each peer, each in a process of its own
  (:mod:`bench.peers`); then, for the peers with durable sleeps and waits (``CAPACITY_PEERS``),
  W5 and W7 each in a fresh process of its own, at the peers' sizes (``Sizes.peer_w5_runs``...).

A part that fails is recorded with the reason and the others still run. Before each part, the
machine's speed is probed (:mod:`bench.probe`) and kept with the part's results.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.sizes import Sizes

ROOT = Path(__file__).resolve().parents[1]
PEERS = ("celery", "dbos", "restate")
PARTS = ("embedded", "w5", "w6", "w7", "postgres", "http", *PEERS)
PEER_TIMEOUT_S = 300.0
CAPACITY_PEERS = ("dbos", "restate")
"""Peers with a durable sleep and wait, on which W5 and W7 run too (Celery has neither)."""


def run_parts(parts: tuple[str, ...], mode: str, sizes: Sizes) -> dict[str, dict[str, Any]]:
    """Run ``parts`` (names from ``PARTS``) in order; each part's result or failure by name."""
    from bench import probe

    results: dict[str, dict[str, Any]] = {}
    for part in parts:
        speed = probe.measure()  # before the part: which phase of the machine it ran in
        print(f"-- {part} ({probe.describe(speed)})", flush=True)
        started = time.perf_counter()
        try:
            result = _PARTS[part](mode, sizes)
        except Exception as exc:  # any failure is reported as the reason the part did not run
            traceback.print_exc()
            result = {"unavailable": f"{type(exc).__name__}: {exc}"[:500]}
        result["part_seconds"] = time.perf_counter() - started
        result["probe"] = speed
        results[part] = result
        if "unavailable" in result:
            print(f"   could not run: {result['unavailable']}", flush=True)
        else:
            print(f"   done in {result['part_seconds']:.0f} s", flush=True)
    return results


def _embedded(mode: str, sizes: Sizes) -> dict[str, Any]:
    from bench import embedded

    return asyncio.run(embedded.measure(sizes))


def _w5(mode: str, sizes: Sizes) -> dict[str, Any]:
    args = ["w5", "--runs", str(sizes.w5_runs), "--sleep", str(sizes.w5_sleep_s)]
    timeout = sizes.w5_runs / sizes.w5_rate + sizes.w5_sleep_s + 600
    return _in_process("bench.capacity", [*args, "--rate", str(sizes.w5_rate)], timeout)


def _w7(mode: str, sizes: Sizes) -> dict[str, Any]:
    args = ["w7", "--waits", str(sizes.w7_waits), "--matches", str(sizes.w7_matches)]
    return _in_process("bench.capacity", args, 120 + sizes.w7_waits / 100 + sizes.w7_matches / 20)


def _w6(mode: str, sizes: Sizes) -> dict[str, Any]:
    from bench import ingest

    return ingest.measure(sizes.w6_seconds)


def _postgres(mode: str, sizes: Sizes) -> dict[str, Any]:
    from bench import postgres
    from stepwell.store.postgres import parse_url

    async def on_nodes(count: int) -> dict[str, Any]:
        async with postgres.cluster(count) as made:
            w1 = await postgres.w1(made)
            w2 = await postgres.w2(made, sizes.w2_runs)
        spent = w1["w1_spent"][0]  # on the node the W1 events were sent to
        return {
            "w1": {
                "ms_per_step_median": w1["w1"],
                "samples": postgres.W1_RUNS,
                "transactions_per_run": spent.transactions / postgres.W1_RUNS,
                "round_trips_per_run": spent.round_trips / postgres.W1_RUNS,
            },
            "w2": {key: w2[key] for key in ("runs_per_s", "steps_per_s", "seconds")}
            | {"runs": sizes.w2_runs, "ended_per_node": w2["ended_per_node"]},
        }

    result = asyncio.run(on_nodes(1))
    result["two_nodes"] = asyncio.run(on_nodes(2))
    server = parse_url(postgres.URL)
    result["server_version"] = _postgres_version(server)
    result["settings"] = (
        f"stepwell on PostgreSQL at {server.host}:{server.port}, 1 and 2 engine nodes (each a "
        "process of its own), concurrency 64, the server's defaults (fsync on, synchronous_commit on)"
    )
    return result


def _postgres_version(server: Any) -> str:
    import pg8000.native

    keys = ("host", "port", "database", "password")
    conn = pg8000.native.Connection(server.user, **{k: getattr(server, k) for k in keys})
    try:
        return str(conn.run("SHOW server_version")[0][0])
    finally:
        conn.close()


def _http(mode: str, sizes: Sizes) -> dict[str, Any]:
    from bench import http

    return {"w1_modes": asyncio.run(http.measure())}


def _peer(name: str) -> Callable[[str, Sizes], dict[str, Any]]:
    def measure(mode: str, sizes: Sizes) -> dict[str, Any]:
        module = f"bench.peers.{name}_peer"
        result = _in_process(module, ["--mode", mode], PEER_TIMEOUT_S)
        if name not in CAPACITY_PEERS or "unavailable" in result:
            return result
        timeouts = {
            "w5": sizes.peer_w5_runs / 250 + sizes.peer_w5_sleep_s + PEER_TIMEOUT_S,
            "w7": sizes.peer_w7_waits / 50 + sizes.peer_w7_matches / 20 + PEER_TIMEOUT_S,
        }
        for workload, timeout in timeouts.items():
            found = _in_process(module, ["--mode", mode, "--workload", workload], timeout)
            result[workload] = found.get(workload, {"unavailable": found.get("unavailable")})
            _print_capacity(name, workload, result[workload])
        return result

    return measure


def _print_capacity(peer: str, workload: str, found: dict[str, Any]) -> None:
    if "unavailable" in found:
        print(f"   {peer} {workload}: could not run: {found['unavailable']}", flush=True)
    elif workload == "w5":
        print(
            f"   {peer} w5: {found['runs']:,} runs asleep {found['sleep_s']:.0f} s, RSS "
            f"{found['rss_mb']:.0f} MB, storage {found['db_mb']:.1f} MB, late p50/p99 "
            f"{found['late_p50_ms']:.1f}/{found['late_p99_ms']:.1f} ms (n={found['samples']:,})",
            flush=True,
        )
    else:
        print(
            f"   {peer} w7: {found['waits']:,} waiting, RSS {found['rss_mb']:.0f} MB; "
            f"{found['matches']:,} resumed at {found['resumed_per_s']:.0f}/s; ingest "
            f"{found.get('ingest_per_s_no_waits', 0):.0f} → {found.get('ingest_per_s_waiting', 0):.0f}"
            f"/s (n={found.get('ingest_events', 0):,})",
            flush=True,
        )


def _in_process(module: str, args: list[str], timeout_s: float) -> dict[str, Any]:
    """Run ``python -m module *args --out FILE`` and return the JSON object it wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", module, *args, "--out", str(out)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        try:
            subprocess.run(command, cwd=ROOT, env=env, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return {"unavailable": f"did not finish within {timeout_s:.0f} s"}
        if not out.exists():
            return {"unavailable": "its process ended without writing a result"}
        result: dict[str, Any] = json.loads(out.read_text())
        return result


_PARTS: dict[str, Callable[[str, Sizes], dict[str, Any]]] = {
    "embedded": _embedded,
    "w5": _w5,
    "w6": _w6,
    "w7": _w7,
    "postgres": _postgres,
    "http": _http,
    **{name: _peer(name) for name in PEERS},
}
