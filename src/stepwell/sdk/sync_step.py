"""The synchronous facade for ``def`` handlers: the same steps, no logic of their own.

A ``def`` handler runs in a worker thread; each step call is handed to the event loop and the
thread waits for it. When the run suspends, the waiting step is cancelled on the loop, and the
thread unwinds with an interrupt that ``except Exception`` cannot catch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from stepwell.sdk.context import RunView
from stepwell.sdk.events import Event, EventModel
from stepwell.sdk.interrupts import Interrupt
from stepwell.sdk.step import EventsLike, Step

if TYPE_CHECKING:
    from stepwell.sdk.function import Function

T = TypeVar("T")


class Suspended(Interrupt):
    """The run suspended while this thread waited for a step."""


class SyncStep:
    """``ctx.step`` of a ``def`` handler: each method blocks until the step is done."""

    def __init__(self, step: Step, loop: asyncio.AbstractEventLoop) -> None:
        self._step = step
        self._loop = loop

    def _wait(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except (concurrent.futures.CancelledError, asyncio.CancelledError):
            raise Suspended() from None

    def run(self, step_id: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """See :meth:`Step.run`."""
        return self._wait(self._step.run(step_id, fn, *args, **kwargs))

    def sleep(self, step_id: str, duration: timedelta | str | int | float) -> None:
        """See :meth:`Step.sleep`."""
        self._wait(self._step.sleep(step_id, duration))

    def sleep_until(self, step_id: str, when: datetime | str | int) -> None:
        """See :meth:`Step.sleep_until`."""
        self._wait(self._step.sleep_until(step_id, when))

    def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        timeout: timedelta | str | int | float,
        match: str | None = None,
        if_exp: str | None = None,
    ) -> Event | None:
        """See :meth:`Step.wait_for_event`."""
        return self._wait(
            self._step.wait_for_event(
                step_id, event=event, timeout=timeout, match=match, if_exp=if_exp
            )
        )

    def send_event(self, step_id: str, events: EventsLike | Sequence[EventsLike]) -> list[str]:
        """See :meth:`Step.send_event`."""
        return self._wait(self._step.send_event(step_id, events))

    def invoke(
        self,
        step_id: str,
        function: Function | str,
        data: Mapping[str, Any] | EventModel | None = None,
        *,
        timeout: timedelta | str | int | float = "1d",
        app_id: str | None = None,
    ) -> Any:
        """See :meth:`Step.invoke`."""
        return self._wait(
            self._step.invoke(step_id, function, data, timeout=timeout, app_id=app_id)
        )


class SyncContext(RunView):
    """The context of a ``def`` handler: as :class:`~stepwell.Context`, with blocking steps."""

    def __init__(self, *, step: SyncStep, **view: Any) -> None:
        super().__init__(**view)
        self.step = step
