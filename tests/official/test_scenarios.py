"""The official SDKs run on stepwell unchanged: one scenario table, both apps, both modes.

A Next.js app on npm `inngest` 4.24.0 (checkpointing on, its default, and off) and a FastAPI app
on PyPI `inngest` 0.5.19 are started as real processes, synced by stepwell over HTTP, and driven
through every step kind by events — in dev mode (no keys) and production mode (signing key and
event key).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepwell.engine.engine import Engine
from stepwell.engine.operations import rerun_from_step
from stepwell.engine.transitions import new_cron_run
from stepwell.store.records import RunRecord
from tests.official.harness import (
    NEXTJS_APP_ID,
    PY_APP_ID,
    SERVE_PATH,
    new_signing_key,
    start_nextjs,
    start_py_inngest,
)
from tests.support import engine_server, free_port

pytestmark = pytest.mark.official

FINAL = {"Completed", "Failed", "Cancelled"}

CASES = [
    pytest.param("nextjs", "dev", True, id="nextjs-dev-checkpointing"),
    pytest.param("nextjs", "dev", False, id="nextjs-dev-no-checkpointing"),
    pytest.param("nextjs", "cloud", True, id="nextjs-production"),
    pytest.param("py", "dev", False, id="python-dev"),
    pytest.param("py", "cloud", False, id="python-production"),
]


class Driver:
    """Sends events the way an application would (POST /e/{key}) and watches runs finish."""

    def __init__(self, engine: Engine, url: str, event_key: str) -> None:
        self.engine = engine
        self.url = url
        self.event_key = event_key

    async def send(self, name: str, data: dict[str, Any] | None = None) -> str:
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{self.url}/e/{self.event_key}", json=[{"name": name, "data": data or {}}]
            )
        assert response.status_code == 200, response.text
        return str(response.json()["ids"][0])

    async def finished(self, event_id: str, count: int = 1, timeout: float = 30) -> list[RunRecord]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            runs = await self.engine.store.read(lambda tx: tx.runs_for_event(event_id))
            if len(runs) >= count and all(r.status in FINAL for r in runs):
                return runs
            if loop.time() > deadline:
                raise AssertionError(f"runs of event {event_id} did not finish: {runs}")
            await asyncio.sleep(0.05)

    async def run(self, name: str, data: dict[str, Any] | None = None) -> RunRecord:
        [run] = await self.finished(await self.send(name, data))
        return run


@pytest.mark.parametrize(("app", "mode", "checkpointing"), CASES)
async def test_official_sdk_scenarios(
    tmp_path: Path, app: str, mode: str, checkpointing: bool
) -> None:
    key = new_signing_key() if mode == "cloud" else None
    event_key = "test-event-key" if mode == "cloud" else "any"
    app_id = NEXTJS_APP_ID if app == "nextjs" else PY_APP_ID
    async with engine_server(
        tmp_path / "engine.db", signing_key=key, event_keys=[event_key] if key else None
    ) as served:
        port = free_port()
        if app == "nextjs":
            process = start_nextjs(
                served.url,
                port=port,
                mode=mode,
                signing_key=key,
                event_key=event_key if key else None,
                checkpointing=checkpointing,
            )  # type: ignore[arg-type]
        else:
            process = start_py_inngest(
                served.url,
                port=port,
                mode=mode,
                signing_key=key,
                event_key=event_key if key else None,
            )  # type: ignore[arg-type]
        async with process:
            state = await served.syncer.sync(f"http://127.0.0.1:{port}{SERVE_PATH}")
            assert state.ok, f"{state.error}\n{process.logs()}"
            try:
                await _scenarios(
                    Driver(served.engine, served.url, event_key), served.engine, app_id
                )
            except AssertionError:
                print(process.logs())
                raise


async def _scenarios(d: Driver, engine: Engine, app_id: str) -> None:
    ids = {s.function_id for s in engine.registry.all()}
    assert f"{app_id}-sequential" in ids and f"{app_id}-fatal-failure" in ids

    run = await d.run("test/sequential")
    assert (run.status, run.output) == ("Completed", "AB")

    run = await d.run("test/sleeper")
    assert (run.status, run.output) == ("Completed", "slept")

    waiting = await d.send("test/waiter", {"id": 7})
    timing_out = await d.send("test/waiter-timeout", {"id": 8})
    await asyncio.sleep(0.5)
    await d.send("test/approve", {"id": 7, "by": "boss"})
    [run] = await d.finished(waiting)
    assert run.output == {"id": 7, "by": "boss"}
    [run] = await d.finished(timing_out)
    assert run.output == {"timed_out": True}

    run = await d.run("test/fanout", {"id": "f1"})
    assert run.output == {"sent": 3}
    children = await engine.store.read(lambda tx: tx.list_events("test/child"))
    assert sorted(e.data["i"] for e in children if e.data.get("parent") == "f1") == [0, 1, 2]

    run = await d.run("test/invoker", {"n": 5})
    # The invoked run's event data carries `_inngest` (correlation), as on Inngest's servers.
    assert {k: v for k, v in run.output.items() if k != "_inngest"} == {"via": "invoke", "n": 5}

    run = await d.run("test/flaky")
    assert (run.status, run.output) == ("Completed", {"attempt": 2})

    run = await d.run("test/fatal")
    assert run.status == "Failed"
    assert "do not retry" in (run.error or {}).get("message", "")
    for _ in range(200):
        failure_runs = [
            r
            for r in await engine.store.read(
                lambda tx: tx.list_runs(_flt(f"{app_id}-fatal-failure"))
            )
            if r.status == "Completed"
        ]
        if failure_runs:
            break
        await asyncio.sleep(0.05)
    assert [r.output for r in failure_runs] == [{"handled": True}]

    run = await d.run("test/parallel")
    assert run.output == [1, 2, 3]

    if app_id == NEXTJS_APP_ID:
        # step.fetch: the engine makes the request and the SDK reads the response
        run = await d.run("test/fetch", {"url": f"{d.url}/health"})
        assert (run.status, run.output) == (
            "Completed",
            {"status": 200, "body": {"status": 200, "message": "OK"}},
        )
        memo = await engine.store.read(lambda tx: tx.get_memo(run.run_id))
        assert [m.value["data"]["status_code"] for m in memo] == [200]
        # parallel race mode: the first step to finish wins
        run = await d.run("test/race")
        assert (run.status, run.output) == ("Completed", "fast")
        # step inputs: recorded from opts.input; a rerun from the step runs it with edited ones
        run = await d.run("test/bill", {"amount": 10})
        assert run.output == {"charged": 10, "currency": "EUR"}
        memo = {m.step_id: m for m in await engine.store.read(lambda tx: tx.get_memo(run.run_id))}
        assert memo["charge"].input == [10, "EUR"] and memo["prepare"].input is None
        rerun = await rerun_from_step(
            engine, run.run_id, memo["charge"].step_key, input=[99, "USD"]
        )
        for _ in range(400):
            rerun = await engine.get_run(rerun.run_id)
            if rerun.status in FINAL:
                break
            await asyncio.sleep(0.05)
        assert (rerun.status, rerun.output) == ("Completed", {"charged": 99, "currency": "USD"})
        again = await engine.store.read(lambda tx: tx.get_memo(rerun.run_id))
        assert [(m.step_id, m.kind, m.input) for m in again] == [
            ("prepare", "run", None),
            ("charge", "run", [99, "USD"]),
        ]

    # concurrency limit 1: the three runs' steps never overlap
    limited = [await d.send("test/limited") for _ in range(3)]
    spans = []
    for event_id in limited:
        [run] = await d.finished(event_id)
        spans.append((run.output["started"], run.output["finished"]))
    spans.sort()
    assert len(spans) == 3
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(2)), f"steps overlapped: {spans}"

    cancellable = await d.send("test/cancellable", {"id": "c1"})
    await asyncio.sleep(0.5)
    await d.send("test/cancel", {"id": "c1"})
    [run] = await d.finished(cancellable)
    assert run.status == "Cancelled"

    spec = engine.registry.get(f"{app_id}-cron")
    assert spec is not None and spec.crons
    now = engine.clock.now_ms()
    tick = spec.crons[0].next_after(now)
    # Fire the next minute's tick now rather than wait for it: the same unit the cron loop runs.
    await engine.store.run(lambda tx: new_cron_run(tx, spec, spec.crons[0].source, tick, now))
    engine.wake()
    for _ in range(200):
        cron_runs = await engine.store.read(lambda tx: tx.list_runs(_flt(f"{app_id}-cron")))
        if cron_runs and all(r.status in FINAL for r in cron_runs):
            break
        await asyncio.sleep(0.05)
    # (the engine's own cron loop may also have fired a minute boundary during the test)
    assert cron_runs and {(r.status, r.output) for r in cron_runs} == {("Completed", "tick")}


def _flt(function_id: str):  # type: ignore[no-untyped-def]
    from stepwell.store.records import RunFilter

    return RunFilter(function_id=function_id, limit=50)
