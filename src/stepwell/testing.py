"""Helpers for testing stepwell functions: an embedded engine on a temp SQLite file, fake time.

::

    async with stepwell.testing.Harness([app], db=tmp_path / "t.db") as h:
        [event_id] = await h.send("order/placed", {"order_id": "o-1"})
        await h.advance("3d")                 # sleeping runs wake, instantly
        run = await h.run_for(event_id)
        assert run.status == "Completed"
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any

from stepwell.clock import FakeClock
from stepwell.embedded import Embedded
from stepwell.engine.engine import Engine
from stepwell.protocol.durations import parse_duration
from stepwell.sdk.app import App
from stepwell.store.records import MemoRecord, RunRecord


class Harness:
    """An embedded engine driven step by step: nothing runs until :meth:`settle` or
    :meth:`advance`, and time only moves when told to.

    Args:
        apps: apps to register in-process.
        db: the SQLite file.
        start_ms: the fake clock's initial time (epoch ms).
    """

    def __init__(
        self, apps: Sequence[App], *, db: str | os.PathLike[str], start_ms: int | None = None
    ) -> None:
        self.clock = FakeClock() if start_ms is None else FakeClock(start_ms)
        self.embedded = Embedded(apps, db=os.fspath(db), clock=self.clock, loops=False)

    @property
    def engine(self) -> Engine:
        return self.embedded.engine

    async def __aenter__(self) -> Harness:
        await self.embedded.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.embedded.stop()

    async def send(
        self, name: str, data: Mapping[str, Any] | None = None, **fields: Any
    ) -> list[str]:
        """Send one event and return its id (in a list, as ``App.send`` does)."""
        return await self.engine.send_wire([{"name": name, "data": dict(data or {}), **fields}])

    async def settle(self) -> None:
        """Run everything that is due now, until nothing is."""
        await self.engine.run_until_idle()

    async def advance(self, duration: timedelta | str | int | float) -> None:
        """Move fake time forward (``"3d"``, seconds, ``timedelta``) and run what became due."""
        await self.settle()
        self.clock.advance(parse_duration(duration, field="advance"))
        await self.settle()

    async def runs_for(self, event_id: str) -> list[RunRecord]:
        """The runs an event started."""
        return await self.engine.store.read(lambda tx: tx.runs_for_event(event_id))

    async def run_for(self, event_id: str) -> RunRecord:
        """The one run an event started (fails if it started none or several)."""
        runs = await self.runs_for(event_id)
        if len(runs) != 1:
            raise AssertionError(f"event {event_id} started {len(runs)} runs, expected 1")
        return runs[0]

    async def run(self, run_id: str) -> RunRecord:
        """A run by id."""
        return await self.engine.get_run(run_id)

    async def memo(self, run_id: str) -> list[MemoRecord]:
        """A run's step log in completion order."""
        return await self.engine.store.read(lambda tx: tx.get_memo(run_id))
