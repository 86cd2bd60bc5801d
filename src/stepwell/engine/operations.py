"""Operations people run on an engine by hand: rerun, rerun from a step, replay, invoke, and
cancel or replay every run matching a selection.

Each operation is a function of an :class:`~stepwell.engine.engine.Engine` that writes through
the store's documented verbs in one unit of work, then wakes the engine. A rerun is a *new* run
of the same function with the same trigger events (the events also list it among the runs they
started); a rerun from a step is a new run whose memo is seeded, in the unit that creates it,
with the steps that completed before that step, so the handler replays them and runs that step
and everything after it again.

Bulk operations (:class:`BulkOperations`) select runs page by page with the runs index and act on
them in small concurrent groups, keeping progress in memory on the node that runs them: a
restart stops a bulk operation, and what it did stays done.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from stepwell.engine.expressions import Expression, compile_expression
from stepwell.engine.ingest import start_run
from stepwell.errors import ConfigError, NotFound, StepwellError
from stepwell.ids import new_id
from stepwell.store.base import Tx
from stepwell.store.records import FINAL_STATUSES, EventRecord, RunFilter, RunRecord

if TYPE_CHECKING:
    from stepwell.engine.engine import Engine
    from stepwell.engine.registry import FunctionSpec

log = logging.getLogger("stepwell.operations")

INVOKED = "inngest/function.invoked"
PAGE = 500
GROUP = 32

BulkKind = Literal["cancel", "replay"]


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
) -> RunRecord:
    """Start a new run whose memo holds the steps of ``run_id`` completed before ``step_key``.

    The handler replays those steps from the memo and runs ``step_key`` and every later step
    again. ``outputs`` replaces the recorded output (``{"data": ...}``) of some of the seeded
    steps, by step key: the input the rerun step sees when it reads what earlier steps returned.
    An output given for ``step_key`` itself seeds that step too, so the rerun continues after it
    with that output. ``step_key`` None seeds nothing (a plain rerun).

    Raises:
        NotFound: no such run or step, or the function is no longer registered.
        ConfigError: ``outputs`` names a step that is not seeded.
    """
    original = await engine.get_run(run_id)
    spec = _spec(engine, original.function_id)
    edits = dict(outputs or {})
    now = engine.clock.now_ms()

    def unit(tx: Tx) -> RunRecord:
        memo = tx.get_memo(run_id) if step_key is not None else []
        seeded = memo
        if step_key is not None:
            target = next((m for m in memo if m.step_key == step_key), None)
            if target is None:
                raise NotFound(f"run {run_id!r} has no completed step {step_key!r}")
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
            tx.put_memo(run.run_id, m.step_key, m.step_id, m.kind, value, now, None, m.attempts)
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


# -- selections and bulk operations --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunSelection:
    """Which runs a bulk operation acts on; every field set must match.

    Attributes:
        function_id: composite function id (``<app>-<fn>``).
        app_id: runs of this app's functions.
        status: one run status.
        started_after: runs queued at or after this time (epoch ms).
        started_before: runs queued before this time (epoch ms).
        if_exp: CEL over ``event``, the run's first trigger event.
        event_name: the name of the run's trigger event.
    """

    function_id: str | None = None
    app_id: str | None = None
    status: str | None = None
    started_after: int | None = None
    started_before: int | None = None
    if_exp: str | None = None
    event_name: str | None = None

    def expression(self) -> Expression | None:
        """The compiled ``if_exp``; raises :class:`ConfigError` when it does not compile."""
        return compile_expression(self.if_exp, field="if") if self.if_exp else None


async def select_runs(engine: Engine, selection: RunSelection) -> list[RunRecord]:
    """Every run matching ``selection``, newest first, read a page at a time."""
    found, _ = await scan_runs(engine, selection)
    return found


async def scan_runs(
    engine: Engine,
    selection: RunSelection,
    *,
    cursor: str | None = None,
    want: int | None = None,
    budget: int | None = None,
) -> tuple[list[RunRecord], str | None]:
    """Runs matching ``selection``, newest first, after run ``cursor``.

    Stops once ``want`` runs matched or ``budget`` runs were examined (the ``if_exp`` condition
    is evaluated per run, so a rare match may take a long walk). Returns the matches and where
    to resume (a run id), or None when every run was examined.
    """
    expression = selection.expression()
    found: list[RunRecord] = []
    examined = 0
    while True:
        flt = RunFilter(
            function_id=selection.function_id,
            status=selection.status,
            since=selection.started_after,
            until=selection.started_before,
            cursor=cursor,
            limit=PAGE if budget is None else max(1, min(PAGE, budget - examined)),
        )
        page, events = await engine.store.read(
            functools.partial(
                _page, flt=flt, expression=expression, event_name=selection.event_name
            )
        )
        for run in page:
            examined += 1
            cursor = run.run_id
            if _selected(run, selection, expression, events):
                found.append(run)
                if want is not None and len(found) >= want:
                    return found, cursor
        if len(page) < flt.limit:
            return found, None
        if budget is not None and examined >= budget:
            return found, cursor


def _selected(
    run: RunRecord,
    selection: RunSelection,
    expression: Expression | None,
    events: Mapping[str, Mapping[str, Any]],
) -> bool:
    if selection.app_id is not None and run.app_id != selection.app_id:
        return False
    if expression is None:
        return True
    event = events.get(run.event_id)
    if event is None:
        return False
    try:
        return expression.matches({"event": event})
    except StepwellError:
        return False  # a condition that cannot be evaluated on this event does not match it


def _page(
    tx: Tx, flt: RunFilter, expression: Expression | None, event_name: str | None
) -> tuple[list[RunRecord], dict[str, dict[str, Any]]]:
    if event_name is not None:
        runs = tx.list_runs_for_event_name(event_name, flt)
    else:
        runs = tx.list_runs(flt)
    if expression is None:
        return runs, {}
    events = tx.get_events([r.event_id for r in runs])
    return runs, {e.event_id: e.to_wire() for e in events}


@dataclass(slots=True)
class BulkJob:
    """One bulk operation and how far it got.

    Attributes:
        job_id: a ULID.
        kind: ``cancel`` or ``replay``.
        selection: the runs it acts on.
        created_at: when it was asked for (epoch ms).
        total: how many runs matched (None while they are being selected).
        processed: how many of them were handled so far.
        changed: how many were cancelled (or rerun).
        skipped: how many needed nothing (a cancel of a run that had already ended).
        errors: the first few errors, in plain words.
        state: ``selecting``, ``running``, ``done`` or ``failed``.
        ended_at: when it finished.
    """

    job_id: str
    kind: BulkKind
    selection: RunSelection
    created_at: int
    total: int | None = None
    processed: int = 0
    changed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    state: str = "selecting"
    ended_at: int | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")


class BulkOperations:
    """Starts bulk cancels and replays in the background and keeps their progress."""

    def __init__(self, engine: Engine, *, keep: int = 100) -> None:
        self.engine = engine
        self.keep = keep
        self.jobs: dict[str, BulkJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, kind: BulkKind, selection: RunSelection) -> BulkJob:
        """Begin a bulk operation; returns at once with the job to follow.

        Raises:
            ConfigError: the selection's ``if_exp`` does not compile.
        """
        selection.expression()
        job = BulkJob(new_id(), kind, selection, self.engine.clock.now_ms())
        self.jobs[job.job_id] = job
        for old in list(self.jobs)[: max(0, len(self.jobs) - self.keep)]:
            if self.jobs[old].finished:
                del self.jobs[old]
        task = asyncio.create_task(self._run(job), name=f"stepwell-bulk-{job.job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def get(self, job_id: str) -> BulkJob:
        """The job, or :class:`NotFound`."""
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"bulk operation {job_id!r} not found (progress is kept in memory)")
        return job

    async def wait(self, job_id: str) -> BulkJob:
        """Wait until the job finished (for tests and scripts)."""
        job = self.get(job_id)
        while not job.finished:
            await asyncio.sleep(0.02)
        return job

    async def _run(self, job: BulkJob) -> None:
        try:
            run_ids = await self._select(job)
            job.total = len(run_ids)
            job.state = "running"
            for start in range(0, len(run_ids), GROUP):
                group = run_ids[start : start + GROUP]
                await asyncio.gather(*(self._one(job, run_id) for run_id in group))
            job.state = "done"
        except Exception as exc:
            log.exception("bulk %s %s failed", job.kind, job.job_id)
            job.errors.append(str(exc))
            job.state = "failed"
        finally:
            job.ended_at = self.engine.clock.now_ms()

    async def _select(self, job: BulkJob) -> list[str]:
        """The ids of the runs to act on, read a page at a time (only ids are kept, so a large
        selection costs little memory); a cancel leaves out runs that have ended."""
        run_ids: list[str] = []
        cursor: str | None = None
        while True:
            page, cursor = await scan_runs(self.engine, job.selection, cursor=cursor, want=PAGE)
            run_ids += [
                r.run_id for r in page if job.kind != "cancel" or r.status not in FINAL_STATUSES
            ]
            if cursor is None or len(page) < PAGE:
                return run_ids

    async def _one(self, job: BulkJob, run_id: str) -> None:
        try:
            if job.kind == "cancel":
                done = await self.engine.cancel(run_id, f"cancelled by bulk cancel {job.job_id}")
            else:
                await rerun(self.engine, run_id)
                done = True
        except Exception as exc:
            done = False
            if len(job.errors) < 10:
                job.errors.append(f"run {run_id}: {exc}")
        job.processed += 1
        if done:
            job.changed += 1
        else:
            job.skipped += 1


def selection_from(params: Mapping[str, Any]) -> RunSelection:
    """A selection from loosely typed input (a JSON body or a query string).

    Times may be epoch milliseconds or ISO 8601 / RFC 3339 text. Raises :class:`ConfigError`
    naming the field.
    """
    from stepwell.protocol.durations import parse_time

    def text(name: str) -> str | None:
        value = params.get(name)
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise ConfigError(f"field {name!r} must be a string")
        return value

    def instant(name: str) -> int | None:
        value = params.get(name)
        if value in (None, ""):
            return None
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"field {name!r} must be a time (RFC 3339 text or epoch ms)")
        return parse_time(value, field=name)

    status = text("status")
    statuses = ("Queued", "Running", "Completed", "Failed", "Cancelled")
    if status is not None and status not in statuses:
        raise ConfigError(f"field 'status' must be one of {list(statuses)}, not {status!r}")
    return RunSelection(
        function_id=text("function_id"),
        app_id=text("app_id"),
        status=status,
        started_after=instant("started_after"),
        started_before=instant("started_before"),
        if_exp=text("if"),
        event_name=text("event_name"),
    )
