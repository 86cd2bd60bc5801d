"""Kill `stepwell dev` with SIGKILL mid-flight, restart it, and check that nothing was lost."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import os, time
    import stepwell

    app = stepwell.App("chaos")
    LOG = os.environ["CHAOS_LOG"]

    def record(run_id, step):
        # O_APPEND writes of one short line are atomic: a killed process leaves whole lines.
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"{run_id} {step}\\n".encode())
        os.fsync(fd)
        os.close(fd)
        return step

    @app.function("sleeper", trigger="chaos/sleep")
    async def sleeper(ctx):
        a = await ctx.step.run("a", record, ctx.run_id, "a")
        await ctx.step.sleep("nap", "2s")
        b = await ctx.step.run("b", record, ctx.run_id, "b")
        return [a, b]

    @app.function("waiter", trigger="chaos/wait")
    async def waiter(ctx):
        await ctx.step.run("before", record, ctx.run_id, "before")
        got = await ctx.step.wait_for_event("w", event="chaos/go", match="data.k", timeout="1h")
        return got.data["k"] if got else None

    @app.function("worker", trigger="chaos/work")
    async def worker(ctx):
        total = 0
        for i in range(6):
            def slow(i=i):
                time.sleep(0.05)
                return record(ctx.run_id, f"s{i}")
            await ctx.step.run(f"s{i}", slow)
            total += i
        return total
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CHAOS_LOG": str(tmp / "steps.log")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stepwell.cli.main",
            "dev",
            str(tmp / "chaos_app.py"),
            "--port",
            str(port),
            "--db",
            str(tmp / "dev.db"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "dev.log", "ab"),  # noqa: SIM115
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("dev server did not start: " + (tmp / "dev.log").read_text())


def _memo_keys(db: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return {
            (r, s) for r, s in conn.execute("SELECT run_id, step_id FROM memo WHERE kind = 'run'")
        }


def test_sigkill_mid_flight_loses_no_event_run_or_step(tmp_path: Path) -> None:
    (tmp_path / "chaos_app.py").write_text(APP)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(tmp_path, port)
    sent: dict[str, str] = {}
    try:
        for n in range(10):
            for name, data in (("chaos/sleep", {}), ("chaos/wait", {"k": n}), ("chaos/work", {})):
                [event_id] = httpx.post(f"{url}/e/k", json={"name": name, "data": data}).json()[
                    "ids"
                ]
                sent[event_id] = name
        time.sleep(0.4)  # mid-flight: workers executing, sleepers sleeping, waiters waiting
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    recorded_before_kill = _memo_keys(tmp_path / "dev.db")
    assert recorded_before_kill, "the kill came before any step finished; the test proves nothing"

    proc = _start(tmp_path, port)
    try:
        for n in range(10):
            httpx.post(f"{url}/e/k", json={"name": "chaos/go", "data": {"k": n}})
        runs = _wait_all_done(url, sent)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)

    expected = {"chaos/sleep": ["a", "b"], "chaos/wait": None, "chaos/work": 15}
    for event_id, name in sent.items():
        [run] = runs[event_id]
        assert run["status"] == "Completed", run
        if name == "chaos/wait":
            assert isinstance(run["output"], int), run
        else:
            assert run["output"] == expected[name], run
    executions = Counter(
        tuple(line.split()) for line in (tmp_path / "steps.log").read_text().splitlines()
    )
    for key in recorded_before_kill:
        assert executions[key] == 1, (
            f"step {key} was recorded before the kill but ran {executions[key]} times"
        )
    every_step = {
        (run["run_id"], s)
        for rs in runs.values()
        for run in rs
        for s in {
            "chaos/sleep": ["a", "b"],
            "chaos/wait": ["before"],
            "chaos/work": [f"s{i}" for i in range(6)],
        }[sent[run["event_id"]]]
    }
    assert every_step <= set(executions), "a step never ran"


def _wait_all_done(url: str, sent: dict[str, str]) -> dict[str, list[dict]]:
    deadline = time.monotonic() + 60
    runs: dict[str, list[dict]] = {}
    while time.monotonic() < deadline:
        runs = {e: httpx.get(f"{url}/v1/events/{e}/runs").json()["data"] for e in sent}
        if all(
            len(r) == 1 and r[0]["status"] in {"Completed", "Failed", "Cancelled"}
            for r in runs.values()
        ):
            return runs
        time.sleep(0.2)
    pending = {
        e: r for e, r in runs.items() if not r or r[0]["status"] not in {"Completed", "Failed"}
    }
    raise AssertionError(f"runs did not finish after restart: {pending}")
