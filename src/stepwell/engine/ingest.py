"""Ingest: validate incoming events, then persist and route them in one transaction.

Routing an event means, atomically with storing it: start a run for every function whose trigger
matches, resume every ``wait_for_event`` step it satisfies, and cancel every run whose
``cancel_on`` it satisfies. Waits are found by index (event name + match key), never by scanning
every wait.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from stepwell.engine.expressions import MISSING, compile_expression, lookup_path
from stepwell.engine.registry import FunctionSpec, Registry
from stepwell.errors import EventError, PayloadTooLarge
from stepwell.ids import new_id
from stepwell.store.base import Tx
from stepwell.store.records import EventRecord, QueueItem, RunRecord, WaitRecord

DEDUPE_TTL_MS = 24 * 3600 * 1000
MAX_EVENT_BYTES = 512 * 1024
MAX_BATCH = 5000
MIN_TS = 315_532_800_000  # 1980-01-01
MAX_TS = 4_102_444_800_000  # 2100-01-01
FOREVER_MS = 366 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """A validated event not stored yet."""

    record: EventRecord


def validate_events(body: Any, *, now: int, source: str = "api") -> list[IncomingEvent]:
    """Check a request body (one event object or a list); raise :class:`EventError` naming the
    offending event by index and field. Nothing is stored when any event is invalid."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise EventError("no events: send an event object or a non-empty array of them")
    if len(items) > MAX_BATCH:
        raise EventError(f"{len(items)} events in one request, over the limit of {MAX_BATCH}")
    return [_validate_one(i, item, now, source) for i, item in enumerate(items)]


def _validate_one(index: int, item: Any, now: int, source: str) -> IncomingEvent:
    where = f"event[{index}]"
    if not isinstance(item, Mapping):
        raise EventError(f"{where}: must be a JSON object, not {type(item).__name__}")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise EventError(f"{where}: field 'name' is required and must be a non-empty string")
    if len(name) > 512:
        raise EventError(f"{where}: field 'name' is {len(name)} characters, over 512")
    data = item.get("data")
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise EventError(f"{where} ({name}): field 'data' must be a JSON object")
    user = item.get("user") or {}
    if not isinstance(user, Mapping):
        raise EventError(f"{where} ({name}): field 'user' must be a JSON object")
    ts = item.get("ts")
    if ts is None or ts == 0:
        ts = now
    elif isinstance(ts, bool) or not isinstance(ts, int | float) or not MIN_TS <= ts <= MAX_TS:
        raise EventError(
            f"{where} ({name}): field 'ts' must be epoch milliseconds between 1980 and 2100"
        )
    dedupe = item.get("id")
    if dedupe is not None and (not isinstance(dedupe, str) or not dedupe):
        raise EventError(f"{where} ({name}): field 'id' must be a non-empty string")
    size = len(orjson.dumps(data)) + len(orjson.dumps(user))
    if size > MAX_EVENT_BYTES:
        raise PayloadTooLarge(
            f"{where} ({name}): {size} bytes, over the limit of {MAX_EVENT_BYTES}"
        )
    record = EventRecord(
        event_id=new_id(),
        name=name,
        data=dict(data),
        ts=int(ts),
        received_at=now,
        user=dict(user),
        dedupe_key=dedupe,
        source=source,
    )
    return IncomingEvent(record)


class Router:
    """Decides, inside a transaction, what an event does: runs, resumed waits, cancellations."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        # Set by the engine's Transitions: cancelling a run emits events that are routed here.
        self.cancel: Callable[[Tx, str, int, str], bool] = _no_cancel

    def ingest(self, tx: Tx, events: Sequence[IncomingEvent], now: int) -> list[str]:
        """Store and route ``events``; return their ids (a duplicate gets the first one's id)."""
        ids = []
        for incoming in events:
            record = incoming.record
            if record.dedupe_key is not None:
                held = tx.claim_dedupe_key(record.dedupe_key, record.event_id, now, DEDUPE_TTL_MS)
                if held is not None:
                    ids.append(held)
                    continue
            tx.insert_event(record)
            self.route(tx, record, now)
            ids.append(record.event_id)
        return ids

    def route(self, tx: Tx, event: EventRecord, now: int) -> None:
        """Start runs, resume waits and cancel runs for a stored event."""
        wire = event.to_wire()
        started: set[str] = set()
        for spec, trigger in self.registry.candidates(event.name):
            if spec.function_id in started:
                continue
            if trigger.expression is not None and not trigger.expression.matches({"event": wire}):
                continue
            started.add(spec.function_id)
            start_run(tx, spec, [event], now)
        for wait in self._matching_waits(tx, event, wire, now):
            if not tx.delete_wait(wait.wait_id):
                continue
            if wait.kind == "cancel":
                self.cancel(
                    tx, wait.run_id, now, f"cancelled by event {event.name} ({event.event_id})"
                )
            else:
                resume_wait(tx, wait, wire, now)

    def _matching_waits(
        self, tx: Tx, event: EventRecord, wire: dict[str, Any], now: int
    ) -> list[WaitRecord]:
        found: list[WaitRecord] = []
        for path in tx.keyed_wait_paths(event.name):
            value = lookup_path(wire, path)
            if value is MISSING:
                continue
            found.extend(tx.find_keyed_waits(event.name, path, _key_text(value)))
        for wait in tx.find_unkeyed_waits(event.name):
            if wait.expression is None or _evaluate_wait(tx, wait, wire):
                found.append(wait)
        return [w for w in found if w.expires_at > now]


def _no_cancel(tx: Tx, run_id: str, now: int, reason: str) -> bool:
    raise RuntimeError("Router.cancel is not wired to a Transitions")


def _evaluate_wait(tx: Tx, wait: WaitRecord, wire: dict[str, Any]) -> bool:
    assert wait.expression is not None
    trigger = tx.get_event(wait.trigger_event_id) if wait.trigger_event_id else None
    variables = {"event": trigger.to_wire() if trigger else {}, "async": wire}
    return compile_expression(wait.expression).matches(variables)


def _key_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def start_run(
    tx: Tx,
    spec: FunctionSpec,
    events: Sequence[EventRecord],
    now: int,
    *,
    parent: tuple[str, str] | None = None,
) -> RunRecord:
    """Create a run of ``spec`` for ``events`` with its start item and ``cancel_on`` waits.

    A first event whose ``ts`` lies in the future delays the start until then.
    """
    first = events[0]
    run = RunRecord(
        run_id=new_id(),
        function_id=spec.function_id,
        function_version=spec.version,
        app_id=spec.app_id,
        status="Queued",
        event_id=first.event_id,
        event_ids=tuple(e.event_id for e in events),
        created_at=now,
        parent_run_id=parent[0] if parent else None,
        parent_step_key=parent[1] if parent else None,
    )
    tx.insert_run(run)
    start_at = max(now, first.ts) if first.source == "api" else now
    tx.enqueue(
        QueueItem(
            item_id=run_item_id(run.run_id),
            kind="start",
            run_id=run.run_id,
            function_id=spec.function_id,
            available_at=start_at,
        )
    )
    wire = first.to_wire()
    for cancel in spec.cancels:
        expires = start_at + (cancel.timeout_ms if cancel.timeout_ms is not None else FOREVER_MS)
        tx.insert_wait(
            keyed_wait(
                run,
                "cancel",
                cancel.event,
                cancel.expression.source if cancel.expression else None,
                wire,
                expires,
                None,
                None,
            )
        )
    return run


def keyed_wait(
    run: RunRecord,
    kind: str,
    event_name: str,
    expression: str | None,
    trigger_wire: Mapping[str, Any],
    expires_at: int,
    step_key: str | None,
    step_id: str | None,
) -> WaitRecord:
    """A wait record, keyed by index when ``expression`` is one equality between the trigger and
    the awaited event whose trigger side is known now."""
    from stepwell.engine.expressions import equality_paths

    match_path = match_value = None
    paths = equality_paths(expression) if expression else None
    if paths is not None:
        value = lookup_path(trigger_wire, paths[0])
        if value is not MISSING:
            match_path, match_value = paths[1], _key_text(value)
    return WaitRecord(
        wait_id=new_id(),
        kind=kind,  # type: ignore[arg-type]
        run_id=run.run_id,
        function_id=run.function_id,
        event_name=event_name,
        expires_at=expires_at,
        step_key=step_key,
        match_path=match_path,
        match_value=match_value,
        expression=None if match_path is not None else expression,
        trigger_event_id=run.event_id,
        step_id=step_id,
    )


def resume_wait(tx: Tx, wait: WaitRecord, event_wire: Mapping[str, Any] | None, now: int) -> None:
    """Record the wait step's outcome (the event, or None on timeout) and continue its run."""
    assert wait.step_key is not None
    written = tx.put_memo(
        wait.run_id, wait.step_key, wait.step_id or wait.step_key, "wait", event_wire, now
    )
    if written:
        continue_run(tx, wait.run_id, wait.function_id, now)


def run_item_id(run_id: str) -> str:
    """The one queue item that invokes a run: being unique, one run is never invoked twice at
    once, on any node; re-enqueueing it while leased makes it run again after the ack."""
    return f"run:{run_id}"


def continue_run(tx: Tx, run_id: str, function_id: str, now: int) -> None:
    """Ask for the run's handler to be invoked again (coalesced with any pending request)."""
    tx.enqueue(
        QueueItem(
            item_id=run_item_id(run_id),
            kind="continue",
            run_id=run_id,
            function_id=function_id,
            available_at=now,
        )
    )
