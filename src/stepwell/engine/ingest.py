"""Ingest: validate incoming events, then persist and route them in one transaction.

Routing an event means, atomically with storing it: start a run for every function whose trigger
matches, resume every ``wait_for_event`` step it satisfies, and cancel every run whose
``cancel_on`` it satisfies. Waits are found by index (event name + match key), never by scanning
every wait.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NewType, cast

import orjson

from stepwell.engine import flow
from stepwell.engine.expressions import MISSING, compile_expression, lookup_path
from stepwell.engine.registry import FunctionSpec, Registry
from stepwell.errors import EventError, PayloadTooLarge
from stepwell.ids import new_id
from stepwell.store.base import Tx
from stepwell.store.records import (
    BatchRecord,
    DebounceRecord,
    EventRecord,
    QueueItem,
    QueueKind,
    RunRecord,
    WaitRecord,
)

DEDUPE_TTL_MS = 24 * 3600 * 1000
MAX_EVENT_BYTES = 512 * 1024
MAX_BATCH = 5000
MIN_TS = 315_532_800_000  # 1980-01-01
MAX_TS = 4_102_444_800_000  # 2100-01-01
FOREVER_MS = 366 * 24 * 3600 * 1000
PAUSED_REASON = "function paused: replay the event once it is resumed"


IncomingEvent = NewType("IncomingEvent", EventRecord)
"""A validated event, not stored yet."""


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
    # The hot path of ingest: exact type checks first (what JSON decoding gives), the general
    # ones only for other mappings; messages are built only once something is wrong.
    if type(item) is not dict and not isinstance(item, Mapping):
        raise EventError(f"event[{index}]: must be a JSON object, not {type(item).__name__}")
    name = item.get("name")
    if type(name) is not str or not name or len(name) > 512 or name.isspace():
        raise EventError(_name_problem(index, name))
    data = _object_field(item.get("data"), index, name, "data")
    user = _object_field(item.get("user") or None, index, name, "user")
    ts = item.get("ts")
    if ts is None or ts == 0:
        ts = now
    elif isinstance(ts, bool) or not isinstance(ts, int | float) or not MIN_TS <= ts <= MAX_TS:
        raise EventError(
            f"event[{index}] ({name}): field 'ts' must be epoch milliseconds between 1980 and 2100"
        )
    dedupe = item.get("id")
    if dedupe is not None and (type(dedupe) is not str or not dedupe):
        raise EventError(f"event[{index}] ({name}): field 'id' must be a non-empty string")
    size = len(orjson.dumps(data)) + (len(orjson.dumps(user)) if user else 2)
    if size > MAX_EVENT_BYTES:
        raise PayloadTooLarge(
            f"event[{index}] ({name}): {size} bytes, over the limit of {MAX_EVENT_BYTES}"
        )
    return IncomingEvent(EventRecord(new_id(), name, data, int(ts), now, user, dedupe, source))


def _name_problem(index: int, name: Any) -> str:
    if isinstance(name, str) and name.strip():
        return f"event[{index}]: field 'name' is {len(name)} characters, over 512"
    return f"event[{index}]: field 'name' is required and must be a non-empty string"


def _object_field(value: Any, index: int, name: str, field: str) -> dict[str, Any]:
    """A copy of an optional object field (absent: empty)."""
    if type(value) is dict:
        return value.copy()
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise EventError(f"event[{index}] ({name}): field '{field}' must be a JSON object")
    return dict(value)


class Router:
    """Decides, inside a transaction, what events do: runs, resumed waits, cancellations."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        # Set by the engine's Transitions: cancelling a run emits events that are routed here.
        self.cancel: Callable[[Tx, str, int, str], bool] = _no_cancel

    def ingest(self, tx: Tx, events: Sequence[IncomingEvent], now: int) -> list[str]:
        """Store and route ``events``; return their ids (a duplicate gets the first one's id)."""
        claims = [(e.dedupe_key, e.event_id) for e in events if e.dedupe_key is not None]
        holders = tx.claim_dedupe_keys(claims, now, DEDUPE_TTL_MS) if claims else {}
        ids: list[str] = []
        stored: list[EventRecord] = []
        for event in events:
            held = holders.get(event.dedupe_key) if event.dedupe_key is not None else None
            if held is not None and held != event.event_id:
                ids.append(held)
                continue
            stored.append(event)
            ids.append(event.event_id)
        if stored:
            tx.insert_events(stored)
            self.route_all(tx, stored, now)
        return ids

    def route(self, tx: Tx, event: EventRecord, now: int) -> None:
        """Start runs, resume waits and cancel runs for a stored event."""
        self.route_all(tx, [event], now)

    def route_all(self, tx: Tx, events: Sequence[EventRecord], now: int) -> None:
        """:meth:`route` each stored event, in order, with one wait lookup for all of them.

        The waits found up front are those stored when the unit routes the batch; each event
        also finds the waits that routing the events before it created (``cancel_on`` waits of
        the runs they started), and a wait taken by an earlier event is gone for the later ones,
        as when routing them one by one.
        """
        wires = [event.to_wire() for event in events]
        found = _prefetch_waits(tx, events, wires, now)
        watched = _WaitWatchingTx(tx)
        routed = watched.as_tx()
        for index, (event, wire) in enumerate(zip(events, wires, strict=True)):
            self._start_runs(routed, event, wire, now)
            waits = found.get(index, [])
            if watched.inserted:
                waits = [*waits, *_matching_new_waits(tx, watched.inserted, event, wire, now)]
            for wait in waits:
                if not routed.delete_wait(wait.wait_id):
                    continue
                if wait.kind == "cancel":
                    self.cancel(
                        routed,
                        wait.run_id,
                        now,
                        f"cancelled by event {event.name} ({event.event_id})",
                    )
                else:
                    resume_wait(routed, wait, wire, now)

    def _start_runs(self, tx: Tx, event: EventRecord, wire: dict[str, Any], now: int) -> None:
        started: set[str] = set()
        for spec, trigger in self.registry.candidates(event.name):
            if spec.function_id in started:
                continue
            if trigger.expression is not None and not trigger.expression.matches({"event": wire}):
                continue
            started.add(spec.function_id)
            if spec.function_id in self.registry.paused:
                tx.insert_skip(event.event_id, spec.function_id, PAUSED_REASON, now)
                continue
            admit(tx, spec, event, wire, now, self.cancel)


class _WaitWatchingTx:
    """A :class:`Tx` passing every call through, noting the waits it inserted."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx
        self.inserted: list[WaitRecord] = []

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._tx, name)
        setattr(self, name, value)  # later calls skip __getattr__
        return value

    def insert_wait(self, wait: WaitRecord) -> bool:
        written = self._tx.insert_wait(wait)
        if written:
            self.inserted.append(wait)
        return written

    def as_tx(self) -> Tx:
        """This object typed as the :class:`Tx` it stands in for."""
        return cast(Tx, self)


def _prefetch_waits(
    tx: Tx, events: Sequence[EventRecord], wires: Sequence[dict[str, Any]], now: int
) -> dict[int, list[WaitRecord]]:
    """The unexpired stored waits each event (by index; ``wires`` are the events as handlers
    see them) satisfies: per awaited event name, one query per key path for all the events'
    keys, and one for the unkeyed waits."""
    found: dict[int, list[WaitRecord]] = {}
    waited = tx.waited_event_names([e.name for e in events])
    triggers: dict[str, dict[str, Any]] = {}
    for name in waited:
        group = [(i, wires[i]) for i, e in enumerate(events) if e.name == name]
        for path in tx.keyed_wait_paths(name):
            keys: dict[int, str] = {}
            for index, wire in group:
                value = lookup_path(wire, path)
                if value is not MISSING:
                    keys[index] = _key_text(value)
            if not keys:
                continue
            by_key: dict[str | None, list[WaitRecord]] = {}
            for wait in tx.find_keyed_waits_among(name, path, list(keys.values())):
                if wait.expires_at > now:
                    by_key.setdefault(wait.match_value, []).append(wait)
            for index, key in keys.items():
                if key in by_key:
                    found.setdefault(index, []).extend(by_key[key])
        unkeyed = [w for w in tx.find_unkeyed_waits(name) if w.expires_at > now]
        for index, wire in group if unkeyed else ():
            matched = [w for w in unkeyed if _wait_matches(tx, w, wire, triggers)]
            if matched:
                found.setdefault(index, []).extend(matched)
    return found


def _matching_new_waits(
    tx: Tx, inserted: Sequence[WaitRecord], event: EventRecord, wire: dict[str, Any], now: int
) -> list[WaitRecord]:
    """The waits created while routing this batch that ``event`` satisfies."""
    matched = []
    for wait in inserted:
        if wait.event_name != event.name or wait.expires_at <= now:
            continue
        if wait.match_path is not None:
            value = lookup_path(wire, wait.match_path)
            if value is not MISSING and _key_text(value) == wait.match_value:
                matched.append(wait)
        elif _wait_matches(tx, wait, wire, {}):
            matched.append(wait)
    return matched


def _no_cancel(tx: Tx, run_id: str, now: int, reason: str) -> bool:
    raise RuntimeError("Router.cancel is not wired to a Transitions")


def _wait_matches(
    tx: Tx, wait: WaitRecord, wire: dict[str, Any], triggers: dict[str, dict[str, Any]]
) -> bool:
    """Whether an unkeyed wait's condition holds for the event ``wire``; ``triggers`` caches
    the waiting runs' trigger events by id."""
    if wait.expression is None:
        return True
    trigger: dict[str, Any] = {}
    if wait.trigger_event_id:
        if wait.trigger_event_id not in triggers:
            stored = tx.get_event(wait.trigger_event_id)
            triggers[wait.trigger_event_id] = stored.to_wire() if stored else {}
        trigger = triggers[wait.trigger_event_id]
    return compile_expression(wait.expression).matches({"event": trigger, "async": wire})


def _key_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


Cancel = Callable[[Tx, str, int, str], bool]


def admit(
    tx: Tx, spec: FunctionSpec, event: EventRecord, wire: dict[str, Any], now: int, cancel: Cancel
) -> RunRecord | None:
    """An event matched a trigger of ``spec``: start a run, or hold or skip it as the function's
    flow control says (batching, rate limit, idempotency, debounce). Skips are recorded."""
    fc = spec.flow
    fid = spec.function_id
    if fc.batch is not None and (
        fc.batch.condition is None or fc.batch.condition.matches({"event": wire})
    ):
        add_to_batch(tx, spec, event, wire, now, cancel)
        return None
    if fc.rate_limit is not None:
        r = fc.rate_limit
        bucket = f"r:{fid}:{flow.key_value(r.key, wire)}"
        tx.lock_keys([bucket])
        if not flow.gcra_allow(tx, bucket, r.limit, r.period_ms, now):
            tx.insert_skip(
                event.event_id, fid, f"rate limited ({r.limit} per {r.period_ms} ms)", now
            )
            return None
    if fc.idempotency is not None:
        key = f"idempotency:{fid}:{flow.key_value(fc.idempotency, wire)}"
        held = tx.claim_dedupe_key(key, event.event_id, now, flow.IDEMPOTENCY_TTL_MS)
        if held is not None:
            tx.insert_skip(
                event.event_id, fid, f"idempotency key already used by event {held}", now
            )
            return None
    if fc.debounce is not None:
        debounce(tx, spec, event, wire, now)
        return None
    return start_run(tx, spec, [event], now, cancel=cancel)


def debounce(
    tx: Tx, spec: FunctionSpec, event: EventRecord, wire: Mapping[str, Any], now: int
) -> None:
    """Hold the run's start until the key is quiet for the debounce period (or the timeout from
    the first event passed); the run then starts with the latest event."""
    d = spec.flow.debounce
    assert d is not None
    key = f"d:{spec.function_id}:{flow.key_value(d.key, wire)}"
    tx.lock_keys([key])
    pending = tx.get_debounce(key)
    first_at = pending.first_at if pending is not None else now
    due_at = now + d.period_ms
    if d.timeout_ms is not None:
        due_at = min(due_at, first_at + d.timeout_ms)
    run_id = pending.run_id if pending is not None else new_id()
    tx.put_debounce(DebounceRecord(key, spec.function_id, run_id, event.event_id, first_at, due_at))
    if pending is None:
        # The timer fires at the first due time; if events moved it later, it waits again then.
        tx.enqueue(
            QueueItem(
                item_id=f"debounce:{run_id}",
                kind="debounce",
                run_id=run_id,
                function_id=spec.function_id,
                available_at=due_at,
                payload={"key": key},
            )
        )


def add_to_batch(
    tx: Tx,
    spec: FunctionSpec,
    event: EventRecord,
    wire: Mapping[str, Any],
    now: int,
    cancel: Cancel | None = None,
) -> None:
    """Add the event to the key's open batch; a full batch starts its run now, an open one
    starts when its timeout passes."""
    b = spec.flow.batch
    assert b is not None
    key = f"b:{spec.function_id}:{flow.key_value(b.key, wire)}"
    tx.lock_keys([key])
    batch = tx.get_batch(key)
    if batch is None:
        batch = BatchRecord(key, spec.function_id, new_id(), (), now)
        tx.enqueue(
            QueueItem(
                item_id=f"batch:{batch.run_id}",
                kind="batch",
                run_id=batch.run_id,
                function_id=spec.function_id,
                available_at=now + b.timeout_ms,
                payload={"key": key},
            )
        )
    event_ids = (*batch.event_ids, event.event_id)
    if len(event_ids) < b.max_size:
        tx.put_batch(BatchRecord(key, batch.function_id, batch.run_id, event_ids, batch.created_at))
        return
    tx.delete_batch(key, batch.run_id)
    tx.delete_queue_item(f"batch:{batch.run_id}")
    events = [*tx.get_events(event_ids[:-1]), event]
    start_run(tx, spec, events, now, run_id=batch.run_id, cancel=cancel)


def start_run(
    tx: Tx,
    spec: FunctionSpec,
    events: Sequence[EventRecord],
    now: int,
    *,
    parent: tuple[str, str] | None = None,
    run_id: str | None = None,
    cancel: Cancel | None = None,
) -> RunRecord | None:
    """Create a run of ``spec`` for ``events`` with its start item and ``cancel_on`` waits.

    A first event whose ``ts`` lies in the future delays the start until then. The function's
    singleton setting may skip the run (None) or cancel the one it replaces (with ``cancel``);
    its priority orders the start; ``timeouts.start`` arms a timer.
    """
    first = events[0]
    wire = first.to_wire()
    fc = spec.flow
    singleton_key = None
    if fc.singleton is not None:
        singleton_key = f"s:{spec.function_id}:{flow.key_value(fc.singleton.key, wire)}"
        tx.lock_keys([singleton_key])
        active = tx.singleton_runs(singleton_key)
        if active and fc.singleton.mode == "skip":
            reason = f"singleton: run {active[0].run_id} is still running"
            tx.insert_skip(first.event_id, spec.function_id, reason, now)
            return None
        for other in active:
            if cancel is not None:
                cancel(
                    tx,
                    other.run_id,
                    now,
                    f"replaced by a newer run (singleton, event {first.event_id})",
                )
    run = RunRecord(
        run_id=run_id or new_id(),
        function_id=spec.function_id,
        function_version=spec.version,
        app_id=spec.app_id,
        status="Queued",
        event_id=first.event_id,
        event_ids=tuple(e.event_id for e in events),
        created_at=now,
        parent_run_id=parent[0] if parent else None,
        parent_step_key=parent[1] if parent else None,
        flow_keys=flow.run_flow_keys(fc, spec.function_id, wire),
        singleton_key=singleton_key,
    )
    tx.insert_run(run)
    start_at = max(now, first.ts) if first.source == "api" else now
    tx.enqueue(
        QueueItem(
            item_id=run_item_id(run.run_id),
            kind="start",
            run_id=run.run_id,
            function_id=spec.function_id,
            available_at=start_at - flow.priority_ms(fc, wire),
        )
    )
    if fc.start_timeout_ms is not None:
        tx.enqueue(timeout_item("start_timeout", run, start_at + fc.start_timeout_ms))
    for c in spec.cancels:
        expires = start_at + (c.timeout_ms if c.timeout_ms is not None else FOREVER_MS)
        tx.insert_wait(
            keyed_wait(
                run,
                "cancel",
                c.event,
                c.expression.source if c.expression else None,
                wire,
                expires,
                None,
                None,
            )
        )
    return run


def timeout_item(kind: QueueKind, run: RunRecord, due: int) -> QueueItem:
    """The timer that cancels a run when ``timeouts.start`` or ``timeouts.finish`` passes."""
    return QueueItem(
        item_id=f"{kind}:{run.run_id}",
        kind=kind,
        run_id=run.run_id,
        function_id=run.function_id,
        available_at=due,
    )


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
