"""The storage seam: one :class:`Store` protocol, one conformance suite, several backends.

A store runs *units of work*: plain functions that take a :class:`Tx` and call its verbs. Each
unit passed to :meth:`Store.run` is atomic (all its writes land or none do) and durable once the
awaitable returns. Backends share commits between units submitted at the same time (group
commit): a unit that raises is rolled back alone, through a savepoint, and its exception is
re-raised to its caller; the others commit.

Units execute on the store's own thread(s), never on the event loop, so they must not await and
should be short: read a few rows, decide, write.

Every :class:`Tx` verb documents what it writes and whether it is idempotent. Times are epoch
milliseconds. This module imports nothing of stepwell's but its records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass
from typing import Any, Protocol, TypeVar

from stepwell.store.records import (
    AppRecord,
    AttemptError,
    BatchRecord,
    ClaimCandidate,
    DebounceRecord,
    EventRecord,
    FunctionRecord,
    MemoRecord,
    QueueItem,
    RunFilter,
    RunRecord,
    RunStatus,
    WaitRecord,
)

T = TypeVar("T")


class Tx(Protocol):
    """The verbs a unit of work may call, inside one transaction."""

    # -- apps and functions ---------------------------------------------------------------------

    def upsert_app(self, app: AppRecord) -> None:
        """Insert or replace the app row. Idempotent."""
        ...

    def get_app(self, app_id: str) -> AppRecord | None:
        """The app, or None."""
        ...

    def list_apps(self) -> list[AppRecord]:
        """Every app, by id."""
        ...

    def apps_version(self) -> tuple[int, int, int]:
        """Changes whenever an app is synced or a function paused or resumed:
        ``(latest synced_at, number of apps, latest pause change)``."""
        ...

    def set_paused(self, function_id: str, paused: bool, now: int) -> bool:
        """Pause or resume a function; returns whether that changed anything."""
        ...

    def paused_functions(self) -> list[str]:
        """The ids of the paused functions."""
        ...

    def upsert_function(
        self, function_id: str, app_id: str, config: dict[str, Any], checksum: str, now: int
    ) -> FunctionRecord:
        """Store a function's config; bump ``version`` only when ``checksum`` changed.

        Idempotent: the same checksum returns the stored record unchanged.
        """
        ...

    def list_functions(self, app_id: str | None = None) -> list[FunctionRecord]:
        """Every function (of one app if given), by id."""
        ...

    def delete_functions_except(self, app_id: str, keep: Sequence[str]) -> int:
        """Remove the app's functions whose id is not in ``keep``; returns how many went."""
        ...

    # -- events ---------------------------------------------------------------------------------

    def claim_dedupe_key(self, dedupe_key: str, event_id: str, now: int, ttl_ms: int) -> str | None:
        """Reserve a user-given event id for ``ttl_ms``.

        Returns None when the key was free (or expired) and is now held by ``event_id``; else
        returns the event id already holding it, and writes nothing.
        """
        ...

    def insert_event(self, event: EventRecord) -> None:
        """Insert an event. Raises on a duplicate ``event_id``."""
        ...

    def get_event(self, event_id: str) -> EventRecord | None:
        """The event, or None."""
        ...

    def get_events(self, event_ids: Sequence[str]) -> list[EventRecord]:
        """The events in the order of ``event_ids`` (missing ones are left out)."""
        ...

    def list_events(
        self, name: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> list[EventRecord]:
        """Events newest first; ``cursor`` is an ``event_id`` to continue after."""
        ...

    # -- runs -----------------------------------------------------------------------------------

    def insert_run(self, run: RunRecord) -> None:
        """Insert a run. Raises on a duplicate ``run_id``."""
        ...

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or None."""
        ...

    def get_runs(self, run_ids: Sequence[str]) -> list[RunRecord]:
        """The runs that exist among ``run_ids``, in no particular order."""
        ...

    def mark_run_started(self, run_id: str, attempt: int, now: int) -> None:
        """Set ``status`` Running (from Queued), ``attempt``, and ``started_at`` if unset.

        Does nothing to a run in a final status.
        """
        ...

    def set_run_attempt(self, run_id: str, attempt: int) -> None:
        """Record the run's current attempt counter."""
        ...

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        now: int,
        output: Any = None,
        error: dict[str, Any] | None = None,
        cancel_reason: str | None = None,
        started_at: int | None = None,
    ) -> bool:
        """End a run exactly once.

        Writes only if the run is not already in a final status; returns whether it wrote. Every
        "run ended" side effect (system events, waking an invoker) must hang off a True here.
        ``started_at`` also sets the run's start if it has none (a run that ends in the same
        unit as its first invocation starts and ends in one write).
        """
        ...

    def list_runs(self, flt: RunFilter) -> list[RunRecord]:
        """Runs matching ``flt``, newest first; ``flt.cursor`` is a ``run_id`` to continue after."""
        ...

    def runs_for_event(self, event_id: str) -> list[RunRecord]:
        """Runs whose trigger events include ``event_id``, oldest first."""
        ...

    def count_runs(self, status: str | None = None) -> int:
        """How many runs (with that status)."""
        ...

    # -- memo -----------------------------------------------------------------------------------

    def put_memo(
        self,
        run_id: str,
        step_key: str,
        step_id: str,
        kind: str,
        value: Any,
        now: int,
        started_at: int | None = None,
        attempts: int = 1,
        input: Any = None,
    ) -> bool:
        """Record a step's outcome (and ``input``, the arguments its body ran with). First write
        wins: returns False, writing nothing, if the run already has a memo for ``step_key`` —
        unless that row is of kind ``input`` (no outcome yet), which the write replaces.
        Assigns the next ``seq`` (completion order)."""
        ...

    def get_memo(self, run_id: str, keys: Sequence[str] | None = None) -> list[MemoRecord]:
        """The run's memo in completion order; only the steps of ``keys`` when given."""
        ...

    # -- queue ----------------------------------------------------------------------------------

    def enqueue(self, item: QueueItem) -> bool:
        """Add a queue item; returns True if it is new.

        On an existing ``item_id``: moves ``available_at`` to the earlier of the two, bumps
        ``generation`` (so a lease holder's :meth:`ack` will not delete it) and returns False.
        """
        ...

    def claim(self, now: int, owner: str, lease_ms: int, limit: int) -> list[QueueItem]:
        """Lease up to ``limit`` due items (``available_at <= now`` and unleased or lease expired),
        lowest ``priority`` then earliest ``available_at`` first. Returns them with the lease set."""
        ...

    def renew_leases(self, owner: str, item_ids: Sequence[str], until: int) -> int:
        """Extend leases still held by ``owner``; returns how many were extended."""
        ...

    def ack(self, item_id: str, owner: str, generation: int) -> bool:
        """Finish a leased item: delete it if ``owner`` holds it at ``generation``.

        If it was re-enqueued meanwhile (generation moved) the lease is dropped instead so the
        item runs again; returns whether it was deleted.
        """
        ...

    def release(self, item_id: str, owner: str, available_at: int) -> bool:
        """Give a leased item back, due at ``available_at`` (used for retries and shutdown)."""
        ...

    def release_all(self, owner: str | None = None) -> int:
        """Drop every lease (of ``owner``, or everyone's when None); returns how many."""
        ...

    def delete_queue_items(self, run_id: str) -> int:
        """Remove every queue item of a run (it ended); returns how many."""
        ...

    def delete_queue_item(self, item_id: str) -> bool:
        """Remove one queue item whatever its lease; returns whether it existed."""
        ...

    def next_available_at(self) -> int | None:
        """The earliest ``available_at`` among unleased items, or None when the queue is empty."""
        ...

    def queue_depth(self) -> int:
        """How many items are queued (leased or not)."""
        ...

    # -- flow control ---------------------------------------------------------------------------

    def claim_candidates(self, now: int, limit: int) -> list[ClaimCandidate]:
        """Up to ``limit`` claimable items in :meth:`claim` order, not leased yet. Where nodes
        share the store, the rows stay locked against other claims until the unit ends."""
        ...

    def lock_keys(self, keys: Sequence[str]) -> None:
        """Serialise units that use the same flow-control keys, until the unit ends (a no-op
        where units are serial anyway)."""
        ...

    def lease(self, item_id: str, owner: str, until: int, keys: Sequence[str] = ()) -> None:
        """Lease an item to ``owner`` holding up to two concurrency ``keys``; marks it admitted
        and no longer blocked."""
        ...

    def count_in_flight(self, key: str, now: int) -> int:
        """How many items holding concurrency ``key`` are leased (lease not expired)."""
        ...

    def block(self, item_id: str, key: str) -> None:
        """Park an item until :meth:`unblock` frees ``key``; it keeps its place in line."""
        ...

    def unblock(self, key: str, count: int) -> int:
        """Make the ``count`` longest-blocked items on ``key`` claimable again; returns how many."""
        ...

    def blocked_keys(self, limit: int = 100) -> list[str]:
        """Keys that have blocked items (up to ``limit``)."""
        ...

    def defer_start(self, item_id: str, available_at: int) -> None:
        """Move a start item to ``available_at``, admitted (its throttle slot is reserved)."""
        ...

    def get_bucket(self, bucket_key: str) -> int | None:
        """The GCRA theoretical arrival time of a throttle or rate limit key, or None."""
        ...

    def put_bucket(self, bucket_key: str, tat: int, expires_at: int) -> None:
        """Store a GCRA theoretical arrival time (meaningless after ``expires_at``)."""
        ...

    def delete_expired_buckets(self, now: int, limit: int = 1000) -> int:
        """Forget up to ``limit`` GCRA buckets that no longer constrain anything; returns how
        many went."""
        ...

    def insert_attempt_error(self, record: AttemptError) -> None:
        """Record that an attempt failed and will be retried. Idempotent per attempt."""
        ...

    def list_attempt_errors(self, run_id: str) -> list[AttemptError]:
        """The run's failed attempts, oldest first."""
        ...

    def get_debounce(self, debounce_key: str) -> DebounceRecord | None:
        """The pending debounced start for a key, or None."""
        ...

    def put_debounce(self, record: DebounceRecord) -> None:
        """Insert a pending debounce, or move an existing one to the new event and due time
        (its ``run_id`` and ``first_at`` stay)."""
        ...

    def delete_debounce(self, debounce_key: str, run_id: str) -> bool:
        """Remove the pending debounce if it is still the one of ``run_id``."""
        ...

    def get_batch(self, batch_key: str) -> BatchRecord | None:
        """The open batch for a key, or None."""
        ...

    def put_batch(self, record: BatchRecord) -> None:
        """Open a batch, or replace the event list of the open one."""
        ...

    def delete_batch(self, batch_key: str, run_id: str) -> bool:
        """Close the open batch if it is still the one of ``run_id``."""
        ...

    def insert_skip(self, event_id: str, function_id: str, reason: str, now: int) -> None:
        """Record that an event started no run of a function, and why. Idempotent."""
        ...

    def skips_for_event(self, event_id: str) -> list[tuple[str, str]]:
        """``(function_id, reason)`` for every function an event started no run of."""
        ...

    def singleton_runs(self, singleton_key: str) -> list[RunRecord]:
        """Unfinished runs holding a singleton key."""
        ...

    # -- waits ----------------------------------------------------------------------------------

    def insert_wait(self, wait: WaitRecord) -> bool:
        """Add a wait; a second wait for the same ``(run_id, step_key)`` is ignored (False)."""
        ...

    def keyed_wait_paths(self, event_name: str) -> list[str]:
        """The distinct ``match_path`` values of keyed waits on ``event_name`` (a short list)."""
        ...

    def find_keyed_waits(
        self, event_name: str, match_path: str, match_value: str
    ) -> list[WaitRecord]:
        """Keyed waits on ``event_name`` whose key equals ``match_value``, oldest first."""
        ...

    def find_unkeyed_waits(self, event_name: str) -> list[WaitRecord]:
        """Waits on ``event_name`` without a key (free CEL or no condition), oldest first."""
        ...

    def get_wait(self, run_id: str, step_key: str) -> WaitRecord | None:
        """The run's pending wait for ``step_key``, or None."""
        ...

    def delete_wait(self, wait_id: str) -> bool:
        """Remove a wait; returns whether it existed (the caller that gets True owns resuming)."""
        ...

    def delete_run_waits(self, run_id: str) -> int:
        """Remove every wait of a run; returns how many."""
        ...

    # -- events and waits by the batch (ingest) ---------------------------------------------------

    def insert_events(self, events: Sequence[EventRecord]) -> None:
        """Insert several events, as :meth:`insert_event` does each, in a few statements.

        Raises on a duplicate ``event_id``.
        """
        ...

    def claim_dedupe_keys(
        self, claims: Sequence[tuple[str, str]], now: int, ttl_ms: int
    ) -> dict[str, str]:
        """:meth:`claim_dedupe_key` for several ``(dedupe_key, event_id)`` pairs at once.

        Returns each key's holder now: the claiming event id where its claim won, else the event
        id that held the key already, for which nothing is written. When a key appears twice,
        its first claim is the one that may win.
        """
        ...

    def waited_event_names(self, event_names: Sequence[str]) -> set[str]:
        """Those of ``event_names`` that some wait (of any kind) is on: one index seek each."""
        ...

    def find_keyed_waits_among(
        self, event_name: str, match_path: str, match_values: Sequence[str]
    ) -> list[WaitRecord]:
        """Keyed waits on ``event_name`` whose key is one of ``match_values``, oldest first."""
        ...

    # -- memo by the batch (checkpoints) ---------------------------------------------------------

    def put_memos(self, memos: Sequence[MemoRecord]) -> list[bool]:
        """:meth:`put_memo` for each record in order, in few statements: one per 32 records
        when no ``(run_id, step_key)`` repeats among them. Returns what each call would have.

        Each record's ``seq`` is ignored: the store assigns the next ones, in the order given.
        """
        ...

    # -- run endings, read back --------------------------------------------------------------------

    def end_run(
        self,
        run_id: str,
        status: RunStatus,
        now: int,
        output: Any = None,
        error: dict[str, Any] | None = None,
        cancel_reason: str | None = None,
        started_at: int | None = None,
    ) -> RunRecord | None:
        """:meth:`finish_run`, returning the run as it ended (in the same statement), or None if
        this call did not end it."""
        ...

    # -- runs started by invoke -----------------------------------------------------------------

    def find_child_runs(self, parent_run_id: str, parent_step_key: str) -> list[RunRecord]:
        """Runs started by ``step.invoke`` from that parent step."""
        ...

    # -- cron -----------------------------------------------------------------------------------

    def claim_cron_tick(self, function_id: str, tick_at: int) -> bool:
        """Record that the tick fired; True only for the first caller across all nodes."""
        ...

    def last_cron_tick(self, function_id: str) -> int | None:
        """The latest tick recorded for the function, or None."""
        ...

    # -- dashboard ------------------------------------------------------------------------------

    def list_runs_for_event_name(self, event_name: str, flt: RunFilter) -> list[RunRecord]:
        """Runs matching ``flt`` whose trigger events are named ``event_name``, newest first,
        with the cursor of :meth:`list_runs` (``flt.event_id`` is ignored). Indexed whether the
        name has few events or millions."""
        ...

    def list_run_queue_items(self, run_id: str) -> list[QueueItem]:
        """The run's queue items (its invocation and its timers), earliest due first."""
        ...

    def list_run_waits(self, run_id: str) -> list[WaitRecord]:
        """The run's pending waits (``wait_for_event`` steps and ``cancel_on``), by ``wait_id``."""
        ...

    def count_runs_per_minute(self, since: int, until: int) -> list[tuple[str, int, str, int]]:
        """Runs created in ``[since, until)``, grouped per function, per minute and per kind.

        Rows are ``(function_id, minute, kind, count)``: ``minute`` is epoch ms rounded down to
        the minute; ``kind`` is ``started`` (counted at ``created_at``) or the final status
        (counted at ``ended_at``, for runs that ended at or after ``since``). Ordered by
        function, minute, kind.
        """
        ...

    def count_runs_by_status(self) -> dict[str, int]:
        """How many runs have each status (statuses without runs are left out); one pass."""
        ...

    # -- retention ------------------------------------------------------------------------------

    def prune_ended_runs(self, ended_before: int, limit: int, dry_run: bool = False) -> PruneCount:
        """Delete up to ``limit`` runs that ended (Completed, Failed, Cancelled) before
        ``ended_before``, oldest first, with their memo and ``run_events`` rows; then up to
        ``limit`` events received before ``ended_before`` that no remaining run references.

        Returns how many rows of each went. Call it again until it returns all zeros: each call
        is one short transaction, so pruning a large history never holds locks for long. Safe to
        repeat and to run beside live nodes (an ended run is never written again).

        With ``dry_run``, deletes nothing and returns what pruning everything would delete
        (no ``limit``).
        """
        ...

    # -- bulk operations ------------------------------------------------------------------------

    def insert_bulk_operation(self, record: BulkRecord) -> None:
        """Insert a bulk operation. Raises on a duplicate ``job_id``."""
        ...

    def get_bulk_operation(self, job_id: str) -> BulkRecord | None:
        """The bulk operation, or None."""
        ...

    def resumable_bulk_operations(self, now: int, limit: int = 10) -> list[str]:
        """Ids of up to ``limit`` unfinished bulk operations (``selecting`` or ``running``) whose
        lease is free or expired at ``now``, oldest first."""
        ...

    def lease_bulk_operation(
        self, job_id: str, owner: str, token: str, now: int, until: int
    ) -> BulkRecord | None:
        """Take the lease of an unfinished bulk operation that is free or expired at ``now``:
        hold it as ``owner`` with a new ``token`` until ``until``. Atomic: of nodes racing for
        it, one gets the record back; the others (and any call on a finished or leased
        operation) get None and write nothing."""
        ...

    def save_bulk_operation(self, record: BulkRecord, token: str) -> bool:
        """Write the record's progress, state and lease, only while ``token`` still holds the
        lease; returns whether it wrote. A unit that acted on runs must roll back on False."""
        ...

    def release_bulk_operation(self, job_id: str, token: str) -> bool:
        """Give the lease up, if ``token`` holds it, so any node takes the operation over at
        once; returns whether it did."""
        ...


class Store(Protocol):
    """A durable home for everything stepwell knows."""

    async def open(self) -> None:
        """Connect and apply pending migrations. Idempotent."""
        ...

    async def close(self) -> None:
        """Finish pending work and disconnect. Idempotent."""
        ...

    async def run(self, work: Callable[[Tx], T]) -> T:
        """Execute ``work`` atomically on the writer; durable when this returns."""
        ...

    async def read(self, work: Callable[[Tx], T]) -> T:
        """Execute read-only ``work`` on a reader (sees every commit that returned before)."""
        ...


@dataclass(frozen=True, slots=True)
class PruneCount:
    """How many rows :meth:`Tx.prune_ended_runs` deleted (or would delete) per table."""

    runs: int = 0
    memo: int = 0
    run_events: int = 0
    events: int = 0

    def __add__(self, other: PruneCount) -> PruneCount:
        return PruneCount(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


# -- bulk operations -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BulkRecord:
    """A bulk cancel or replay as stored (table ``bulk_operations``).

    Attributes:
        job_id: a ULID.
        kind: ``cancel`` or ``replay``.
        selection: the runs it acts on, the fields of the engine's ``RunSelection``.
        state: ``selecting``, ``running``, ``done`` or ``failed``.
        total: how many runs matched; None while selecting.
        processed: how many of them were handled so far.
        changed: how many were cancelled (or rerun).
        skipped: how many needed nothing or could not be handled.
        errors: the first few errors, in plain words.
        after_run_id: the last run handled (runs are handled newest first); None before any.
        lease_owner: the node working on it, while leased.
        lease_token: new at every lease; writes check it, so a node that lost the lease
            cannot write.
        lease_expires_at: when another node may take it over.
        created_at: when it was asked for; runs created since are not selected.
        updated_at: its last write.
        ended_at: when it finished.
    """

    job_id: str
    kind: str
    selection: dict[str, Any]
    state: str
    total: int | None
    processed: int
    changed: int
    skipped: int
    errors: tuple[str, ...]
    after_run_id: str | None
    lease_owner: str | None
    lease_token: str | None
    lease_expires_at: int | None
    created_at: int
    updated_at: int
    ended_at: int | None = None
