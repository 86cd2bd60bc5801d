"""Sending events from application code: to the embedded engine, or to an engine over HTTP."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import httpx

from stepwell.errors import EventError, StepwellError

DEFAULT_URL = "http://127.0.0.1:8288"


class EventSender(Protocol):
    """Anything that accepts wire events and returns their ids."""

    async def send_wire(self, events: Sequence[Mapping[str, Any]]) -> list[str]:
        """Durably accept ``events``; return their ids in order."""
        ...


class HttpEventSender:
    """Sends events to ``POST {url}/e/{event_key}``.

    Args:
        url: the engine's base URL; default ``$STEPWELL_URL`` or ``http://127.0.0.1:8288``.
        event_key: the event key; default ``$STEPWELL_EVENT_KEY`` or ``"dev"``.
        timeout: seconds per request.
    """

    def __init__(
        self, url: str | None = None, event_key: str | None = None, timeout: float = 10
    ) -> None:
        self.url = (url or os.environ.get("STEPWELL_URL") or DEFAULT_URL).rstrip("/")
        self.event_key = event_key or os.environ.get("STEPWELL_EVENT_KEY") or "dev"
        self.timeout = timeout

    @property
    def endpoint(self) -> str:
        return f"{self.url}/e/{self.event_key}"

    async def send_wire(self, events: Sequence[Mapping[str, Any]]) -> list[str]:
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            response = await client.post(self.endpoint, json=list(events))
        return _ids(response)

    def send_wire_sync(self, events: Sequence[Mapping[str, Any]]) -> list[str]:
        """The same as :meth:`send_wire`, blocking."""
        with httpx.Client(timeout=self.timeout) as client:
            response = client.post(self.endpoint, json=list(events))
        return _ids(response)


def _ids(response: httpx.Response) -> list[str]:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or body.get("status") != 200:
        message = body.get("error") or response.text[:200]
        error_type = EventError if 400 <= response.status_code < 500 else StepwellError
        raise error_type(f"the engine refused the events ({response.status_code}): {message}")
    return [str(i) for i in body["ids"]]


def send_blocking(
    sender: EventSender, loop: asyncio.AbstractEventLoop | None, events: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Send from synchronous code, whichever thread it runs on."""
    if isinstance(sender, HttpEventSender):
        return sender.send_wire_sync(events)
    if loop is None:
        return asyncio.run(sender.send_wire(events))
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        raise StepwellError(
            "send_sync called on the engine's event loop: use `await app.send(...)`"
        )
    return asyncio.run_coroutine_threadsafe(sender.send_wire(events), loop).result()
