"""Prometheus metrics at ``GET /metrics``.

Two kinds of figures:

* **Counted as they happen on this node** (counters and a histogram, since the process
  started): events ingested, runs started and ended, step durations, retries, HTTP driver
  errors. They are observed at the store seam (:mod:`stepwell.engine.observers`): each unit of
  work runs against a thin observing ``Tx`` that notes what the verbs wrote (an event inserted, a run finished, a memo row with its
  start time, an attempt counter moved up), and the notes are counted only once the unit has
  committed, so a unit rolled back counts nothing. HTTP driver errors are the invocations whose
  result is an ``HTTPDriverError`` (the app could not be reached, or its answer was refused).
* **Read from the store at scrape time** (gauges, the same on every node): runs by status, queue
  depth, and queue lag (how long the oldest due, unleased queue item has been waiting).

:func:`instrument` installs the observers on an engine once (a unit observer on its store, and
a listener of its invocations); building a second app on the same engine shares them. Without
it (no API app built), nothing is observed.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from stepwell.engine.api.auth import check_bearer
from stepwell.store.base import Tx
from stepwell.store.records import EventRecord, MemoRecord, RunRecord

if TYPE_CHECKING:
    from stepwell.engine.engine import Engine
    from stepwell.engine.registry import FunctionSpec
    from stepwell.protocol.ops import CallResult

STATUSES = ("Queued", "Running", "Completed", "Failed", "Cancelled")
STEP_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600)

_instrumented: weakref.WeakKeyDictionary[Engine, Metrics] = weakref.WeakKeyDictionary()


class Metrics:
    """One engine's metrics, in a registry of their own (not the process-wide default)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.events = Counter(
            "stepwell_events_ingested", "Events stored, by source", ["source"], registry=r
        )
        self.runs_started = Counter(
            "stepwell_runs_started", "Runs created, by function", ["function_id"], registry=r
        )
        self.runs_ended = Counter(
            "stepwell_runs_ended", "Runs that reached a final status", ["status"], registry=r
        )
        self.steps = Histogram(
            "stepwell_step_duration_seconds",
            "Time from a step's start to its recorded result, by step kind",
            ["kind"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "stepwell_retries", "Attempts scheduled again after an error", registry=r
        )
        self.http_errors = Counter(
            "stepwell_http_driver_errors",
            "Invocations over HTTP that ended in a driver error (unreachable app, bad answer)",
            ["function_id"],
            registry=r,
        )
        self.runs = Gauge("stepwell_runs", "Runs in the store, by status", ["status"], registry=r)
        self.queue_depth = Gauge("stepwell_queue_depth", "Queue items, leased or not", registry=r)
        self.queue_lag = Gauge(
            "stepwell_queue_lag_seconds",
            "How long the oldest due, unleased queue item has been waiting (0 when none)",
            registry=r,
        )

    def begin(self, tx: Tx) -> tuple[Tx, Callable[[], None]]:
        """Observe one execution of a unit of work (a :class:`~.observers.UnitObserver`)."""
        observing = _ObservingTx(tx)
        return cast(Tx, observing), functools.partial(self.count, observing.notes)

    def invoked(self, spec: FunctionSpec, result: CallResult) -> None:
        """Count an invocation whose result is an HTTP driver error (an engine listener)."""
        error = result.error
        if isinstance(error, dict) and error.get("name") == "HTTPDriverError":
            self.http_errors.labels(spec.function_id).inc()

    def count(self, notes: list[tuple[str, Any, Any]]) -> None:
        """Count what one committed unit of work wrote."""
        for what, a, b in notes:
            if what == "event":
                self.events.labels(a).inc()
            elif what == "run":
                self.runs_started.labels(a).inc()
            elif what == "ended":
                self.runs_ended.labels(a).inc()
            elif what == "step":
                self.steps.labels(a).observe(b)
            elif what == "retry":
                self.retries.inc()


class _ObservingTx:
    """A ``Tx`` that notes what some verbs wrote and passes every call through."""

    __slots__ = ("_tx", "notes")

    def __init__(self, tx: Tx) -> None:
        self._tx = tx
        self.notes: list[tuple[str, Any, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def insert_event(self, event: EventRecord) -> None:
        self._tx.insert_event(event)
        self.notes.append(("event", event.source, None))

    def insert_events(self, events: Sequence[EventRecord]) -> None:
        self._tx.insert_events(events)
        self.notes.extend(("event", event.source, None) for event in events)

    def insert_run(self, run: RunRecord) -> None:
        self._tx.insert_run(run)
        self.notes.append(("run", run.function_id, None))

    def finish_run(self, run_id: str, status: Any, now: int, *args: Any, **kwargs: Any) -> bool:
        done = self._tx.finish_run(run_id, status, now, *args, **kwargs)
        if done:
            self.notes.append(("ended", status, None))
        return done

    def put_memo(
        self,
        run_id: str,
        step_key: str,
        step_id: str,
        kind: str,
        value: Any,
        now: int,
        started_at: int | None = None,
        *more: Any,
        **options: Any,
    ) -> bool:
        written = self._tx.put_memo(
            run_id, step_key, step_id, kind, value, now, started_at, *more, **options
        )
        if written and started_at is not None:
            self.notes.append(("step", kind, max(0, now - started_at) / 1000))
        return written

    def put_memos(self, memos: Sequence[MemoRecord]) -> list[bool]:
        written = self._tx.put_memos(memos)
        self.notes.extend(
            ("step", m.kind, max(0, m.created_at - m.started_at) / 1000)
            for m, won in zip(memos, written, strict=True)
            if won and m.started_at is not None
        )
        return written

    def end_run(self, run_id: str, status: Any, now: int, *args: Any, **kwargs: Any) -> Any:
        run = self._tx.end_run(run_id, status, now, *args, **kwargs)
        if run is not None:
            self.notes.append(("ended", status, None))
        return run

    def set_run_attempt(self, run_id: str, attempt: int) -> None:
        self._tx.set_run_attempt(run_id, attempt)
        if attempt > 0:
            self.notes.append(("retry", None, None))


def instrument(engine: Engine) -> Metrics:
    """The engine's metrics, installing the observers on first use."""
    existing = _instrumented.get(engine)
    if existing is not None:
        return existing
    metrics = _instrumented[engine] = Metrics()
    engine.store.observers.append(metrics)
    engine.invocation_listeners.append(metrics.invoked)
    return metrics


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics`` in Prometheus' text format (a bearer token in production mode)."""
    denied = check_bearer(request)
    if denied is not None:
        return denied
    engine: Engine = request.app.state.engine
    metrics = instrument(engine)
    now = engine.clock.now_ms()

    def snapshot(tx: Tx) -> tuple[dict[str, int], int, int | None]:
        return tx.count_runs_by_status(), tx.queue_depth(), tx.next_available_at()

    counts, depth, oldest = await engine.store.read(snapshot)
    for status in STATUSES:
        metrics.runs.labels(status).set(counts.get(status, 0))
    metrics.queue_depth.set(depth)
    metrics.queue_lag.set(max(0, now - oldest) / 1000 if oldest is not None else 0)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
