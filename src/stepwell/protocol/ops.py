"""Ops: what one invocation of a handler asks the engine to do next.

One model shared by every driver. The in-process driver receives these objects directly; the HTTP
driver decodes them from Inngest's wire op codes (PROTOCOL.md §1.5.2). Errors are serialised dicts
``{"name", "message", "stack"?}``. Times are epoch milliseconds, delays milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class StepRun:
    """A ``step.run`` body returned ``data``: memoize ``{"data": data}``.

    ``input`` is the arguments the body was called with (a JSON list), when the SDK reports them.
    """

    key: str
    step_id: str
    data: Any
    started_at: int | None = None
    input: list[Any] | None = None


@dataclass(frozen=True, slots=True)
class StepFailed:
    """A step failed for good: memoize ``{"error": error}``; the handler sees a ``StepError``."""

    key: str
    step_id: str
    error: dict[str, Any]
    input: list[Any] | None = None


@dataclass(frozen=True, slots=True)
class StepError:
    """A step failed and may be retried: run the same step again after a backoff.

    ``retry_after_ms`` is the delay the step asked for (``RetryAfterError``), else None.
    """

    key: str
    step_id: str
    error: dict[str, Any]
    retriable: bool = True
    retry_after_ms: int | None = None


@dataclass(frozen=True, slots=True)
class StepPlanned:
    """A step was found but not run (parallel discovery over HTTP): call back targeting it."""

    key: str
    step_id: str


@dataclass(frozen=True, slots=True)
class Sleep:
    """Suspend the step until ``until_ms`` (absolute) or for ``duration_ms`` from now."""

    key: str
    step_id: str
    until_ms: int | None = None
    duration_ms: int | None = None


@dataclass(frozen=True, slots=True)
class WaitForEvent:
    """Suspend the step until an event named ``event`` matching ``expression`` arrives.

    ``expression`` is CEL over ``event`` (the run's trigger) and ``async`` (the candidate);
    None matches any event of that name. Memo: the event, or None after ``timeout_ms``.
    """

    key: str
    step_id: str
    event: str
    timeout_ms: int
    expression: str | None = None


@dataclass(frozen=True, slots=True)
class InvokeFunction:
    """Start ``function_id`` with ``data`` and suspend the step until it ends or times out."""

    key: str
    step_id: str
    function_id: str
    data: dict[str, Any]
    timeout_ms: int
    user: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SendEvent:
    """Emit ``events`` durably; memo ``{"data": {"ids": [...]}}`` (in-process only)."""

    key: str
    step_id: str
    events: Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class DiscoveryRequest:
    """Invoke the handler again, with the memo reloaded from the store.

    What an invocation ends with when its memo may be missing steps recorded elsewhere: steps the
    TS SDK checkpointed to ``/v1/checkpoint``, or a dispatch the SDK was told is stale.
    """

    key: str = ""
    step_id: str = ""


@dataclass(frozen=True, slots=True)
class Gateway:
    """``step.fetch``: the engine makes the HTTP request and memoizes
    ``{"data": {"status_code", "headers", "body"}}`` (drivers turn it into a :class:`StepRun`)."""

    key: str
    step_id: str
    url: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None


@dataclass(frozen=True, slots=True)
class RunComplete:
    """The handler returned ``output`` after steps reported in the same answer (a served call
    that ran steps back to back): only ever sent by an SDK, the engine reads it as the end."""

    output: Any
    key: str = ""
    step_id: str = ""


StepOp = (
    StepRun
    | StepFailed
    | StepError
    | StepPlanned
    | Sleep
    | WaitForEvent
    | InvokeFunction
    | DiscoveryRequest
    | Gateway
    | RunComplete
)
SUSPENDING = (Sleep, WaitForEvent, InvokeFunction)


def pending_input(value: Any) -> list[Any] | None:
    """The arguments of a memo value that holds no outcome, only the input a step must run with
    (``{"input": [...]}``, what a rerun with edited input seeds); None for any other value."""
    if isinstance(value, dict) and len(value) == 1:
        args = value.get("input")
        if isinstance(args, list):
            return args
    return None


@dataclass(frozen=True, slots=True)
class CallRequest:
    """Everything a handler invocation needs: the run's events and memo.

    Attributes:
        function_id: composite id ``<app>-<fn>``.
        run_id: the run.
        attempt: 0-based attempt of the first new step (or of the handler), reset when a step ends.
        max_attempts: retries + 1; a failure at ``attempt == max_attempts - 1`` is final.
        event: the first trigger event (wire shape ``{id, name, data, user, ts}``).
        events: every trigger event (a batch), ``[event]`` otherwise.
        memo: step key → memo value (PROTOCOL.md §1.7).
        stack: memo keys in completion order.
        memo_kinds: step key → kind (``run``, ``sleep``, ...), for non-determinism checks.
        memo_ids: step key → the step id the author wrote, when known, for error messages.
        target_step: run only this step key (parallel plans over HTTP), else None.
        disable_immediate_execution: report new steps as plans instead of running them.
        now_ms: the engine's time when the call was made.
    """

    function_id: str
    run_id: str
    attempt: int
    max_attempts: int
    event: Mapping[str, Any]
    events: Sequence[Mapping[str, Any]]
    memo: Mapping[str, Any]
    stack: Sequence[str] = ()
    memo_kinds: Mapping[str, str] = field(default_factory=dict)
    memo_ids: Mapping[str, str] = field(default_factory=dict)
    target_step: str | None = None
    disable_immediate_execution: bool = False
    now_ms: int = 0


@dataclass(frozen=True, slots=True)
class CallResult:
    """What one invocation produced.

    Either the handler ended (``done``: with ``output``, or with ``error`` when it raised) or it
    stopped at ``ops`` to be processed. Step results already handed to a checkpointer are not
    repeated in ``ops``.

    Attributes:
        done: the handler returned or raised.
        output: its JSON return value.
        error: serialised error when it raised.
        retriable: whether the error may be retried (False for ``NonRetriableError``,
            an uncaught ``StepError``, non-determinism, unserialisable output).
        retry_after_ms: delay asked for by ``RetryAfterError``.
        ops: step ops to process when not done.
    """

    done: bool
    output: Any = None
    error: dict[str, Any] | None = None
    retriable: bool = True
    retry_after_ms: int | None = None
    ops: tuple[StepOp, ...] = ()
