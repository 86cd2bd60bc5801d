"""Injectable time. Every engine loop takes ``now`` from a :class:`Clock`, so tests drive time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Clock(Protocol):
    """Where the engine reads the time. Times are epoch milliseconds (``int``)."""

    def now_ms(self) -> int:
        """The current time in epoch milliseconds."""
        ...

    async def sleep_until(self, when_ms: int, wake: asyncio.Event) -> None:
        """Return at ``when_ms`` or as soon as ``wake`` is set, whichever comes first."""
        ...


class SystemClock:
    """The real wall clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep_until(self, when_ms: int, wake: asyncio.Event) -> None:
        delay = (when_ms - self.now_ms()) / 1000
        if delay <= 0 or wake.is_set():
            return
        # asyncio.timeout, not wait_for: no task of its own for every sleep of the dispatch loop
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await wake.wait()


class FakeClock:
    """A clock that moves only when told to; sleepers wake when it passes their time.

    Args:
        start_ms: the initial time in epoch milliseconds.
    """

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:
        self._now = start_ms
        self._moved = asyncio.Event()

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        """Move time forward by ``ms`` milliseconds and wake every sleeper to re-check."""
        self.set(self._now + ms)

    def set(self, when_ms: int) -> None:
        """Move time to ``when_ms`` (never backwards)."""
        self._now = max(self._now, when_ms)
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def sleep_until(self, when_ms: int, wake: asyncio.Event) -> None:
        while self._now < when_ms and not wake.is_set():
            moved = self._moved
            waiter = asyncio.ensure_future(wake.wait())
            mover = asyncio.ensure_future(moved.wait())
            try:
                await asyncio.wait({waiter, mover}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                mover.cancel()
