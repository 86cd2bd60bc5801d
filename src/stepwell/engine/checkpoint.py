"""Checkpointing for the in-process driver: each finished step is one write, shared commits.

A step's memo write is handed to the store without waiting for it (write-behind): the store's
single writer applies writes in submission order, and :meth:`RunCheckpointer.flush` is awaited
before anything observable (the run's end, a sleep or wait, an invoke, sent events) is committed.
A crash can then only lose the checkpoints of steps that will simply run again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stepwell.clock import Clock
from stepwell.engine.ingest import Router, validate_events
from stepwell.protocol.ops import StepFailed, StepRun
from stepwell.store.base import Store, Tx


class RunCheckpointer:
    """The :class:`~stepwell.protocol.invocation.Checkpointer` of one invocation of one run."""

    def __init__(
        self, store: Store, router: Router, clock: Clock, run_id: str, on_commit: Callable[[], None]
    ) -> None:
        self._store = store
        self._router = router
        self._clock = clock
        self._run_id = run_id
        self._on_commit = on_commit
        self._pending: list[asyncio.Future[Any]] = []

    async def step_completed(self, op: StepRun | StepFailed) -> None:
        now = self._clock.now_ms()
        value = {"data": op.data} if isinstance(op, StepRun) else {"error": op.error}
        started = op.started_at if isinstance(op, StepRun) else None
        run_id = self._run_id

        def write(tx: Tx) -> bool:
            return tx.put_memo(run_id, op.key, op.step_id, "run", value, now, started)

        self.defer(write)

    def defer(self, work: Callable[[Tx], Any]) -> None:
        """Hand ``work`` to the store without waiting; :meth:`flush` waits for it."""
        self._pending.append(asyncio.ensure_future(self._store.run(work)))

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
        self._on_commit()
        return ids

    async def flush(self) -> None:
        """Wait until every checkpoint handed over so far is durable."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)


class _AlreadySent(Exception):
    pass
