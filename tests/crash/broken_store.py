"""A node whose store breaks a guarantee on purpose, to prove the crash-safety checker sees it.

Run as ``python -m tests.crash.broken_store start ...`` (the arguments of ``stepwell start``):
the node's store acknowledges the first memo write of step ``a`` without writing it, as a
store that lost a committed step result would, and appends that run's id to
``$CRASH_BROKEN_LOG``. Everything else passes through to the real store.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import stepwell.embedded
from stepwell.store import Store, Tx, open_store
from stepwell.store.records import MemoRecord

T = TypeVar("T")
DROPPED_STEP = "a"


class DropsOneMemoWrite:
    """A :class:`~stepwell.store.base.Store` that drops one memo write and says it wrote it."""

    def __init__(self, inner: Store, log: str) -> None:
        self._inner = inner
        self._log = log
        self._lock = threading.Lock()
        self._dropped = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def open(self) -> None:
        await self._inner.open()

    async def close(self) -> None:
        await self._inner.close()

    async def run(self, work: Callable[[Tx], T]) -> T:
        return await self._inner.run(lambda tx: work(self._wrap(tx)))

    async def read(self, work: Callable[[Tx], T]) -> T:
        return await self._inner.read(work)

    def _wrap(self, tx: Tx) -> Tx:
        outer = self

        class Broken:
            def __getattr__(self, name: str) -> Any:
                return getattr(tx, name)

            def put_memo(self, run_id: str, step_key: str, step_id: str, *args: Any) -> bool:
                if step_id == DROPPED_STEP and outer._drop_once(run_id):
                    return True
                return bool(tx.put_memo(run_id, step_key, step_id, *args))

            def put_memos(self, memos: Sequence[MemoRecord]) -> list[bool]:
                dropped = [m.step_id == DROPPED_STEP and outer._drop_once(m.run_id) for m in memos]
                written = iter(
                    tx.put_memos([m for m, d in zip(memos, dropped, strict=True) if not d])
                )
                return [True if d else next(written) for d in dropped]

        return Broken()  # type: ignore[return-value]

    def _drop_once(self, run_id: str) -> bool:
        with self._lock:
            if self._dropped:
                return False
            self._dropped = True
        with open(self._log, "a") as out:
            out.write(run_id + "\n")
        return True


def main() -> None:
    log = os.environ["CRASH_BROKEN_LOG"]

    def broken_store(url: str) -> Any:
        return DropsOneMemoWrite(open_store(url), log)

    stepwell.embedded.open_store = broken_store  # type: ignore[attr-defined]
    from stepwell.cli.main import main as stepwell_main

    stepwell_main()


if __name__ == "__main__":
    main()
