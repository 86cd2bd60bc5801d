"""Bulk operations: cancel or replay every run matching a selection.

Bulk operations (:class:`BulkOperations`) are stored (``bulk_operations``): any node answers
for one's progress. They select the runs queued before they were asked for, newest first, a
page at a time with the runs index, and act on a small group of runs per unit of work, the
unit that also moves the operation's cursor and checks its lease: one node works on an
operation at a time, and when that node stops or dies, any node takes it over from the cursor,
so every selected run is cancelled, or replayed, exactly once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from stepwell.engine.expressions import Expression, compile_expression
from stepwell.engine.operations import rerun_in
from stepwell.errors import ConfigError, NotFound, StepwellError
from stepwell.ids import new_id
from stepwell.store.base import BulkRecord, Tx
from stepwell.store.records import FINAL_STATUSES, RunFilter, RunRecord

if TYPE_CHECKING:
    from stepwell.engine.engine import Engine

log = logging.getLogger("stepwell.bulk")

PAGE = 500
"""Runs a bulk operation examines per read."""
GROUP = 32
"""Runs a bulk operation acts on per unit of work."""
MAX_ERRORS = 10
"""Errors a bulk operation keeps (the first ones)."""
CHECK_MS = 5_000
"""How often a node looks for bulk operations whose lease expired, to take them over."""
REGISTER_WAIT_S = 5.0
"""How long a replay waits for this node to learn a function it does not know (seconds)."""

BulkKind = Literal["cancel", "replay"]


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


@dataclass(frozen=True, slots=True)
class BulkJob:
    """One bulk operation and how far it got, as read from the store.

    Attributes:
        job_id: a ULID.
        kind: ``cancel`` or ``replay``.
        selection: the runs it acts on (those queued before ``created_at``).
        created_at: when it was asked for (epoch ms).
        total: how many runs matched (None while they are being selected).
        processed: how many of them were handled so far.
        changed: how many were cancelled (or rerun).
        skipped: how many needed nothing (a cancel of a run that had already ended) or could
            not be handled (see ``errors``).
        errors: the first few errors, in plain words.
        state: ``selecting``, ``running``, ``done`` or ``failed``.
        ended_at: when it finished.
        updated_at: when it last moved (epoch ms).
        node_id: the node working on it now; None when none holds its lease.
    """

    job_id: str
    kind: BulkKind
    selection: RunSelection
    created_at: int
    total: int | None = None
    processed: int = 0
    changed: int = 0
    skipped: int = 0
    errors: tuple[str, ...] = ()
    state: str = "selecting"
    ended_at: int | None = None
    updated_at: int | None = None
    node_id: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    @classmethod
    def of(cls, record: BulkRecord) -> BulkJob:
        """The job a stored record describes."""
        return cls(
            job_id=record.job_id,
            kind="cancel" if record.kind == "cancel" else "replay",
            selection=RunSelection(**record.selection),
            created_at=record.created_at,
            total=record.total,
            processed=record.processed,
            changed=record.changed,
            skipped=record.skipped,
            errors=record.errors,
            state=record.state,
            ended_at=record.ended_at,
            updated_at=record.updated_at,
            node_id=record.lease_owner,
        )


class _LeaseLost(Exception):
    """Another node took the bulk operation over (this node's lease expired): stop here."""


class BulkOperations:
    """Bulk cancels and replays, stored, and worked on in the background by one node at a time.

    Each operation is a row of the store with a lease. The node that starts one works on it;
    :meth:`resume` takes over any whose lease expired (its node died or stopped), from its
    cursor. Every page of runs is acted on in the unit of work that moves the cursor and checks
    the lease, so no run is cancelled or replayed twice, whichever node finishes the work.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._tokens: dict[str, str] = {}
        self._checked_at: int | None = None
        self._unknown: set[str] = set()

    async def start(self, kind: BulkKind, selection: RunSelection) -> BulkJob:
        """Store a bulk operation and begin it here; returns at once with the job to follow.

        Raises:
            ConfigError: the selection's ``if_exp`` does not compile.
        """
        selection.expression()
        engine, now = self.engine, self.engine.clock.now_ms()
        record = BulkRecord(
            job_id=new_id(),
            kind=kind,
            selection=asdict(selection),
            state="selecting",
            total=None,
            processed=0,
            changed=0,
            skipped=0,
            errors=(),
            after_run_id=None,
            lease_owner=engine.node_id,
            lease_token=new_id(),
            lease_expires_at=now + engine.lease_ms,
            created_at=now,
            updated_at=now,
        )
        await engine.store.run(lambda tx: tx.insert_bulk_operation(record))
        self._work(record)
        return BulkJob.of(record)

    async def get(self, job_id: str) -> BulkJob:
        """The job as stored (whichever node works on it), or :class:`NotFound`."""
        record = await self.engine.store.read(lambda tx: tx.get_bulk_operation(job_id))
        if record is None:
            raise NotFound(f"bulk operation {job_id!r} not found")
        return BulkJob.of(record)

    async def wait(self, job_id: str) -> BulkJob:
        """Wait until the job finished (for tests and scripts)."""
        job = await self.get(job_id)
        while not job.finished:
            await asyncio.sleep(0.02)
            job = await self.get(job_id)
        return job

    async def resume(self, *, take_over: bool = False) -> int:
        """Lease every unfinished operation whose lease expired and work on it here, from its
        cursor; returns how many. ``take_over`` leases every unfinished one (a single node that
        holds the store alone: what an earlier process held is its own)."""
        engine, now = self.engine, self.engine.clock.now_ms()
        self._checked_at = now
        free_at = FOREVER if take_over else now
        found = await engine.store.read(lambda tx: tx.resumable_bulk_operations(free_at))
        taken = 0
        for job_id in found:
            if job_id in self._tasks:
                continue
            lease = functools.partial(
                _lease, job_id, engine.node_id, new_id(), free_at, now + engine.lease_ms
            )
            record = await engine.store.run(lease)
            if record is not None:
                log.info(
                    "bulk %s %s: continuing after run %s", record.kind, job_id, record.after_run_id
                )
                self._work(record)
                taken += 1
        return taken

    def working(self) -> list[str]:
        """The ids of the operations this node works on now."""
        return list(self._tasks)

    async def resume_due(self) -> int:
        """:meth:`resume`, at most once per :data:`CHECK_MS` (called from the engine's loops)."""
        now = self.engine.clock.now_ms()
        if self._checked_at is not None and now - self._checked_at < CHECK_MS:
            return 0
        return await self.resume()

    async def stop(self) -> None:
        """Stop working on operations here and give their leases up, so another node (or this
        one, restarted) continues them at once."""
        held, tasks = dict(self._tokens), list(self._tasks.values())  # tasks clear them as they end
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if held:
            await self.engine.store.run(
                lambda tx: [tx.release_bulk_operation(j, t) for j, t in held.items()]
            )

    def _work(self, record: BulkRecord) -> None:
        assert record.lease_token is not None
        self._tokens[record.job_id] = record.lease_token
        task = asyncio.create_task(self._run(record), name=f"stepwell-bulk-{record.job_id}")
        self._tasks[record.job_id] = task
        task.add_done_callback(functools.partial(self._done, record.job_id))

    def _done(self, job_id: str, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(job_id, None)
        self._tokens.pop(job_id, None)

    async def _run(self, record: BulkRecord) -> None:
        token = record.lease_token
        try:
            if record.state == "selecting":
                record = await self._count(record)
            while record.state == "running":
                record = await self._page(record)
        except _LeaseLost:
            log.warning("bulk %s %s: another node took it over", record.kind, record.job_id)
        except Exception as exc:
            log.exception("bulk %s %s failed", record.kind, record.job_id)
            now = self.engine.clock.now_ms()
            failed = replace(
                record, state="failed", errors=(*record.errors, str(exc)), ended_at=now,
                updated_at=now, lease_owner=None, lease_token=None, lease_expires_at=None,
            )  # fmt: skip
            assert token is not None
            try:
                await self.engine.store.run(lambda tx: tx.save_bulk_operation(failed, token))
            except Exception:  # the lease expires; a node takes it over and tries again
                log.exception(
                    "bulk %s %s: could not record the failure", record.kind, record.job_id
                )

    async def _count(self, record: BulkRecord) -> BulkRecord:
        """Count the matching runs (``total``); a read-only pass, renewing the lease per page."""
        selection, keep = _bounded(record)
        total, cursor = 0, None
        while True:
            page, cursor = await scan_runs(self.engine, selection, cursor=cursor, budget=PAGE)
            total += sum(1 for run in page if keep(run))
            if cursor is None:
                return await self._save(replace(record, state="running", total=total))
            record = await self._save(record)

    async def _save(self, record: BulkRecord) -> BulkRecord:
        """Write the record, renewing the lease; raises :class:`_LeaseLost` if another holds it."""
        token = record.lease_token
        assert token is not None
        now = self.engine.clock.now_ms()
        record = replace(record, updated_at=now, lease_expires_at=now + self.engine.lease_ms)
        if not await self.engine.store.run(lambda tx: tx.save_bulk_operation(record, token)):
            raise _LeaseLost
        return record

    async def _page(self, record: BulkRecord) -> BulkRecord:
        """Act on the next :data:`GROUP` matching runs after the cursor, in one unit of work
        that also moves the cursor and renews the lease (or finishes the operation)."""
        engine = self.engine
        selection, keep = _bounded(record)
        found, cursor = await scan_runs(
            engine, selection, cursor=record.after_run_id, want=GROUP, budget=PAGE
        )
        runs = [run for run in found if keep(run)]
        if record.kind == "replay":
            await self._until_registered({run.function_id for run in runs})
        now = engine.clock.now_ms()

        def unit(tx: Tx) -> BulkRecord:
            current = tx.get_bulk_operation(record.job_id)
            if current != record:  # moved by another node meanwhile, or gone
                raise _LeaseLost
            changed, errors = _act(engine, tx, record, runs, now)
            after = cursor if cursor is not None else found[-1].run_id if found else None
            moved = replace(
                record,
                processed=record.processed + len(runs),
                changed=record.changed + changed,
                skipped=record.skipped + len(runs) - changed,
                errors=(*record.errors, *errors)[:MAX_ERRORS],
                after_run_id=after or record.after_run_id,
                updated_at=now,
                lease_expires_at=now + engine.lease_ms,
            )
            if cursor is None:
                moved = replace(
                    moved, state="done", ended_at=now,
                    lease_owner=None, lease_token=None, lease_expires_at=None,
                )  # fmt: skip
            assert record.lease_token is not None
            if not tx.save_bulk_operation(moved, record.lease_token):
                raise _LeaseLost  # rolls back what the page did
            return moved

        moved = await engine.store.run(unit)
        if runs:
            engine.wake()
        return moved

    async def _until_registered(self, function_ids: set[str]) -> None:
        """Wait a little for functions this node does not know yet: a node resumes operations
        as it starts, a moment before its apps are registered. A function still unknown after
        that is not waited for again (its reruns fail, each with its error)."""
        registry = self.engine.registry
        unknown = function_ids - self._unknown
        for _ in range(int(REGISTER_WAIT_S / 0.05)):
            unknown = {f for f in unknown if registry.get(f) is None}
            if not unknown:
                return
            await asyncio.sleep(0.05)
        self._unknown |= unknown


FOREVER = 1 << 62
"""A time later than any lease's expiry."""


def _lease(job_id: str, owner: str, token: str, now: int, until: int, tx: Tx) -> BulkRecord | None:
    return tx.lease_bulk_operation(job_id, owner, token, now, until)


def _bounded(record: BulkRecord) -> tuple[RunSelection, Callable[[RunRecord], bool]]:
    """The operation's selection, limited to runs queued before it was asked for (so a replay
    never selects the runs it starts), and whether a listed run is one it acts on: a cancel
    leaves out runs that had ended before it was asked for."""
    selection = RunSelection(**record.selection)
    before = record.created_at
    if selection.started_before is not None:
        before = min(before, selection.started_before)
    asked = record.created_at

    def keep(run: RunRecord) -> bool:
        ended_before = run.status in FINAL_STATUSES and (run.ended_at or 0) < asked
        return record.kind != "cancel" or not ended_before

    return replace(selection, started_before=before), keep


def _act(
    engine: Engine, tx: Tx, record: BulkRecord, runs: list[RunRecord], now: int
) -> tuple[int, list[str]]:
    """Cancel or rerun each run inside the caller's unit; returns how many changed, and errors."""
    changed, errors = 0, []
    for run in runs:
        try:
            if record.kind == "cancel":
                reason = f"cancelled by bulk cancel {record.job_id}"
                done = engine.transitions.cancel(tx, run.run_id, now, reason)
            else:
                rerun_in(engine, tx, run, now)
                done = True
        except StepwellError as exc:  # raised before the run's writes: nothing to undo
            done = False
            errors.append(f"run {run.run_id}: {exc}")
        changed += done
    return changed, errors


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
