"""The benchmarks run: every stepwell workload on a tiny size (speed is not checked here;
`python -m bench` measures it)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_stepwell_workload_runs_on_a_tiny_size() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--only", "embedded,w5,w6,w7"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for workload in ("W1", "W2", "W3", "W4", "W5", "W6", "W7"):
        rows = [line for line in done.stdout.splitlines() if line.startswith(workload)]
        assert rows, f"{workload} printed nothing:\n{done.stdout}"
        assert all(re.search(r"\| [\d,.]+", row) for row in rows), rows
    assert "failed" not in done.stdout.lower(), done.stdout
    # each part is preceded by the machine's speed, measured
    probes = re.findall(
        r"^-- (\w+) \(CPU probe ([\d.]+) ms, commit probe ([\d.]+) ms\)", done.stdout, re.M
    )
    assert [p[0] for p in probes] == ["embedded", "w5", "w6", "w7"], done.stdout
    assert all(float(cpu) > 0 and float(commit) > 0 for _, cpu, commit in probes), probes


def test_the_flow_control_bench_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.flow", "--runs", "20", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^keyed\s+\d+", done.stdout, re.M), done.stdout


def test_the_http_bench_measures_an_official_sdk_and_the_app_alone() -> None:
    script = (
        "import asyncio, json; from bench import http; "
        "print(json.dumps(asyncio.run(http.measure(('official inngest Python SDK',)))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [result] = json.loads(done.stdout.splitlines()[-1]).values()
    assert result["ms_per_step_median"] > 0, result
    assert result["app_ms_per_step_median"] > 0 and result["app_samples"] == 10, result
