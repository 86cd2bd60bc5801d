"""Rows as the store hands them out: frozen records, JSON payloads already decoded.

Times are epoch milliseconds. JSON columns hold plain JSON values (dict, list, str, number, bool,
None) and are (de)serialised by the store, never by callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

RunStatus = Literal["Queued", "Running", "Completed", "Failed", "Cancelled"]
FINAL_STATUSES: frozenset[str] = frozenset({"Completed", "Failed", "Cancelled"})

QueueKind = Literal[
    "start",
    "continue",
    "sleep",
    "wait_timeout",
    "invoke_timeout",
    "debounce",
    "batch",
    "start_timeout",
    "finish_timeout",
]
WaitKind = Literal["step", "cancel"]


@dataclass(frozen=True, slots=True)
class AppRecord:
    """An app: a set of functions synced together."""

    app_id: str
    url: str | None
    sdk: str | None
    framework: str | None
    checksum: str
    synced_at: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FunctionRecord:
    """A function's registered config (Inngest ``FunctionConfig`` JSON), versioned on change."""

    function_id: str
    app_id: str
    version: int
    config: dict[str, Any]
    checksum: str
    updated_at: int


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An accepted event. Immutable once stored."""

    event_id: str
    name: str
    data: dict[str, Any]
    ts: int
    received_at: int
    user: dict[str, Any] = field(default_factory=dict)
    dedupe_key: str | None = None
    source: str = "api"

    def to_wire(self) -> dict[str, Any]:
        """The event as handlers and SDKs see it."""
        return {
            "id": self.event_id,
            "name": self.name,
            "data": self.data,
            "user": self.user,
            "ts": self.ts,
        }


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One execution of a function for one event (or batch, or cron tick)."""

    run_id: str
    function_id: str
    function_version: int
    app_id: str
    status: RunStatus
    event_id: str
    event_ids: tuple[str, ...]
    created_at: int
    attempt: int = 0
    started_at: int | None = None
    ended_at: int | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    parent_run_id: str | None = None
    parent_step_key: str | None = None
    cancel_reason: str | None = None
    flow_keys: dict[str, Any] | None = None
    """Concurrency and throttle keys evaluated at creation: ``{"concurrency": [...],
    "throttle": "..."}`` (flow control; None for functions without those limits)."""
    singleton_key: str | None = None
    """The singleton key while the run is not finished (cleared when it ends)."""


INPUT_KIND = "input"
"""The memo kind of a row that holds only the input a step must run with."""


@dataclass(frozen=True, slots=True)
class MemoRecord:
    """One step's recorded outcome: the run's memo is the list of these, in completion order.

    ``value`` is the memo value exactly as the protocol carries it (PROTOCOL.md §1.7):
    ``{"data": x}``, ``{"error": {...}}``, ``None`` for a finished sleep, an event object (or
    ``None``) for a wait; ``{"input": [...]}`` for a row of kind ``input``, which holds no outcome
    yet, only the arguments the step must run with (a rerun with edited input seeds it).
    ``input`` is the arguments the step's body was called with, when the SDK reported them.
    """

    run_id: str
    step_key: str
    step_id: str
    kind: str
    value: Any
    seq: int
    created_at: int
    started_at: int | None = None
    attempts: int = 1
    input: Any = None


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A durable unit of scheduled work.

    ``item_id`` is deterministic (e.g. ``continue:<run_id>``, ``sleep:<run_id>:<step_key>``) so
    that enqueueing the same work twice is a no-op; ``generation`` counts re-enqueues of the same
    id so that an item re-enqueued while leased is not lost when the lease holder acks.
    """

    item_id: str
    kind: QueueKind
    run_id: str
    function_id: str
    available_at: int
    priority: int = 0
    payload: dict[str, Any] = field(default_factory=dict)
    lease_owner: str | None = None
    lease_expires_at: int | None = None
    generation: int = 0


@dataclass(frozen=True, slots=True)
class WaitRecord:
    """A pending ``wait_for_event`` step or ``cancel_on`` condition.

    Keyed waits (``match_path`` set) are found by ``(event_name, match_path, match_value)`` with
    one index probe; unkeyed waits with a free CEL ``expression`` are evaluated per event name.
    ``match_value`` is the JSON text of the trigger-side value, compared as text.
    """

    wait_id: str
    kind: WaitKind
    run_id: str
    function_id: str
    event_name: str
    expires_at: int
    step_key: str | None = None
    match_path: str | None = None
    match_value: str | None = None
    expression: str | None = None
    trigger_event_id: str | None = None
    step_id: str | None = None


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs :meth:`Tx.list_runs` returns, newest first."""

    function_id: str | None = None
    status: str | None = None
    since: int | None = None
    until: int | None = None
    event_id: str | None = None
    cursor: str | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class DebounceRecord:
    """A pending debounced start: the run ``run_id`` will start with ``event_id`` at ``due_at``
    unless another event for the same key moves it later (never past ``first_at`` + timeout)."""

    debounce_key: str
    function_id: str
    run_id: str
    event_id: str
    first_at: int
    due_at: int


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """An open batch: its events so far; the run ``run_id`` starts with them when it is full or
    its timeout passes."""

    batch_key: str
    function_id: str
    run_id: str
    event_ids: tuple[str, ...]
    created_at: int


@dataclass(frozen=True, slots=True)
class ClaimCandidate:
    """A due queue item offered to flow control before it is leased."""

    item: QueueItem
    admitted: bool
    """Whether a start item already passed its throttle."""


@dataclass(frozen=True, slots=True)
class AttemptError:
    """An attempt that failed and was retried: in step ``step_key`` ('' for the handler's own
    code), attempt number ``attempt`` (0 is the first)."""

    run_id: str
    step_key: str
    attempt: int
    step_id: str | None
    error: dict[str, Any]
    failed_at: int
