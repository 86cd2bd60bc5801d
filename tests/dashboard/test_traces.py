"""OpenTelemetry: one trace per run, a span per step, with the recorded times; off by default."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from stepwell.embedded import Embedded
from stepwell.engine.api import traces
from stepwell.engine.engine import Engine
from stepwell.store.records import RunRecord
from tests.dashboard.dashboard_app import app


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
