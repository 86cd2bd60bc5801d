"""The seam between a driver and the handler code it invokes.

A :class:`Handler` is anything that can be called with a :class:`CallRequest`; the SDK's functions
are handlers. The in-process driver passes a :class:`Checkpointer` so that consecutive steps run in
one invocation. A handler served over HTTP gets one that holds the finished steps for the answer
(when the engine allows steps to run inline), or none, and then each new step ends its SDK call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from stepwell.protocol.ops import CallRequest, CallResult, StepFailed, StepRun


class Checkpointer(Protocol):
    """Where an invocation records step outcomes as it goes."""

    async def step_completed(self, op: StepRun | StepFailed) -> None:
        """Record a finished step. May return before the write is durable; the driver makes it
        durable before anything the outside world can observe (the run's end, a sleep, a wait,
        sent events, an invoke)."""
        ...

    async def send_events(
        self, key: str, step_id: str, events: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        """Durably accept ``events`` and memoize their ids for the step, atomically."""
        ...

    async def flush(self) -> None:
        """Return once every step outcome handed over so far is durable."""
        ...

    def full(self) -> bool:
        """True once the invocation should stop after the step just completed and hand back
        what it has (a served call's budget for steps run inline); the engine calls again."""
        ...


class Handler(Protocol):
    """A function the engine can invoke."""

    async def __call__(
        self, request: CallRequest, checkpointer: Checkpointer | None = None
    ) -> CallResult:
        """Replay the handler with the request's memo and run until it ends or must stop."""
        ...
