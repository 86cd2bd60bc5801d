"""Stepwell beside its peers, in the same run: W1 per-step overhead and W2 throughput.

    pip install -e '.[bench]'
    python -m bench.compare --quick      # W2 with 300 runs; without --quick, 1,000

Stepwell runs embedded (as `python -m bench` does) in this process; each peer (Celery, DBOS,
Restate: `bench.peers`) runs in a process of its own that starts and stops its services. Prints a
table of absolute figures and the ratio stepwell ÷ best peer, each system's durability settings,
the reason any peer could not run, and writes everything to `bench/results.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import __main__ as embedded_bench
from bench.peers import W1_RUNS, W1_WARMUP, w2_runs
from stepwell.embedded import Embedded
from stepwell.store.records import RunRecord

ROOT = Path(__file__).resolve().parents[1]
PEERS = ("celery", "dbos", "restate")
PEER_TIMEOUT = 240.0
RESULTS = ROOT / "bench" / "results.json"


async def measure_stepwell(quick: bool) -> dict[str, Any]:
    done: dict[str, asyncio.Future[None]] = {}
    app = embedded_bench.build_app(done)
    with tempfile.TemporaryDirectory() as tmp:
        async with Embedded([app], db=str(Path(tmp) / "bench.db")) as embedded:

            def ended(run: RunRecord, status: str) -> None:
                fut = done.pop(run.event_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(None)

            embedded.engine.run_listeners.append(ended)
            await embedded_bench.w1_per_step(app, done, W1_WARMUP)
            w1 = await embedded_bench.w1_per_step(app, done, W1_RUNS)
            w2 = await embedded_bench.w2_throughput(app, done, w2_runs(quick))
    return {
        "system": "stepwell",
        "settings": "stepwell embedded, SQLite in WAL mode, synchronous=FULL (durable)",
        "w1": w1,
        "w2": w2,
    }


def measure_peer(name: str, quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        args = [sys.executable, "-m", f"bench.peers.{name}_peer", "--out", str(out)]
        if quick:
            args.append("--quick")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        try:
            subprocess.run(args, cwd=ROOT, env=env, timeout=PEER_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            return {"system": name, "unavailable": f"did not finish within {PEER_TIMEOUT:.0f} s"}
        if not out.exists():
            return {"system": name, "unavailable": "its process ended without writing a result"}
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def ratios(systems: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Stepwell ÷ the best peer: W1 against the lowest ms/step, W2 against the most steps/s."""
    ran = {name: r for name, r in systems.items() if name != "stepwell" and "w1" in r}
    if not ran or "w1" not in systems["stepwell"]:
        return {}
    w1_best = min(ran, key=lambda name: ran[name]["w1"]["ms_per_step_median"])
    w2_best = max(ran, key=lambda name: ran[name]["w2"]["steps_per_s"])
    mine = systems["stepwell"]
    return {
        "w1": {
            "best_peer": w1_best,
            "ratio": mine["w1"]["ms_per_step_median"] / ran[w1_best]["w1"]["ms_per_step_median"],
            "meaning": "stepwell ms/step ÷ best peer's; below 1 is faster",
        },
        "w2": {
            "best_peer": w2_best,
            "ratio": mine["w2"]["steps_per_s"] / ran[w2_best]["w2"]["steps_per_s"],
            "meaning": "stepwell steps/s ÷ best peer's; above 1 is more throughput",
        },
    }


def table(systems: dict[str, dict[str, Any]], ratio: dict[str, dict[str, Any]]) -> str:
    names = ["stepwell", *PEERS]

    def cell(name: str, workload: str) -> str:
        r = systems[name]
        if workload not in r:
            return "n/a"
        if workload == "w1":
            return f"{r['w1']['ms_per_step_median']:.2f} ms/step (n={r['w1']['samples']})"
        w2 = r["w2"]
        return f"{w2['steps_per_s']:.0f} steps/s, {w2['runs_per_s']:.0f} runs/s (n={w2['runs']})"

    def ratio_cell(workload: str) -> str:
        if workload not in ratio:
            return "n/a"
        return f"{ratio[workload]['ratio']:.2f} (vs {ratio[workload]['best_peer']})"

    rows = [["workload", *names, "stepwell ÷ best peer"]]
    rows.append(["W1 per-step overhead", *(cell(n, "w1") for n in names), ratio_cell("w1")])
    rows.append(["W2 throughput", *(cell(n, "w2") for n in names), ratio_cell("w2")])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def report(systems: dict[str, dict[str, Any]], ratio: dict[str, dict[str, Any]]) -> None:
    print()
    print(table(systems, ratio))
    print()
    for name, r in systems.items():
        if "unavailable" in r:
            print(f"{name}: could not run: {r['unavailable']}")
        else:
            print(f"{name}: {r['settings']}")
    print()
    print(
        f"W1: one run of 10 sequential steps, median of {W1_RUNS} runs after {W1_WARMUP} "
        "warm-up runs. W2: runs of 3 steps started as fast as possible, timed to the last end."
    )
    print(f"results written to {RESULTS.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="W2 with 300 runs, not 1,000")
    quick = parser.parse_args().quick
    started = time.time()
    systems = {"stepwell": asyncio.run(measure_stepwell(quick))}
    for name in PEERS:
        print(f"-- {name}", flush=True)
        systems[name] = measure_peer(name, quick)
    ratio = ratios(systems)
    RESULTS.write_text(
        json.dumps(
            {
                "command": "python -m bench.compare" + (" --quick" if quick else ""),
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                "seconds": time.time() - started,
                "machine": {
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                },
                "systems": systems,
                "ratios": ratio,
            },
            indent=2,
        )
        + "\n"
    )
    report(systems, ratio)


if __name__ == "__main__":
    main()
