"""Checkpointing for the in-process driver: each finished step is one write, shared commits.

A step's memo write is handed to the store without waiting for it (write-behind), pipelined: at
most one unit of this run's checkpoints is in flight; checkpoints made meanwhile are buffered and
go together in the next unit, or in the unit that commits the invocation's outcome. A buffered
checkpoint waits at most ``delay_s`` (default 5 ms) before it is submitted, so a run that ends
quickly commits all its steps with its outcome in one transaction, while a long run's progress
is never more than a few milliseconds from disk. Writes of
one run therefore land in order, a slow commit never slows the steps, and a fast run commits its
steps and its end in one transaction. Everything observable (the run's end, a sleep or wait, an
invoke, sent events) is committed with or after the checkpoints before it, so a crash can only
lose checkpoints of steps that will simply run again.

Two invocations of one run can overlap (a node stalls past its lease and another takes the run
over) and both execute a step. The first write wins; the invocation whose write lost has gone on
with a result that is not the run's, so nothing it decided may be committed: its checkpoint
raises :class:`StepRecordedElsewhere`, which fails the unit it is in (the outcome's, or a
write-behind one that :meth:`RunCheckpointer.take` and :meth:`RunCheckpointer.flush` re-raise),
and the run is replayed from the memo.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stepwell.clock import Clock
from stepwell.engine.ingest import Router, validate_events
from stepwell.protocol.ops import StepFailed, StepRun
from stepwell.store.base import Store, Tx
from stepwell.store.records import MemoRecord


class RunCheckpointer:
    """The :class:`~stepwell.protocol.invocation.Checkpointer` of one invocation of one run."""

    def __init__(
        self,
        store: Store,
        router: Router,
        clock: Clock,
        run_id: str,
        *,
        delay_s: float = 0.005,
    ) -> None:
        self._store = store
        self._router = router
        self._clock = clock
        self._run_id = run_id
        self._buffer: list[Callable[[Tx], Any]] = []
        self._inflight: asyncio.Future[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._delay_s = delay_s
        # A write-behind unit that failed: later checkpoints must not land after the lost
        # ones, and the invocation's outcome must not be committed (take and flush raise it).
        self._failed: BaseException | None = None
        self.steps = 0
        """Steps completed during this invocation (a new step starts counting attempts at 0)."""

    async def step_completed(self, op: StepRun | StepFailed) -> None:
        self.steps += 1
        value = {"data": op.data} if isinstance(op, StepRun) else {"error": op.error}
        started = op.started_at if isinstance(op, StepRun) else None
        memo = MemoRecord(
            self._run_id, op.key, op.step_id, "run", value, 0, self._clock.now_ms(), started, 1,
            op.input,
        )  # fmt: skip
        last = self._buffer[-1] if self._buffer else None
        if isinstance(last, _StepWrites):
            last.memos.append(memo)  # checkpoints in a row: one statement
        else:
            self.defer(_StepWrites([memo]))

    def defer(self, work: Callable[[Tx], Any]) -> None:
        """Hand ``work`` to the store without waiting; :meth:`flush` waits for it."""
        self._buffer.append(work)
        if self._inflight is None and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._delay_s, self._due)

    def _due(self) -> None:
        self._timer = None
        if self._inflight is None and self._buffer and self._failed is None:
            self._submit()

    def _submit(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        works, self._buffer = self._buffer, []

        def unit(tx: Tx) -> None:
            for work in works:
                work(tx)

        self._inflight = asyncio.ensure_future(self._store.run(unit))
        self._inflight.add_done_callback(self._landed)

    def _landed(self, future: asyncio.Future[Any]) -> None:
        if self._inflight is future:
            self._inflight = None
            if future.cancelled():
                self._failed = self._failed or asyncio.CancelledError()
            elif (error := future.exception()) is not None:
                self._failed = self._failed or error
            elif self._buffer:
                self._submit()

    async def take(self) -> list[Callable[[Tx], Any]]:
        """Wait for the unit in flight, then hand over the buffered writes (to be committed with
        the invocation's outcome, in the same transaction)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while (inflight := self._inflight) is not None:
            await self._wait(inflight)
        self._raise_failure()
        works, self._buffer = self._buffer, []
        return works

    async def _wait(self, inflight: asyncio.Future[Any]) -> None:
        # Awaiting a finished future does not yield to the loop, so its done callback may not
        # have run yet: clear it here, or the caller's loop would spin.
        try:
            await inflight
        except BaseException as exc:
            self._failed = self._failed or exc
            raise
        finally:
            if self._inflight is inflight:
                self._inflight = None

    def _raise_failure(self) -> None:
        if self._failed is not None:
            raise self._failed

    async def send_events(
        self, key: str, step_id: str, events: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        await self.flush()
        now = self._clock.now_ms()
        incoming = validate_events(list(events), now=now, source="step")
        run_id, router = self._run_id, self._router

        def send(tx: Tx) -> list[str]:
            ids = router.ingest(tx, incoming, now)
            if not tx.put_memo(run_id, key, step_id, "run", {"data": {"ids": ids}}, now):
                # Sent by an earlier, overlapping invocation: keep its ids, roll ours back.
                raise _AlreadySent()
            return ids

        try:
            ids = await self._store.run(send)
        except _AlreadySent:
            memo = await self._store.read(lambda tx: tx.get_memo(run_id))
            return list(next(m.value["data"]["ids"] for m in memo if m.step_key == key))
        return ids

    async def flush(self) -> None:
        """Wait until every checkpoint handed over so far is durable."""
        self._raise_failure()
        while self._inflight is not None or self._buffer:
            if self._inflight is None:
                self._submit()
            assert self._inflight is not None
            await self._wait(self._inflight)

    def full(self) -> bool:
        """Never: an in-process invocation runs until the handler ends or suspends."""
        return False


class _StepWrites:
    """The memo writes of steps completed in a row, as one unit's work (one statement)."""

    __slots__ = ("memos",)

    def __init__(self, memos: list[MemoRecord]) -> None:
        self.memos = memos

    def __call__(self, tx: Tx) -> None:
        written = tx.put_memos(self.memos)
        lost = [m for m, won in zip(self.memos, written, strict=True) if not won]
        if not lost:
            return
        keys = [m.step_key for m in lost]
        recorded = {m.step_key: m.value for m in tx.get_memo(lost[0].run_id, keys)}
        for memo in lost:
            if recorded.get(memo.step_key) != memo.value:
                raise StepRecordedElsewhere(memo.run_id, memo.step_id)


class RunStarted:
    """Marking a queued run Running, as a checkpointer's first write. When it is still buffered
    as the invocation ends the run, the engine folds it into the run's end (one write)."""

    __slots__ = ("at", "attempt", "run_id")

    def __init__(self, run_id: str, attempt: int, at: int) -> None:
        self.run_id, self.attempt, self.at = run_id, attempt, at

    def __call__(self, tx: Tx) -> None:
        tx.mark_run_started(self.run_id, self.attempt, self.at)


def take_start(works: list[Callable[[Tx], Any]]) -> RunStarted | None:
    """Remove and return the start mark from writes taken from a checkpointer, if still there."""
    for i, work in enumerate(works):
        if isinstance(work, RunStarted):
            del works[i]
            return work
    return None


class _AlreadySent(Exception):
    pass


class StepRecordedElsewhere(Exception):
    """Another invocation of the run recorded a different result for this step first."""

    def __init__(self, run_id: str, step_id: str) -> None:
        super().__init__(
            f"run {run_id}: step {step_id!r} was recorded by an overlapping invocation first; "
            "this invocation's outcome is dropped and the run replayed from the memo"
        )
