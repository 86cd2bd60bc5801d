"""What the SQL stores share about running units of work on their writer threads: the job a
caller submits, its outcome, the call that runs it, and answering callers on their event loops."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from stepwell.store.base import Tx
from stepwell.store.sql import SqlTx

T = TypeVar("T")


@dataclass(slots=True)
class Job:
    """A unit of work submitted by a caller on ``loop``, answered through ``future``."""

    work: Callable[[Tx], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    read_only: bool


Outcome = tuple[bool, Any]
"""(succeeded, value or exception)"""


def call(work: Callable[[Tx], T], tx: SqlTx) -> T:
    """Run a unit, then write what it held back; refuse a coroutine function (units run on a
    thread, never awaited)."""
    try:
        value = work(tx)
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()
            raise TypeError("a unit of work must be a plain function of a Tx, not a coroutine")
        tx.write_pending()
    except BaseException:
        tx.drop_pending()
        raise
    return value


def settle(batch: list[Job], outcomes: list[Outcome]) -> None:
    """Answer every caller: one thread-safe callback per event loop, not one per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Outcome]]] = {}
    for job, outcome in zip(batch, outcomes, strict=True):
        by_loop.setdefault(job.loop, []).append((job.future, outcome))
    for loop, answers in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting
            loop.call_soon_threadsafe(_resolve, answers)


def _resolve(answers: list[tuple[asyncio.Future[Any], Outcome]]) -> None:
    for future, (ok, value) in answers:
        if future.done():  # the caller was cancelled
            continue
        if ok:
            future.set_result(value)
        elif isinstance(value, StopIteration):  # futures refuse StopIteration
            future.set_exception(RuntimeError(f"unit of work raised {value!r}"))
        else:
            future.set_exception(value)
