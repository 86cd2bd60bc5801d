"""The step API a handler calls: ``ctx.step.run``, ``sleep``, ``wait_for_event``, ..."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from stepwell.errors import ConfigError
from stepwell.protocol.durations import parse_duration, parse_time
from stepwell.protocol.ops import InvokeFunction, Sleep, WaitForEvent
from stepwell.sdk.events import Event, EventModel, coerce_event, validate_event_name
from stepwell.sdk.execution import Execution, call_maybe_sync, unwrap_memo
from stepwell.sdk.triggers import condition_expression

if TYPE_CHECKING:
    from stepwell.sdk.function import Function

T = TypeVar("T")

DEFAULT_INVOKE_TIMEOUT = "1d"
MAX_SLEEP_MS = 366 * 24 * 3600 * 1000

EventsLike = Event | EventModel | Mapping[str, Any]


class Step:
    """Durable building blocks. Every method takes a step id, unique within the run (a repeated
    id gets a counter suffix, so ids inside loops are fine)."""

    def __init__(self, execution: Execution, app_id: str, sender: Any = None) -> None:
        self._ex = execution
        self._app_id = app_id
        self._sender = sender

    async def run(
        self, step_id: str, fn: Callable[..., T | Awaitable[T]], *args: Any, **kwargs: Any
    ) -> T:
        """Run ``fn(*args, **kwargs)`` once and record its JSON result.

        Retried on error (the function's ``retries``); a plain function runs in a worker thread.
        Returns the recorded result on replay; raises :class:`~stepwell.StepError` if the step
        failed for good. The positional ``args`` are the step's *input*: recorded with its
        result (when they are JSON) and shown on the dashboard, where a rerun from this step
        can edit them (the body is then called with the edited values, as JSON).
        """
        _check_id(step_id)
        result: T = await self._ex.run_step(
            step_id, "run", lambda *call_args: call_maybe_sync(fn, *call_args, **kwargs), args
        )
        return result

    async def sleep(self, step_id: str, duration: timedelta | str | int | float) -> None:
        """Pause the run for ``duration`` (``timedelta``, ``"30s"``, ``"3d"``, ``"1w"``, or seconds).

        The run holds no memory and no task while it sleeps.
        """
        _check_id(step_id)
        ms = parse_duration(duration, field=f"sleep {step_id!r}")
        if ms > MAX_SLEEP_MS:
            raise ConfigError(f"sleep {step_id!r}: {duration!r} is longer than the 366-day maximum")
        key, unique, memoized, _ = self._ex.claim(step_id, "sleep")
        if memoized:
            return
        await self._ex.before_new_step(key, unique)
        await self._ex.park(Sleep(key, unique, duration_ms=ms))

    async def sleep_until(self, step_id: str, when: datetime | str | int) -> None:
        """Pause the run until ``when`` (an aware ``datetime``, ISO-8601 text or epoch ms)."""
        _check_id(step_id)
        until = parse_time(when)
        key, unique, memoized, _ = self._ex.claim(step_id, "sleep")
        if memoized:
            return
        await self._ex.before_new_step(key, unique)
        await self._ex.park(Sleep(key, unique, until_ms=until))

    async def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        timeout: timedelta | str | int | float,
        match: str | None = None,
        if_exp: str | None = None,
    ) -> Event | None:
        """Pause until an event named ``event`` arrives, or ``timeout`` passes (then ``None``).

        Args:
            step_id: the step's id.
            event: the awaited event's name.
            timeout: how long to wait.
            match: a dotted path that must be equal in the trigger and the awaited event
                (``"data.order_id"``).
            if_exp: a CEL condition over ``event`` (the trigger) and ``async`` (the candidate).

        Only events received after the wait starts count.
        """
        _check_id(step_id)
        validate_event_name(event)
        timeout_ms = parse_duration(timeout, field=f"wait_for_event {step_id!r} timeout")
        expression = condition_expression(match, if_exp, what=f"wait_for_event {step_id!r}")
        key, unique, memoized, value = self._ex.claim(step_id, "wait")
        if memoized:
            return Event.from_wire(value) if isinstance(value, Mapping) else None
        await self._ex.before_new_step(key, unique)
        await self._ex.park(WaitForEvent(key, unique, event, timeout_ms, expression))
        return None  # pragma: no cover

    async def send_event(
        self, step_id: str, events: EventsLike | Sequence[EventsLike]
    ) -> list[str]:
        """Send one or many events durably, exactly once per run; returns their ids."""
        _check_id(step_id)
        batch = [coerce_event(e).to_wire() for e in _as_list(events)]
        ex = self._ex
        if ex.checkpointer is None:
            sender = self._sender
            if sender is None:
                raise ConfigError("send_event over HTTP needs the app's event client")

            async def send() -> dict[str, Any]:
                return {"ids": await sender.send_wire(batch)}

            result = await ex.run_step(step_id, "run", send)
            return list(result["ids"])
        key, unique, memoized, value = ex.claim(step_id, "run")
        if memoized:
            return list(unwrap_memo(unique, value)["ids"])
        await ex.before_new_step(key, unique)
        ids = await ex.checkpointer.send_events(key, unique, batch)
        ex.memo[key] = {"data": {"ids": ids}}
        return ids

    async def invoke(
        self,
        step_id: str,
        function: Function | str,
        data: Mapping[str, Any] | EventModel | None = None,
        *,
        timeout: timedelta | str | int | float = DEFAULT_INVOKE_TIMEOUT,
        app_id: str | None = None,
    ) -> Any:
        """Start another function's run and wait for its result.

        Args:
            step_id: the step's id.
            function: a function object, or its id (``"fn"`` in this app, or ``"app-fn"``).
            data: the invoked run's event data.
            timeout: how long to wait; past it :class:`~stepwell.InvokeTimeoutError` is raised.
            app_id: the app of a function given by id, when it is another app's.

        Returns the invoked run's output; raises :class:`~stepwell.StepError` if it failed.
        """
        _check_id(step_id)
        function_id = self._resolve_function(function, app_id)
        payload = data.model_dump(mode="json") if isinstance(data, EventModel) else dict(data or {})
        timeout_ms = parse_duration(timeout, field=f"invoke {step_id!r} timeout")
        key, unique, memoized, value = self._ex.claim(step_id, "invoke")
        if memoized:
            return unwrap_memo(unique, value)
        await self._ex.before_new_step(key, unique)
        await self._ex.park(InvokeFunction(key, unique, function_id, payload, timeout_ms))

    async def parallel(self, *branches: Callable[[], Awaitable[Any]]) -> tuple[Any, ...]:
        """Run branches concurrently (``asyncio.gather`` of steps works the same way)."""
        return tuple(await asyncio.gather(*(branch() for branch in branches)))

    def _resolve_function(self, function: Function | str, app_id: str | None) -> str:
        if isinstance(function, str):
            if not function:
                raise ConfigError("invoke: function id must not be empty")
            return _qualify(app_id or self._app_id, function)
        return function.full_id


def _qualify(app_id: str, function_id: str) -> str:
    return function_id if function_id.startswith(f"{app_id}-") else f"{app_id}-{function_id}"


def _as_list(events: EventsLike | Sequence[EventsLike]) -> list[EventsLike]:
    if isinstance(events, list | tuple):
        return list(events)
    return [events]  # type: ignore[list-item]


def _check_id(step_id: object) -> None:
    if not isinstance(step_id, str) or not step_id:
        raise ConfigError(f"a step id must be a non-empty string, not {step_id!r}")
