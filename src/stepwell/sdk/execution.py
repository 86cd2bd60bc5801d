"""Replay with memoization: one invocation of a handler against a run's memo.

Every ``step.*`` call derives a step key (:mod:`stepwell.protocol.step_ids`). A memoized step
returns its recorded value at once. A new step either runs now (in-process, with a checkpointer:
consecutive and parallel ``step.run`` bodies execute in this invocation, each result handed to the
checkpointer) or parks its branch of the handler and records an op (sleep, wait, invoke, a step
to retry; over HTTP every new step). The invocation ends when the handler returns or raises, or
when every branch is parked and no step body is running ("settled"): the handler task is then
cancelled and the ops go back to the engine.

Non-determinism: a new step found while memoized steps were not replayed yet means the code
between steps changed; once the other branches settle, if any memoized step is still unvisited
the run fails naming both steps.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from stepwell.errors import NonDeterminismError, NonRetriableError, RetryAfterError, StepError
from stepwell.protocol.invocation import Checkpointer
from stepwell.protocol.ops import (
    CallRequest,
    CallResult,
    StepFailed,
    StepOp,
    StepPlanned,
    StepRun,
    pending_input,
)
from stepwell.protocol.ops import StepError as StepErrorOp
from stepwell.protocol.step_ids import StepCounter
from stepwell.sdk.interrupts import Interrupt, NestedStepError
from stepwell.sdk.serialization import serialize_error, to_json_value

MAX_STEP_OUTPUT = 4 * 1024 * 1024
MAX_RUN_OUTPUT = 4 * 1024 * 1024

_IN_STEP: ContextVar[str | None] = ContextVar("stepwell_in_step", default=None)


@dataclass(slots=True)
class _Found:
    """A ``step.run`` discovered without a checkpointer (over HTTP): run later or plan it."""

    key: str
    step_id: str
    body: Callable[[], Awaitable[Any]]
    input: list[Any] | None = None


def retry_delay_ms(exc: RetryAfterError, now_ms: int) -> int:
    """The delay a ``RetryAfterError`` asks for, in milliseconds (at least 0)."""
    from datetime import datetime, timedelta

    from stepwell.protocol.durations import parse_duration, parse_time

    value = exc.retry_after
    if isinstance(value, datetime):
        return max(0, parse_time(value) - now_ms)
    if isinstance(value, timedelta | str):
        return parse_duration(value, field="retry_after")
    return max(0, int(float(value) * 1000))


class Execution:
    """The state of one invocation: memo, step counter, parked branches, ops found."""

    def __init__(self, request: CallRequest, checkpointer: Checkpointer | None) -> None:
        self.request = request
        self.checkpointer = checkpointer
        self.memo: dict[str, Any] = dict(request.memo)
        # Seeded inputs (a rerun with edited input) are not outcomes: those steps run, with them.
        self.inputs: dict[str, list[Any]] = {}
        for key, value in request.memo.items():
            if (args := pending_input(value)) is not None:
                self.inputs[key] = args
                del self.memo[key]
        self.unvisited: set[str] = set(self.memo)
        self.counter = StepCounter()
        self.ops: list[StepOp] = []
        self.found: list[_Found] = []
        self.attempt = request.attempt
        self.inflight = 0
        self.progress = 0
        self.activity = asyncio.Event()
        # Done once the handler returned or a branch of it stopped (parked or failed): one
        # future to wait on, set by the handler task's done callback too.
        self.stopped: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.parked: set[asyncio.Future[None]] = set()
        self.fatal: BaseException | None = None

    @property
    def replaying(self) -> bool:
        """True while memoized steps remain to be replayed (logs are muted then)."""
        return bool(self.unvisited)

    def now_ms(self) -> int:
        return self.request.now_ms

    # -- keys and memo ---------------------------------------------------------------------------

    def claim(self, step_id: str, kind: str) -> tuple[str, str, bool, Any]:
        """Assign the next key for ``step_id``; return ``(key, unique_id, memoized, value)``."""
        if _IN_STEP.get() is not None:
            raise NestedStepError(
                f"step {step_id!r} was called inside the body of step {_IN_STEP.get()!r}; "
                "steps cannot be nested"
            )
        key, unique = self.counter.next_key(step_id)
        self._touch()
        if key in self.memo:
            known = self.request.memo_kinds.get(key)
            if known is not None and known != kind:
                self._fail_nondeterministic(
                    f"step {unique!r} is a {kind!r} step now but was recorded as {known!r}; "
                    "the code between steps must be deterministic"
                )
            self.unvisited.discard(key)
            return key, unique, True, self.memo[key]
        return key, unique, False, None

    async def before_new_step(self, key: str, unique: str) -> None:
        """Gate a step with no memo: parked if it is not the targeted one, and checked for
        non-determinism when memoized steps are still unreplayed."""
        target = self.request.target_step
        if target is not None and key != target:
            await self.park(None)
        if self.unvisited:
            await self.settle(exclude_self=True)
            if self.unvisited:
                expected = sorted(self.request.memo_ids.get(k, k) for k in self.unvisited)
                self._fail_nondeterministic(
                    f"step {unique!r} was reached but recorded steps {expected} were not replayed "
                    "first; the code between steps must be deterministic"
                )

    def _fail_nondeterministic(self, message: str) -> None:
        fn = self.request.function_id
        self.fatal = NonDeterminismError(f"function {fn!r}, run {self.request.run_id}: {message}")
        self._stop()
        raise _Abort()

    def _stop(self) -> None:
        if not self.stopped.done():
            self.stopped.set_result(None)

    def handler_returned(self, _task: asyncio.Future[Any]) -> None:
        """Done callback of the handler's task: the invocation stops waiting for it."""
        self._stop()

    def _touch(self) -> None:
        self.progress += 1
        self.activity.set()

    # -- parking and settling --------------------------------------------------------------------

    async def park(self, op: StepOp | None) -> None:
        """Record ``op`` (if any) and park this branch of the handler until the invocation ends."""
        if op is not None:
            self.ops.append(op)
        self._stop()
        self._touch()
        parked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.parked.add(parked)
        await parked
        raise _Abort()  # pragma: no cover - parked futures are only ever cancelled

    async def settle(self, *, exclude_self: bool = False) -> None:
        """Return once no step body runs and the handler's branches stopped making progress."""
        while True:
            while self.inflight > 0:
                self.activity.clear()
                await self.activity.wait()
            marker = self.progress
            for _ in range(4):
                await asyncio.sleep(0)
            if self.inflight == 0 and self.progress == marker:
                return

    # -- running step bodies ---------------------------------------------------------------------

    async def run_body(
        self,
        key: str,
        unique: str,
        body: Callable[[], Awaitable[Any]],
        input: list[Any] | None = None,
    ) -> StepRun | StepFailed | StepErrorOp:
        """Execute a step body and turn its outcome into an op (``input``: its arguments)."""
        token = _IN_STEP.set(unique)
        self.inflight += 1
        started = self.request.now_ms
        try:
            result = await body()
            value = to_json_value(result, what=f"output of step {unique!r}", limit=MAX_STEP_OUTPUT)
            return StepRun(key, unique, value, started_at=started, input=input)
        except Interrupt:
            raise
        except Exception as exc:
            return self._step_failure(key, unique, exc, input)
        finally:
            _IN_STEP.reset(token)
            self.inflight -= 1
            self._touch()

    def _step_failure(
        self, key: str, unique: str, exc: Exception, input: list[Any] | None
    ) -> StepFailed | StepErrorOp:
        error = serialize_error(exc)
        final = isinstance(exc, NonRetriableError) or (
            self.attempt + 1 >= self.request.max_attempts
        )
        if final:
            return StepFailed(key, unique, error, input=input)
        delay = retry_delay_ms(exc, self.now_ms()) if isinstance(exc, RetryAfterError) else None
        return StepErrorOp(key, unique, error, retry_after_ms=delay)

    async def run_step(
        self,
        step_id: str,
        kind: str,
        fn: Callable[..., Awaitable[Any]],
        args: Sequence[Any] = (),
    ) -> Any:
        """The common path of every step that executes a body, ``fn(*args)`` (``run``,
        ``send_event`` over HTTP). ``args`` are the step's input: recorded with its outcome
        when they are JSON, and replaced by the input a rerun seeded for the step."""
        key, unique, memoized, value = self.claim(step_id, kind)
        if memoized:
            return unwrap_memo(unique, value)
        await self.before_new_step(key, unique)
        seeded = self.inputs.get(key)
        if seeded is not None:
            args = seeded
        body = functools.partial(fn, *args)
        input = _recordable(unique, args)
        if self.checkpointer is None:
            self.found.append(_Found(key, unique, body, input))
            await self.park(None)
        op = await self.run_body(key, unique, body, input)
        return await self.record(op)

    async def record(self, op: StepRun | StepFailed | StepErrorOp) -> Any:
        """Checkpoint a finished step and return its value (or raise its error) to the handler."""
        assert self.checkpointer is not None
        if isinstance(op, StepErrorOp):
            await self.park(op)
            raise _Abort()  # pragma: no cover - park never returns
        self.attempt = 0
        await self.checkpointer.step_completed(op)
        if self.checkpointer.full():
            await self.park(None)  # the engine calls again, with this step in the memo
        if isinstance(op, StepRun):
            self.memo[op.key] = {"data": op.data}
            return op.data
        self.memo[op.key] = {"error": op.error}
        raise StepError.from_wire(op.step_id, op.error)

    # -- the end of an invocation ----------------------------------------------------------------

    async def finish_found(self) -> None:
        """Over HTTP: run the one step found (or the targeted one), or plan them all."""
        if not self.found:
            return
        target = self.request.target_step
        single = len(self.found) == 1 and not self.ops
        if target is not None or (single and not self.request.disable_immediate_execution):
            found = self.found[0]
            self.ops.append(await self.run_body(found.key, found.step_id, found.body, found.input))
            return
        self.ops.extend(StepPlanned(f.key, f.step_id) for f in self.found)

    async def teardown(self, task: asyncio.Future[Any]) -> None:
        """Cancel every parked branch and the handler, and wait for them to unwind."""
        for parked in self.parked:
            parked.cancel()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _recordable(unique: str, args: Sequence[Any]) -> list[Any] | None:
    """A step's arguments as its recorded input: None when there are none or they are not JSON
    (the step still runs with them; it just cannot be rerun with edited input)."""
    if not args:
        return None
    try:
        value = to_json_value(list(args), what=f"input of step {unique!r}", limit=MAX_STEP_OUTPUT)
    except Exception:
        return None
    return value if isinstance(value, list) else None


class _Abort(Interrupt):
    """Unwinds a branch whose invocation already has its outcome."""


def unwrap_memo(step_id: str, value: Any) -> Any:
    """The value of a ``{"data": x}`` memo, or raise the ``StepError`` of an ``{"error": e}`` one."""
    if isinstance(value, dict) and len(value) == 1:
        if "data" in value:
            return value["data"]
        if "error" in value and isinstance(value["error"], dict):
            raise StepError.from_wire(step_id, value["error"])
    return value


async def execute(
    run_handler: Callable[[Execution], Awaitable[Any]],
    request: CallRequest,
    checkpointer: Checkpointer | None,
) -> CallResult:
    """Invoke a handler once against the request's memo and report the outcome."""
    ex = Execution(request, checkpointer)
    task: asyncio.Future[Any] = asyncio.ensure_future(run_handler(ex))
    task.add_done_callback(ex.handler_returned)
    await ex.stopped  # the handler returned, or a branch of it stopped
    if not task.done() and ex.fatal is None:
        await ex.settle()
    if task.done() and not task.cancelled() and ex.fatal is None and not ex.ops and not ex.found:
        return _handler_outcome(ex, task)
    await ex.teardown(task)
    if ex.fatal is not None:
        return CallResult(done=True, error=serialize_error(ex.fatal), retriable=False)
    await ex.finish_found()
    return CallResult(done=False, ops=tuple(ex.ops))


def _handler_outcome(ex: Execution, task: asyncio.Future[Any]) -> CallResult:
    exc = task.exception()
    if exc is None:
        try:
            output = to_json_value(task.result(), what="function output", limit=MAX_RUN_OUTPUT)
        except NonRetriableError as err:
            return CallResult(done=True, error=serialize_error(err), retriable=False)
        return CallResult(done=True, output=output)
    if isinstance(exc, NestedStepError):
        return CallResult(done=True, error=serialize_error(exc), retriable=False)
    retriable = not isinstance(exc, NonRetriableError | StepError)
    delay = retry_delay_ms(exc, ex.now_ms()) if isinstance(exc, RetryAfterError) else None
    return CallResult(
        done=True, error=serialize_error(exc), retriable=retriable, retry_after_ms=delay
    )


async def call_maybe_sync(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Await ``fn(*args)``; a plain function runs in a worker thread so it never blocks the loop."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    context = contextvars.copy_context()
    result = await asyncio.get_running_loop().run_in_executor(
        None, lambda: context.run(fn, *args, **kwargs)
    )
    if inspect.isawaitable(result):
        return await result
    return result
