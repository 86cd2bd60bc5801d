"""Observers of committed units of work: the seam run listeners, traces and metrics hang on.

The engine's store is an :class:`ObservedStore`: the backend it was given and a list of
:class:`UnitObserver`. With no observer watching, a unit of work goes straight to the backend.
Otherwise each execution of a unit runs against the ``Tx`` each watching observer makes of it (a
thin proxy noting what some verbs wrote), and each is told once the unit has committed: a unit
rolled back tells nothing, and a unit the store executes again (a retry) tells of its last
execution only.

Every unit of the engine, of its API routes and of its checkpointers goes through
``engine.store``, so whatever ends a run — an invocation's outcome, a timeout, a cancellation by
request, by a ``cancel_on`` event or by a singleton — is seen by :class:`RunEndings` once, on
the node whose unit ended it, after that unit committed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from stepwell.store.base import Store, Tx
from stepwell.store.records import RunRecord, RunStatus

log = logging.getLogger("stepwell.engine")
T = TypeVar("T")

RunListener = Callable[[RunRecord, RunStatus], None]
"""Told ``(run, status)`` once the unit of work that ended the run has committed; ``run`` is
the run as that unit left it (ended, with its output or error)."""


class UnitObserver(Protocol):
    """Watches units of work and is told when one committed."""

    def begin(self, tx: Tx) -> tuple[Tx, Callable[[], None]] | None:
        """A unit starts executing on ``tx`` (on the store's thread): None to stay out of it,
        or the ``Tx`` the unit should use instead and what to call (on the event loop) once the
        unit has committed."""
        ...


class ObservedStore:
    """A :class:`~stepwell.store.base.Store` whose committed units are told to observers.

    Args:
        backend: the store that runs the units; its other attributes are reachable here too.
    """

    def __init__(self, backend: Store) -> None:
        self.backend = backend
        self.observers: list[UnitObserver] = []

    async def open(self) -> None:
        await self.backend.open()

    async def close(self) -> None:
        await self.backend.close()

    async def read(self, work: Callable[[Tx], T]) -> T:
        return await self.backend.read(work)

    async def run(self, work: Callable[[Tx], T]) -> T:
        observers = self.observers
        if not observers:
            return await self.backend.run(work)
        committed: list[Callable[[], None]] = []

        def unit(tx: Tx) -> T:
            committed.clear()  # executed again after a retry: only the last execution counts
            for observer in observers:
                watch = observer.begin(tx)
                if watch is not None:
                    tx, done = watch
                    committed.append(done)
            return work(tx)

        result = await self.backend.run(unit)
        for done in committed:
            done()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)


class RunEndings:
    """Tells ``listeners`` of every run a committed unit ended, once, as ``(run, status)``.

    Watches units only while it has listeners, so it costs nothing otherwise (with listeners,
    the ended run returned by the statement that ends it).
    """

    def __init__(self) -> None:
        self.listeners: list[RunListener] = []

    def begin(self, tx: Tx) -> tuple[Tx, Callable[[], None]] | None:
        if not self.listeners:
            return None
        watched = _EndingTx(tx)
        return cast(Tx, watched), functools.partial(self._tell, watched.ended)

    def _tell(self, ended: list[tuple[RunRecord, RunStatus]]) -> None:
        for run, status in ended:
            for listener in list(self.listeners):
                try:
                    listener(run, status)
                except Exception:
                    log.exception("a run listener failed on run %s", run.run_id)


class _EndingTx:
    """A ``Tx`` noting the runs its unit ended; every call passes through."""

    __slots__ = ("_tx", "ended")

    def __init__(self, tx: Tx) -> None:
        self._tx = tx
        self.ended: list[tuple[RunRecord, RunStatus]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def finish_run(self, run_id: str, status: RunStatus, now: int, *a: Any, **kw: Any) -> bool:
        run = self._tx.end_run(run_id, status, now, *a, **kw)
        if run is not None:
            self.ended.append((run, status))
        return run is not None
