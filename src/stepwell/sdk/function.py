"""A function: a handler plus its config, invokable by any driver."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stepwell.errors import ConfigError
from stepwell.protocol.invocation import Checkpointer
from stepwell.protocol.ops import CallRequest, CallResult
from stepwell.sdk.context import Context, ReplayAwareLogger
from stepwell.sdk.events import Event, EventModel
from stepwell.sdk.execution import Execution, execute
from stepwell.sdk.step import Step
from stepwell.sdk.sync_step import SyncContext, SyncStep
from stepwell.sdk.triggers import CancelOn, Cron, Trigger

if TYPE_CHECKING:
    from stepwell.sdk.app import App

HandlerFn = Callable[[Context], Awaitable[Any]] | Callable[[SyncContext], Any]
DEFAULT_RETRIES = 4
MAX_RETRIES = 20
FAILURE_EVENT = "inngest/function.failed"

logger = logging.getLogger("stepwell.function")


@dataclass(frozen=True, slots=True)
class FunctionOptions:
    """A function's settings, validated when it is declared.

    Attributes:
        name: display name; default: the id.
        triggers: event or cron triggers; none makes an invoke-only function.
        retries: retries per step and for the handler's own code (0–20, default 4: 5 attempts).
        cancel_on: events that cancel a run.
        event_model: the pydantic model of the trigger's data, when declared.
        flow: flow-control fields of the registration config.
    """

    name: str
    triggers: tuple[Trigger | Cron, ...]
    retries: int = DEFAULT_RETRIES
    cancel_on: tuple[CancelOn, ...] = ()
    event_model: type[EventModel] | None = None
    flow: Mapping[str, Any] = field(default_factory=dict)
    """Flow-control fields of the registration config (see :mod:`stepwell.sdk.flow`)."""


class Function:
    """A registered handler. Call :meth:`__call__` with a :class:`CallRequest` to invoke it."""

    def __init__(
        self, app: App, function_id: str, handler: HandlerFn, options: FunctionOptions
    ) -> None:
        if not callable(handler):
            raise ConfigError(f"function {function_id!r}: the handler must be a function")
        self.is_async = inspect.iscoroutinefunction(handler)
        self.app = app
        self.id = function_id
        self.handler = handler
        self.options = options

    @property
    def full_id(self) -> str:
        """The composite id ``<app>-<fn>`` the engine and the protocol use."""
        return f"{self.app.id}-{self.id}"

    @property
    def name(self) -> str:
        return self.options.name

    def config(self, url: str | None = None) -> dict[str, Any]:
        """The function's registration config, in the shape of Inngest's ``FunctionConfig``."""
        runtime: dict[str, Any] = {"type": "http", "url": url} if url else {"type": "inprocess"}
        if url:
            runtime["url"] = f"{url}?fnId={self.full_id}&stepId=step"
        config: dict[str, Any] = {
            "id": self.full_id,
            "name": self.options.name,
            "triggers": [t.to_config() for t in self.options.triggers],
            "steps": {
                "step": {
                    "id": "step",
                    "name": "step",
                    "runtime": runtime,
                    "retries": {"attempts": self.options.retries},
                }
            },
        }
        if self.options.cancel_on:
            config["cancel"] = [c.to_config() for c in self.options.cancel_on]
        config.update(self.options.flow)
        return config

    async def __call__(
        self, request: CallRequest, checkpointer: Checkpointer | None = None
    ) -> CallResult:
        return await execute(self._run_handler, request, checkpointer)

    async def _run_handler(self, ex: Execution) -> Any:
        request = ex.request
        event = Event.from_wire(request.event)
        events = [Event.from_wire(e) for e in request.events] or [event]
        data: EventModel | dict[str, Any] = dict(event.data)
        model = self.options.event_model
        if model is not None and event.name == model.event_name:
            from stepwell.errors import NonRetriableError

            try:
                data = model.parse_data(event.data, context=f"function {self.full_id!r}")
            except Exception as exc:
                raise NonRetriableError(str(exc)) from None
        step = Step(ex, self.app.id, self.app.sender)
        common: dict[str, Any] = {
            "event": event,
            "events": events,
            "data": data,
            "run_id": request.run_id,
            "function_id": self.full_id,
            "attempt": request.attempt,
            "logger": ReplayAwareLogger(self.app.logger, ex, request.run_id),
        }
        if self.is_async:
            return await self.handler(Context(step=step, **common))  # type: ignore[arg-type]
        # A `def` handler runs in a worker thread with blocking steps (sdk/sync_step.py).
        sync_ctx = SyncContext(step=SyncStep(step, asyncio.get_running_loop()), **common)
        return await asyncio.to_thread(self.handler, sync_ctx)  # type: ignore[arg-type]


def build_options(
    function_id: str,
    *,
    name: str | None,
    trigger: Any,
    retries: int,
    cancel_on: CancelOn | Sequence[CancelOn] | None,
    flow: Mapping[str, Any] | None = None,
) -> FunctionOptions:
    """Validate what ``@app.function(...)`` was given; raise :class:`ConfigError` naming the field."""
    from stepwell.sdk.triggers import normalise_trigger

    if not isinstance(function_id, str) or not function_id.strip():
        raise ConfigError("a function id must be a non-empty string")
    raw = [] if trigger is None else trigger if isinstance(trigger, list | tuple) else [trigger]
    triggers = tuple(normalise_trigger(t, function_id=function_id) for t in raw)
    models = [t for t in raw if isinstance(t, type) and issubclass(t, EventModel)]
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise ConfigError(
            f"function {function_id!r}: retries must be an integer from 0 to {MAX_RETRIES}, "
            f"not {retries!r}"
        )
    cancels = (
        ()
        if cancel_on is None
        else ((cancel_on,) if isinstance(cancel_on, CancelOn) else tuple(cancel_on))
    )
    for c in cancels:
        if not isinstance(c, CancelOn):
            raise ConfigError(
                f"function {function_id!r}: cancel_on takes stepwell.CancelOn objects"
            )
        c.to_config()  # validates match / if_exp / timeout now
    return FunctionOptions(
        name=name or function_id,
        triggers=triggers,
        retries=retries,
        cancel_on=cancels,
        event_model=models[0] if models else None,
        flow=dict(flow or {}),
    )


def failure_options(parent: Function) -> FunctionOptions:
    """Options of the ``<fn>-failure`` function that runs ``on_failure`` (as the official SDKs
    register it: triggered by ``inngest/function.failed`` for that function, one retry)."""
    expression = f"event.data.function_id == '{parent.full_id}'"
    return FunctionOptions(
        name=f"{parent.name} (failure)",
        triggers=(Trigger(FAILURE_EVENT, expression),),
        retries=1,
    )
