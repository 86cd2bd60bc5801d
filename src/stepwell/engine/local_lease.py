"""Direct dispatch: work a unit enqueues for *now* is leased to this node in the same commit.

Without it, a new run would be committed, found again by the dispatcher's next claim (another
commit), then started. With it, the event's own transaction leases the run's queue item to this
node, and the engine starts it as soon as the commit returns. Another node could not have taken
it anyway: it was leased before anyone could see it.

The same wrapper tells whether the unit may have made work the dispatch loop must look for
(:attr:`LeasingTx.made_work`): an item it queued without leasing it, a lease it let go, or any
call not known to leave the queue's due work as it was. Only then is the loop woken, so a unit
whose work was all dispatched directly costs no claim after it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, cast

from stepwell.store.base import Tx
from stepwell.store.records import EventRecord, QueueItem, RunRecord

DIRECT_KINDS = frozenset({"start", "continue"})

QUIET = frozenset(
    {
        # reads
        *("get_app", "list_apps", "apps_version", "paused_functions", "list_functions"),
        *("get_event", "get_events", "list_events", "get_run", "get_runs", "list_runs"),
        *("runs_for_event", "count_runs", "get_memo", "next_available_at", "queue_depth"),
        *("claim_candidates", "blocked_keys", "get_bucket", "list_attempt_errors"),
        *("get_debounce", "get_batch", "skips_for_event", "singleton_runs", "keyed_wait_paths"),
        *("find_keyed_waits", "find_unkeyed_waits", "find_keyed_waits_among", "get_wait"),
        *("waited_event_names", "find_child_runs", "last_cron_tick", "count_in_flight"),
        *("list_run_queue_items", "list_run_waits"),
        # writes that never make an item due (ack is watched on its own)
        *("claim_dedupe_key", "claim_dedupe_keys", "mark_run_started", "set_run_attempt"),
        *("finish_run", "end_run", "put_memos", "insert_attempt_error", "insert_skip"),
        *("insert_wait", "delete_wait", "delete_run_waits", "put_bucket", "lock_keys"),
        *("delete_queue_item", "delete_queue_items", "renew_leases"),
    }
)
"""Tx methods that cannot make an item due sooner than the dispatch loop already expects; any
other call through :class:`LeasingTx` counts as work made."""


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
        self.made_work = False
        """Whether the dispatch loop must look for due work once the unit commits."""
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

    def created_runs(self) -> dict[str, list[EventRecord]]:
        """The events of each run this unit created without a memo, when the unit stored those
        events too: what invoking the run would otherwise read back."""
        created = {}
        for run_id, run in self._runs.items():
            events = [self._events[e] for e in run.event_ids if e in self._events]
            if len(events) == len(run.event_ids):
                created[run_id] = events
        return created

    def fresh_runs(self) -> dict[str, list[EventRecord]]:
        """:meth:`created_runs` that this unit did not lease: what a later claim of the run's
        start item would otherwise read back."""
        leased = {item.run_id for item in self.leased}
        return {k: v for k, v in self.created_runs().items() if k not in leased}

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
        self.made_work = True
        return self._tx.enqueue(item)

    def ack(self, item_id: str, owner: str, generation: int) -> bool:
        acked = self._tx.ack(item_id, owner, generation)
        if not acked:
            self.made_work = True  # the item stays, its lease dropped: claimable again
        return acked

    def __getattr__(self, name: str) -> Any:
        if name not in QUIET:
            self.made_work = True
        return getattr(self._tx, name)

    def as_tx(self) -> Tx:
        """This object typed as the :class:`Tx` it stands in for."""
        return cast(Tx, self)
