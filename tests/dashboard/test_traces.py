"""OpenTelemetry: one trace per run, a span per step, with the recorded times; off by default."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import stepwell
from stepwell.clock import FakeClock
from stepwell.embedded import Embedded
from stepwell.engine.api import traces
from stepwell.engine.api.app import build_app
from stepwell.engine.engine import Engine
from stepwell.store import open_store
from stepwell.store.records import RunRecord
from tests.dashboard.dashboard_app import app

napping = stepwell.App("cx")


@napping.function(
    "nap",
    trigger="cx/nap",
    cancel_on=stepwell.CancelOn("cx/stop", match="data.id"),
    timeouts=stepwell.Timeouts(finish="2h"),
)
async def nap(ctx: stepwell.Context) -> str:
    await ctx.step.run("before", lambda: 1)
    await ctx.step.sleep("nap", "1d")
    return "woke"


async def _ended(engine: Engine, event_id: str) -> RunRecord:
    for _ in range(300):
        runs = await engine.store.read(lambda tx: tx.runs_for_event(event_id))
        if runs and runs[0].ended_at is not None:
            return runs[0]
        await asyncio.sleep(0.02)
    raise AssertionError("the run never ended")


async def test_each_ended_run_becomes_one_trace_with_a_span_per_step(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    async with Embedded([app], db=str(tmp_path / "t.db")) as dev:
        tracer = traces.RunTracer(dev.engine, traces.make_provider(SimpleSpanProcessor(exporter)))
        [ok] = await dev.engine.send_wire([{"name": "demo/pipeline", "data": {"n": 2}}])
        [bad] = await dev.engine.send_wire([{"name": "demo/charge"}])
        run = await _ended(dev.engine, ok)
        failed = await _ended(dev.engine, bad)
        await tracer.drain()
    spans = exporter.get_finished_spans()
    by_trace: dict[int, list[Any]] = {}
    for span in spans:
        by_trace.setdefault(span.context.trace_id, []).append(span)
    assert set(by_trace) == {traces.trace_id_of(run.run_id), traces.trace_id_of(failed.run_id)}

    ok_spans = {s.name: s for s in by_trace[traces.trace_id_of(run.run_id)]}
    assert set(ok_spans) == {"run dash-pipeline", "step fetch", "step double"}
    root = ok_spans["run dash-pipeline"]
    assert root.parent is None
    assert root.attributes["stepwell.run_id"] == run.run_id
    assert root.start_time == run.created_at * 1_000_000
    assert root.end_time == run.ended_at * 1_000_000
    for name in ("step fetch", "step double"):
        step = ok_spans[name]
        assert step.parent.span_id == root.context.span_id
        assert root.start_time <= step.start_time <= step.end_time <= root.end_time
    assert ok_spans["step fetch"].end_time <= ok_spans["step double"].end_time

    bad_spans = {s.name: s for s in by_trace[traces.trace_id_of(failed.run_id)]}
    assert bad_spans["run dash-charge"].status.status_code == StatusCode.ERROR
    assert bad_spans["step explode"].status.status_code == StatusCode.ERROR
    assert "payment provider said no" in bad_spans["step explode"].status.description


def test_tracing_is_off_unless_an_otlp_endpoint_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwell.store import open_store

    engine = Engine(open_store(str(tmp_path / "x.db")))
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert traces.install_from_env(engine) is None
    assert engine.run_listeners == []
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    tracer = traces.install_from_env(engine)
    assert tracer is not None and engine.run_listeners == [tracer._ended]
    assert traces.install_from_env(engine) is tracer  # once per engine
    tracer.provider.shutdown()


async def test_runs_cancelled_from_outside_are_traced_once_with_their_reason(
    tmp_path: Path,
) -> None:
    exporter = InMemorySpanExporter()
    clock = FakeClock()
    engine = Engine(open_store(str(tmp_path / "c.db")), clock=clock)
    await engine.start(loops=False)
    try:
        await engine.register(napping.register_request(), {f.full_id: f for f in napping.functions})
        tracer = traces.RunTracer(engine, traces.make_provider(SimpleSpanProcessor(exporter)))
        runs = {}
        for name in ("rest", "cancel_on", "timeout"):
            [event_id] = await engine.send_wire([{"name": "cx/nap", "data": {"id": name}}])
            await engine.run_until_idle()
            [runs[name]] = await engine.store.read(lambda tx, e=event_id: tx.runs_for_event(e))
        assert {r.status for r in runs.values()} == {"Running"}  # all asleep

        api = httpx.AsyncClient(
            transport=httpx.ASGITransport(build_app(engine)), base_url="http://t"
        )
        async with api:
            response = await api.delete(f"/v1/runs/{runs['rest'].run_id}")
            assert response.json()["data"]["status"] == "Cancelled"
        await engine.send_wire([{"name": "cx/stop", "data": {"id": "cancel_on"}}])
        clock.advance(2 * 3600 * 1000)
        await engine.run_until_idle()
        await tracer.drain()
    finally:
        await engine.stop()

    roots = [s for s in exporter.get_finished_spans() if s.name == "run cx-nap"]
    assert sorted(s.context.trace_id for s in roots) == sorted(
        traces.trace_id_of(r.run_id) for r in runs.values()
    )  # one run span per run, no more
    reasons = {}
    for span in roots:
        assert span.attributes["stepwell.status"] == "Cancelled"
        reasons[span.attributes["stepwell.run_id"]] = span.attributes["stepwell.cancel_reason"]
    assert reasons[runs["rest"].run_id] == "cancelled through the REST API"
    assert reasons[runs["cancel_on"].run_id].startswith("cancelled by event cx/stop")
    assert "timeouts.finish" in reasons[runs["timeout"].run_id]
    steps = [s for s in exporter.get_finished_spans() if s.name == "step before"]
    assert len(steps) == 3
