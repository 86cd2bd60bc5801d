"""Operations people run on an engine by hand: rerun, rerun from a step, replay, invoke.

Each operation is a function of an :class:`~stepwell.engine.engine.Engine` that writes through
the store's documented verbs in one unit of work, then wakes the engine. A rerun is a *new* run
of the same function with the same trigger events (the events also list it among the runs they
started); a rerun from a step is a new run whose memo is seeded, in the unit that creates it,
with the steps that completed before that step, so the handler replays them and runs that step
and everything after it again.

Cancelling or replaying every run matching a selection is :mod:`stepwell.engine.bulk`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stepwell.engine.ingest import start_run
from stepwell.errors import ConfigError, NotFound
from stepwell.ids import new_id
from stepwell.store.base import Tx
from stepwell.store.records import (
    INPUT_KIND,
    EventRecord,
    RunRecord,
)

if TYPE_CHECKING:
    from stepwell.engine.engine import Engine
    from stepwell.engine.registry import FunctionSpec

log = logging.getLogger("stepwell.operations")

INVOKED = "inngest/function.invoked"


# -- one run -------------------------------------------------------------------------------------


def _start(
    engine: Engine, tx: Tx, spec: FunctionSpec, events: list[EventRecord], now: int
) -> RunRecord:
    # The function's flow control applies as to any new run (concurrency keys, priority,
    # singleton); rate limits and idempotency gate events, and a rerun sends none.
    run = start_run(tx, spec, events, now, cancel=engine.transitions.cancel)
    if run is None:
        raise ConfigError(
            f"function {spec.function_id!r} skipped the new run: its singleton run is active"
        )
    return run


def _spec(engine: Engine, function_id: str) -> FunctionSpec:
    spec = engine.registry.get(function_id)
    if spec is None:
        raise NotFound(f"function {function_id!r} is not registered (sync its app first)")
    return spec


def rerun_in(engine: Engine, tx: Tx, original: RunRecord, now: int) -> RunRecord:
    """Inside a unit: start a new run of ``original``'s function with its trigger events.

    Raises NotFound or ConfigError before writing anything (a singleton that skips the run
    records the skip).
    """
    spec = _spec(engine, original.function_id)
    events = tx.get_events(list(original.event_ids))
    if not events:
        raise NotFound(f"the trigger events of run {original.run_id!r} are gone")
    return _start(engine, tx, spec, events, now)


async def rerun(engine: Engine, run_id: str) -> RunRecord:
    """Start a new run of ``run_id``'s function with the same trigger events.

    Raises:
        NotFound: no such run, or its function is no longer registered.
    """
    return await rerun_from_step(engine, run_id, None)


async def rerun_from_step(
    engine: Engine,
    run_id: str,
    step_key: str | None,
    outputs: Mapping[str, Any] | None = None,
    input: list[Any] | None = None,
) -> RunRecord:
    """Start a new run whose memo holds the steps of ``run_id`` completed before ``step_key``.

    The handler replays those steps from the memo and runs ``step_key`` and every later step
    again. ``input`` replaces the arguments ``step_key`` was called with (its recorded input,
    ``step.run(id, fn, *args)``): the rerun step's body is called with these instead. Only a step
    that recorded an input can be given one. ``outputs`` replaces the recorded output
    (``{"data": ...}``) of some of the seeded steps, by step key; an output given for ``step_key``
    itself seeds that step too, so the rerun continues after it with that output. ``step_key``
    None seeds nothing (a plain rerun).

    Raises:
        NotFound: no such run or step, or the function is no longer registered.
        ConfigError: ``outputs`` names a step that is not seeded; ``input`` is not a list, or is
            given for a step that recorded none.
    """
    original = await engine.get_run(run_id)
    spec = _spec(engine, original.function_id)
    edits = dict(outputs or {})
    if input is not None and not isinstance(input, list):
        raise ConfigError('a step\'s input is the list of its arguments, e.g. [1, "a"]')
    if input is not None and step_key is None:
        raise ConfigError("an input needs the step it is for")
    now = engine.clock.now_ms()

    def unit(tx: Tx) -> RunRecord:
        memo = tx.get_memo(run_id) if step_key is not None else []
        seeded = memo
        if step_key is not None:
            target = next((m for m in memo if m.step_key == step_key), None)
            if target is None:
                raise NotFound(f"run {run_id!r} has no completed step {step_key!r}")
            if input is not None and target.input is None:
                raise ConfigError(
                    f"step {target.step_id!r} recorded no input (it was called without "
                    "arguments, or by an SDK that does not report them): it can be rerun, "
                    "but not with edited input"
                )
            # An edited output for the step itself seeds it too: the rerun starts after it.
            seeded = [
                m
                for m in memo
                if m.seq < target.seq or (m.step_key == step_key and step_key in edits)
            ]
        unknown = sorted(set(edits) - {m.step_key for m in seeded})
        if unknown:
            raise ConfigError(
                f"only the rerun step and steps completed before it can be edited, not {unknown}"
            )
        events = tx.get_events(list(original.event_ids))
        if not events:
            raise NotFound(f"the trigger events of run {run_id!r} are gone")
        run = _start(engine, tx, spec, events, now)
        for m in seeded:
            # no start time: these steps did not run in this run (nor count as step durations)
            value = {"data": edits[m.step_key]} if m.step_key in edits else m.value
            tx.put_memo(
                run.run_id, m.step_key, m.step_id, m.kind, value, now, None, m.attempts, m.input
            )
        if input is not None and step_key is not None and step_key not in edits:
            # holds no outcome: the step runs, with these arguments, and its outcome replaces it
            step_id = next(m.step_id for m in memo if m.step_key == step_key)
            seed = {"input": input}
            tx.put_memo(run.run_id, step_key, step_id, INPUT_KIND, seed, now, None, 1, input)
        return run

    run = await engine.store.run(unit)
    engine.wake()
    return run


async def replay_event(engine: Engine, event_id: str) -> str:
    """Send event ``event_id`` again as a new event (same name, data and user); returns its id.

    It is routed like any new event: it starts runs, resumes waits and cancels runs.
    """
    event = await engine.store.read(lambda tx: tx.get_event(event_id))
    if event is None:
        raise NotFound(f"event {event_id!r} not found")
    ids = await engine.send_wire({"name": event.name, "data": event.data, "user": event.user})
    return ids[0]


async def invoke(
    engine: Engine, function_id: str, data: Mapping[str, Any], user: Mapping[str, Any] | None = None
) -> RunRecord:
    """Start a run of ``function_id`` directly, with an ``inngest/function.invoked`` event.

    The event carries ``data`` (and ``_inngest.fn_id``), as ``step.invoke`` sends it; it starts
    no other function.
    """
    spec = _spec(engine, function_id)
    now = engine.clock.now_ms()
    payload = {**data, "_inngest": {"fn_id": function_id, "source": "dashboard"}}

    def unit(tx: Tx) -> RunRecord:
        event = EventRecord(new_id(), INVOKED, payload, now, now, dict(user or {}), source="invoke")
        tx.insert_event(event)
        return _start(engine, tx, spec, [event], now)

    run = await engine.store.run(unit)
    engine.wake()
    return run
