"""OpenTelemetry traces: one trace per run, one span per step. Off unless configured.

When a unit of work of this node has ended a run and committed — whatever ended it: the run's
own outcome, a timeout, or a cancellation by request, by a ``cancel_on`` event or by a singleton
(see :mod:`stepwell.engine.observers`) — the run's memo is read back and drawn as spans with the
recorded times: a ``run <function>`` span from the moment the run was queued to its end, and a
``step <id>`` span under it for each step, from its start (or the previous step's end) to its
recorded result. A failed run's span has an error status; a cancelled run's carries the reason
in ``stepwell.cancel_reason``. The trace id is derived from the run id, so every tool shows one run as one
trace. Spans are made after the fact, so nothing is added to the path of a running step.

Configured by OpenTelemetry's own environment variables: with ``OTEL_EXPORTER_OTLP_ENDPOINT``
(or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set, :func:`install_from_env` exports over OTLP/HTTP;
it needs the ``otel`` extra (``pip install 'stepwell[otel]'``).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import os
import random
import weakref
from typing import TYPE_CHECKING, Any

from stepwell.store.base import Tx
from stepwell.store.records import MemoRecord, RunRecord

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from stepwell.engine.engine import Engine

log = logging.getLogger("stepwell.traces")

_installed: weakref.WeakKeyDictionary[Engine, RunTracer] = weakref.WeakKeyDictionary()
_run_trace: contextvars.ContextVar[int | None] = contextvars.ContextVar("run_trace", default=None)


def trace_id_of(run_id: str) -> int:
    """The 128-bit trace id of a run: the first 16 bytes of the SHA-256 of its id."""
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:16], "big") or 1


def _ns(ms: int) -> int:
    return ms * 1_000_000


class RunTracer:
    """Turns each run that ends on this node into a trace.

    Args:
        engine: whose runs to trace (through its ``run_listeners``).
        provider: the OpenTelemetry tracer provider to emit through; made with
            :func:`make_provider` so trace ids follow run ids.
    """

    def __init__(self, engine: Engine, provider: TracerProvider) -> None:
        self.engine = engine
        self.provider = provider
        self.tracer = provider.get_tracer("stepwell")
        self._tasks: set[asyncio.Task[None]] = set()
        engine.run_listeners.append(self._ended)

    def _ended(self, run: RunRecord, status: str) -> None:
        task = asyncio.get_running_loop().create_task(self.trace(run.run_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def trace(self, run_id: str) -> None:
        """Emit the trace of one ended run."""

        def load(tx: Tx) -> tuple[RunRecord | None, list[MemoRecord]]:
            return tx.get_run(run_id), tx.get_memo(run_id)

        try:
            run, memo = await self.engine.store.read(load)
            if run is not None and run.ended_at is not None:
                self._emit(run, memo)
        except Exception:
            log.exception("could not trace run %s", run_id)

    def _emit(self, run: RunRecord, memo: list[MemoRecord]) -> None:
        from opentelemetry import trace
        from opentelemetry.context import Context
        from opentelemetry.trace import Status, StatusCode

        assert run.ended_at is not None
        token = _run_trace.set(trace_id_of(run.run_id))
        try:
            root = self.tracer.start_span(
                f"run {run.function_id}",
                context=Context(),  # a root: never under whatever span is current here
                start_time=_ns(run.created_at),
                attributes={
                    "stepwell.run_id": run.run_id,
                    "stepwell.function_id": run.function_id,
                    "stepwell.app_id": run.app_id,
                    "stepwell.status": run.status,
                    "stepwell.event_ids": list(run.event_ids),
                    "stepwell.attempt": run.attempt,
                },
            )
        finally:
            _run_trace.reset(token)
        if run.status == "Failed":
            message = (run.error or {}).get("message", "failed")
            root.set_status(Status(StatusCode.ERROR, str(message)))
        elif run.status == "Cancelled":
            root.set_attribute("stepwell.cancel_reason", run.cancel_reason or "cancelled")
        parent = trace.set_span_in_context(root)
        last = run.started_at or run.created_at
        for m in memo:
            start = min(m.started_at if m.started_at is not None else last, m.created_at)
            step = self.tracer.start_span(
                f"step {m.step_id}",
                context=parent,
                start_time=_ns(start),
                attributes={
                    "stepwell.step_id": m.step_id,
                    "stepwell.step_key": m.step_key,
                    "stepwell.step_kind": m.kind,
                    "stepwell.attempts": m.attempts,
                },
            )
            error = m.value.get("error") if isinstance(m.value, dict) else None
            if isinstance(error, dict) and "data" not in m.value:
                step.set_status(Status(StatusCode.ERROR, str(error.get("message", ""))))
            step.end(end_time=_ns(m.created_at))
            last = max(last, m.created_at)
        root.end(end_time=_ns(run.ended_at))

    async def drain(self) -> None:
        """Wait for traces being made (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def make_provider(processor: Any, service_name: str = "stepwell") -> TracerProvider:
    """A tracer provider whose trace ids follow run ids, sending spans to ``processor``."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class RunIds(IdGenerator):
        """Trace ids from the run being traced; random span ids."""

        def generate_span_id(self) -> int:
            return random.getrandbits(64) or 1

        def generate_trace_id(self) -> int:
            return _run_trace.get() or random.getrandbits(128) or 1

    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}), id_generator=RunIds()
    )
    provider.add_span_processor(processor)
    return provider


def install_from_env(engine: Engine) -> RunTracer | None:
    """Trace runs over OTLP/HTTP when OpenTelemetry's endpoint variables say where; else None.

    Installs once per engine: a second call returns the first tracer.
    """
    if engine in _installed:
        return _installed[engine]
    if not (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
            "pip install 'stepwell[otel]'; runs are not traced"
        )
        return None
    service = os.environ.get("OTEL_SERVICE_NAME", "stepwell")
    provider = make_provider(BatchSpanProcessor(OTLPSpanExporter()), service)
    log.info("tracing runs over OTLP/HTTP")
    tracer = _installed[engine] = RunTracer(engine, provider)
    return tracer
