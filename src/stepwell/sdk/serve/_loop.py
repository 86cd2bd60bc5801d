"""A private event loop on a daemon thread, for serving from synchronous (WSGI) frameworks.

Why not ``asyncio.run`` per request: every request would get a new loop, so anything an async
handler keeps across runs (a database pool, an HTTP client) would be bound to a dead loop on the
next request, and each request would pay for building and closing a loop. One long-lived loop
per endpoint keeps them valid, and lets requests from several WSGI worker threads run
concurrently on it (a ``def`` handler still runs on a worker thread of its own). The loop starts
on first use, and again in a forked child (pre-forking servers such as gunicorn), since threads
do not survive ``fork``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """Runs coroutines on one private loop from any number of calling threads."""

    def __init__(self, name: str = "stepwell-serve-loop") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and block the calling thread until it finishes."""
        return asyncio.run_coroutine_threadsafe(coro, self._running()).result(timeout)

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=_run, args=(loop,), name=self._name, daemon=True)
                thread.start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def close(self) -> None:
        """Stop the loop (tests and orderly shutdowns; a daemon thread needs no call)."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)


def _run(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()
