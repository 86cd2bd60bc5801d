"""The engine and in-process apps together, on one SQLite file: what ``stepwell dev`` runs.

Usable from your own code and tests too::

    async with stepwell.embedded.Embedded([app], db="state.db") as dev:
        await app.send(stepwell.Event("order/placed", {"order_id": "o-1"}))
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from stepwell.clock import Clock
from stepwell.engine.drivers.base import Driver
from stepwell.engine.engine import Engine
from stepwell.errors import StoreError
from stepwell.sdk.app import App
from stepwell.store import open_store
from stepwell.store.sqlite import SqliteStore

DEFAULT_DB = ".stepwell/dev.db"


class Embedded:
    """An engine on a SQLite file with ``apps`` registered in-process.

    Args:
        apps: the apps whose functions run in this process.
        db: the SQLite file (created with its directory if missing), or a database URL.
        clock: the time source; default the wall clock.
        concurrency: invocations run at once.
        loops: run the dispatch loop (False: drive ``engine.tick`` / ``run_until_idle`` yourself).
        http: the driver for apps served over HTTP, if any are synced.
        retry_interval_ms: a fixed delay between attempts instead of the exponential schedule.
        lease_ms: how long a claimed item stays leased without renewal; on a shared database,
            how soon another node takes over the work of one that died.
    """

    def __init__(
        self,
        apps: Sequence[App],
        *,
        db: str = DEFAULT_DB,
        clock: Clock | None = None,
        concurrency: int = 64,
        loops: bool = True,
        http: Driver | None = None,
        retry_interval_ms: int | None = None,
        lease_ms: int = 30_000,
    ) -> None:
        self.apps = list(apps)
        self.db = db
        store = open_store(db)
        # A SQLite file belongs to one engine at a time; a server database is shared by nodes.
        self._sqlite_path = store.path if isinstance(store, SqliteStore) else None
        self.engine = Engine(
            store,
            clock=clock,
            concurrency=concurrency,
            http=http,
            retry_interval_ms=retry_interval_ms,
            lease_ms=lease_ms,
        )
        self._loops = loops
        self._lock: IO[bytes] | None = None

    async def __aenter__(self) -> Embedded:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Lock the database file, open it, resume unfinished runs, register the apps."""
        exclusive = self._sqlite_path is not None and self._sqlite_path != ":memory:"
        if exclusive:
            assert self._sqlite_path is not None
            Path(self._sqlite_path).parent.mkdir(parents=True, exist_ok=True)
            self._lock = _lock_file(self._sqlite_path)
        try:
            # Holding the file exclusively, every lease left in it is from a process that died.
            await self.engine.start(loops=self._loops, take_over=exclusive)
            loop = asyncio.get_running_loop()
            for app in self.apps:
                handlers = {fn.full_id: fn for fn in app.functions}
                await self.engine.register(app.register_request(), handlers)
                app.attach(self.engine, loop)
        except BaseException:
            # An invalid function (ConfigError), an unreadable file: nothing stays open, so
            # the same file can be started again once fixed.
            with contextlib.suppress(Exception):  # the store may never have opened
                await self.stop()
            raise

    async def stop(self) -> None:
        """Detach the apps, stop the engine, release the file."""
        for app in self.apps:
            app.attach(None)
        try:
            await self.engine.stop()
        finally:
            if self._lock is not None:
                self._lock.close()
                self._lock = None


def _lock_file(db: str) -> IO[bytes]:
    handle = open(f"{db}.lock", "wb")  # noqa: SIM115 - held open for the engine's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreError(
            f"{os.path.abspath(db)} is in use by another stepwell process; stop it or pass --db"
        ) from None
    return handle
