"""The app: a named set of functions, and the way application code sends events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stepwell.errors import ConfigError
from stepwell.sdk.client import EventSender, HttpEventSender, send_blocking
from stepwell.sdk.events import Event, EventModel, coerce_event
from stepwell.sdk.flow import (
    Batch,
    Concurrency,
    Debounce,
    RateLimit,
    Singleton,
    Throttle,
    Timeouts,
    flow_config,
)
from stepwell.sdk.function import (
    Function,
    HandlerFn,
    build_options,
    failure_options,
)
from stepwell.sdk.triggers import CancelOn

SDK_VERSION = "stepwell:v0.1.0"

EventsLike = Event | EventModel | Mapping[str, Any]


class App:
    """A named set of functions.

    Args:
        id: the app id; function ids are registered as ``<app id>-<function id>``.
        url: the engine to send events to when the app is not running inside one; default
            ``$STEPWELL_URL`` or ``http://127.0.0.1:8288``.
        event_key: the event key for that engine; default ``$STEPWELL_EVENT_KEY``.

    Example::

        app = stepwell.App("shop")

        @app.function("process-order", trigger="order/placed")
        async def process_order(ctx: stepwell.Context) -> dict: ...
    """

    def __init__(self, id: str, *, url: str | None = None, event_key: str | None = None) -> None:
        if not isinstance(id, str) or not id.strip():
            raise ConfigError("an app id must be a non-empty string")
        self.id = id
        self.logger = logging.getLogger(f"stepwell.app.{id}")
        self._functions: dict[str, Function] = {}
        self._http_sender = HttpEventSender(url, event_key)
        self._engine_sender: EventSender | None = None
        self._engine_loop: asyncio.AbstractEventLoop | None = None

    # -- declaring functions ---------------------------------------------------------------------

    def function(
        self,
        id: str,
        *,
        trigger: Any = None,
        name: str | None = None,
        retries: int = 4,
        on_failure: HandlerFn | None = None,
        cancel_on: CancelOn | Sequence[CancelOn] | None = None,
        concurrency: int | Concurrency | Sequence[Concurrency] | None = None,
        throttle: Throttle | None = None,
        rate_limit: RateLimit | None = None,
        debounce: Debounce | None = None,
        batch: Batch | None = None,
        priority: str | None = None,
        singleton: Singleton | None = None,
        idempotency: str | None = None,
        timeouts: Timeouts | None = None,
    ) -> Callable[[HandlerFn], Function]:
        """Declare a function.

        Args:
            id: unique within the app.
            trigger: an event name (wildcards like ``"app/*"`` allowed), :class:`Trigger` (with a
                CEL ``if_exp``), :class:`Cron`, an :class:`EventModel` class, or a list of them.
            name: display name.
            retries: retries per step and for the handler itself (default 4, so 5 attempts).
            on_failure: an async handler run when a run of this function fails for good; its
                ``ctx.event`` is ``inngest/function.failed`` with the error in ``data.error``.
            cancel_on: events that cancel a run (:class:`CancelOn`).
            concurrency: at most this many steps executing at once — an int, or
                :class:`Concurrency` (up to two) for a key or a scope shared across functions.
            throttle: at most ``limit`` run starts per period; excess runs wait (:class:`Throttle`).
            rate_limit: at most ``limit`` runs per period; excess events start none
                (:class:`RateLimit`).
            debounce: start once events stop coming, with the last one (:class:`Debounce`).
            batch: start one run with many events, given as ``ctx.events`` (:class:`Batch`).
            priority: CEL giving seconds (−600 to 600) to move a run's start ahead or behind.
            singleton: one unfinished run per key (:class:`Singleton`).
            idempotency: CEL key: at most one run per key value per 24 hours.
            timeouts: cancel runs not started or not finished in time (:class:`Timeouts`).
        """
        flow = flow_config(
            id,
            concurrency=concurrency,
            throttle=throttle,
            rate_limit=rate_limit,
            debounce=debounce,
            batch=batch,
            priority=priority,
            singleton=singleton,
            idempotency=idempotency,
            timeouts=timeouts,
        )
        options = build_options(
            id, name=name, trigger=trigger, retries=retries, cancel_on=cancel_on, flow=flow
        )

        def decorate(handler: HandlerFn) -> Function:
            fn = Function(self, id, handler, options)
            self._add(fn)
            if on_failure is not None:
                self._add(Function(self, f"{id}-failure", on_failure, failure_options(fn)))
            return fn

        return decorate

    def _add(self, fn: Function) -> None:
        if fn.full_id in self._functions:
            raise ConfigError(f"app {self.id!r} already has a function {fn.id!r}")
        self._functions[fn.full_id] = fn

    @property
    def functions(self) -> list[Function]:
        """Every function, including the ``-failure`` functions of ``on_failure`` handlers."""
        return list(self._functions.values())

    def get(self, full_id: str) -> Function | None:
        """The function with composite id ``<app>-<fn>``, or None."""
        return self._functions.get(full_id)

    def register_request(self, url: str | None = None) -> dict[str, Any]:
        """The app's registration body, in the shape of Inngest's ``RegisterRequest``."""
        return {
            "url": url or "inprocess://" + self.id,
            "deployType": "ping",
            "appName": self.id,
            "framework": "stepwell",
            "sdk": SDK_VERSION,
            "v": "0.1",
            "functions": [fn.config(url) for fn in self._functions.values()],
        }

    # -- sending events --------------------------------------------------------------------------

    def attach(
        self, sender: EventSender | None, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        """Route this app's sends to an embedded engine (``None`` detaches)."""
        self._engine_sender = sender
        self._engine_loop = loop

    @property
    def sender(self) -> EventSender:
        """Where sends go: the embedded engine when attached, else HTTP."""
        return self._engine_sender or self._http_sender

    async def send(self, events: EventsLike | Sequence[EventsLike]) -> list[str]:
        """Send one or many events; returns their ids once the engine has committed them."""
        return await self.sender.send_wire(_wire(events))

    def send_sync(self, events: EventsLike | Sequence[EventsLike]) -> list[str]:
        """Send from synchronous code (a Flask view, a script); blocks until committed."""
        return send_blocking(self.sender, self._engine_loop, _wire(events))


def _wire(events: EventsLike | Sequence[EventsLike]) -> list[dict[str, Any]]:
    batch: list[Any] = list(events) if isinstance(events, list | tuple) else [events]
    return [coerce_event(e).to_wire() for e in batch]
