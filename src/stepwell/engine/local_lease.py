"""Direct dispatch: work a unit enqueues for *now* is leased to this node in the same commit.

Without it, a new run would be committed, found again by the dispatcher's next claim (another
commit), then started. With it, the event's own transaction leases the run's queue item to this
node, and the engine starts it as soon as the commit returns. Another node could not have taken
it anyway: it was leased before anyone could see it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, cast

from stepwell.store.base import Tx
from stepwell.store.records import EventRecord, QueueItem, RunRecord

DIRECT_KINDS = frozenset({"start", "continue"})


class LeasingTx:
    """A :class:`Tx` whose ``enqueue`` leases new, due invocation items to ``owner``.

    Items of functions with concurrency or throttle limits (``limited``) are left to a claim,
    which counts their slots.
    """

    def __init__(
        self,
        tx: Tx,
        *,
        owner: str,
        now: int,
        lease_ms: int,
        capacity: int,
        limited: Callable[[str], bool] = lambda _: False,
    ) -> None:
        self._tx = tx
        self._limited = limited
        self._owner = owner
        self._now = now
        self._lease_ms = lease_ms
        self._capacity = capacity
        self.leased: list[QueueItem] = []
        self._runs: dict[str, RunRecord] = {}
        self._events: dict[str, EventRecord] = {}

    def insert_event(self, event: EventRecord) -> None:
        self._tx.insert_event(event)
        self._events[event.event_id] = event

    def insert_events(self, events: Sequence[EventRecord]) -> None:
        self._tx.insert_events(events)
        self._events.update((e.event_id, e) for e in events)

    def insert_run(self, run: RunRecord) -> None:
        self._tx.insert_run(run)
        self._runs[run.run_id] = run

    def put_memo(self, run_id: str, *args: Any, **kwargs: Any) -> bool:
        self._runs.pop(run_id, None)  # a seeded memo: not a fresh run any more
        return bool(self._tx.put_memo(run_id, *args, **kwargs))

    def fresh_runs(self) -> dict[str, list[EventRecord]]:
        """The events of each run this unit created without leasing it and without a memo,
        when the unit stored those events too: what a later claim of the run's start item
        would otherwise read back."""
        leased = {item.run_id for item in self.leased}
        fresh = {}
        for run_id, run in self._runs.items():
            events = [self._events[e] for e in run.event_ids if e in self._events]
            if run_id not in leased and len(events) == len(run.event_ids):
                fresh[run_id] = events
        return fresh

    def enqueue(self, item: QueueItem) -> bool:
        if (
            item.kind in DIRECT_KINDS
            and item.available_at <= self._now
            and len(self.leased) < self._capacity
            and not self._limited(item.function_id)
        ):
            leased = replace(
                item, lease_owner=self._owner, lease_expires_at=self._now + self._lease_ms
            )
            if self._tx.enqueue(leased):
                self.leased.append(leased)
                return True
            return False
        return self._tx.enqueue(item)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def as_tx(self) -> Tx:
        """This object typed as the :class:`Tx` it stands in for."""
        return cast(Tx, self)
