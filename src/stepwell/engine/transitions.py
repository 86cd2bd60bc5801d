"""The run state machine: what an invocation's outcome, a timer or a cancellation writes.

Every function here runs inside one store transaction (a unit of work) and is a function of its
arguments and ``now``. A run ends exactly once: every "run ended" effect (system events, waking
an invoking parent, dropping queue items and waits) hangs off ``Tx.finish_run`` returning True.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from stepwell.engine import flow
from stepwell.engine.checkpoint import RunStarted
from stepwell.engine.ingest import (
    Router,
    continue_run,
    keyed_wait,
    resume_wait,
    start_run,
    timeout_item,
)
from stepwell.engine.registry import FunctionSpec
from stepwell.engine.retry import backoff_ms
from stepwell.ids import new_id
from stepwell.protocol.ops import (
    CallResult,
    DiscoveryRequest,
    InvokeFunction,
    Sleep,
    StepError,
    StepFailed,
    StepOp,
    StepPlanned,
    StepRun,
    WaitForEvent,
)
from stepwell.store.base import Tx
from stepwell.store.records import (
    FINAL_STATUSES,
    AttemptError,
    EventRecord,
    QueueItem,
    RunRecord,
    RunStatus,
)

FINISHED = "inngest/function.finished"
FAILED = "inngest/function.failed"
CANCELLED = "inngest/function.cancelled"
INVOKED = "inngest/function.invoked"
SCHEDULED = "inngest/scheduled.timer"
END_EVENTS = frozenset({FINISHED, FAILED, CANCELLED})

# Ops after which the run's handler is invoked again at once.
CONTINUING = (StepRun, StepFailed, StepPlanned, DiscoveryRequest)

HELD_RETRY_MS = 30_000
"""A due debounce or batch whose function this node has not loaded is looked at again after this."""

INVOKE_TIMEOUT_ERROR = {
    "name": "InngestInvokeTimeoutError",
    "message": "Timed out waiting for invoked function to complete",
}


class Transitions:
    """Applies outcomes to runs. Holds the router, to route the system events it emits."""

    def __init__(
        self, router: Router, rng: random.Random | None = None, retry_interval_ms: int | None = None
    ) -> None:
        self.router = router
        self.rng = rng or random.Random()
        # None: Inngest's exponential schedule; a number: that fixed delay between attempts.
        self.retry_interval_ms = retry_interval_ms
        router.cancel = self.cancel
        self.apps_stale: Callable[[Tx], bool] = _never_stale
        """Whether the store holds apps the router's registry has not loaded (another node
        synced them): end events nobody here listens to are then routed all the same."""

    def cancel(self, tx: Tx, run_id: str, now: int, reason: str) -> bool:
        """Cancel a run that has not ended; returns whether this call cancelled it."""
        run = tx.get_run(run_id)
        if run is None or run.status in FINAL_STATUSES:
            return False
        return self.finish(tx, run, "Cancelled", now, reason=reason)

    # -- invocation outcomes ---------------------------------------------------------------------

    def apply(
        self,
        tx: Tx,
        run: RunRecord,
        spec: FunctionSpec,
        item: QueueItem,
        owner: str,
        result: CallResult,
        now: int,
        events: list[dict[str, Any]] | None = None,
        started: RunStarted | None = None,
    ) -> None:
        """Commit what one invocation produced and settle its queue item (``events``: the run's
        trigger events in wire form, when the caller has them, for its end events; ``started``:
        the invocation's mark of the run's start, when it has not been written yet)."""
        flow.release_slots(tx, run.flow_keys)
        if result.done and (result.error is None or not result.retriable):
            # The run ends here: its end is guarded (it ends once, unless something ended it
            # meanwhile), so it needs no read first, and its start goes in the same write.
            return self._end(tx, run, item, owner, result, now, events, started)
        if started is not None:
            started(tx)
        current = tx.get_run(run.run_id)
        if current is None or current.status in FINAL_STATUSES:
            tx.ack(item.item_id, owner, item.generation)
            return
        finish_ms = spec.flow.finish_timeout_ms
        if run.status == "Queued" and finish_ms is not None:
            began = current.started_at if current.started_at is not None else now
            tx.enqueue(timeout_item("finish_timeout", current, began + finish_ms))
        if result.done:
            return self._apply_done(tx, current, spec, item, owner, result, now, events)
        retry: StepError | None = None
        for op in result.ops:
            if isinstance(op, StepError):
                retry = retry or op
            else:
                self._apply_op(tx, current, op, now)
        if retry is not None:
            return self._retry(
                tx,
                current,
                spec,
                item,
                owner,
                retry.retry_after_ms,
                now,
                retry.retriable,
                retry.error,
                (retry.key, retry.step_id),
            )
        tx.set_run_attempt(run.run_id, 0)
        if any(isinstance(op, CONTINUING) for op in result.ops):
            continue_run(tx, run.run_id, run.function_id, now)
        tx.ack(item.item_id, owner, item.generation)

    def _end(
        self,
        tx: Tx,
        run: RunRecord,
        item: QueueItem,
        owner: str,
        result: CallResult,
        now: int,
        events: list[dict[str, Any]] | None,
        started: RunStarted | None,
    ) -> None:
        """End a run with its invocation's outcome; if it had already ended (cancelled while
        the invocation ran), only settle the item."""
        status: RunStatus = "Completed" if result.error is None else "Failed"
        if self.finish(
            tx,
            run,
            status,
            now,
            output=result.output if result.error is None else None,
            error=result.error,
            events=events,
            started_at=started.at if started is not None else None,
        ):
            return
        tx.ack(item.item_id, owner, item.generation)

    def _apply_done(
        self,
        tx: Tx,
        run: RunRecord,
        spec: FunctionSpec,
        item: QueueItem,
        owner: str,
        result: CallResult,
        now: int,
        events: list[dict[str, Any]] | None,
    ) -> None:
        if result.error is None:
            self.finish(tx, run, "Completed", now, output=result.output, events=events)
            return
        if result.retriable:
            return self._retry(
                tx, run, spec, item, owner, result.retry_after_ms, now, True, result.error
            )
        self.finish(tx, run, "Failed", now, error=result.error, events=events)

    def _retry(
        self,
        tx: Tx,
        run: RunRecord,
        spec: FunctionSpec,
        item: QueueItem,
        owner: str,
        retry_after_ms: int | None,
        now: int,
        retriable: bool,
        error: dict[str, Any] | None = None,
        step: tuple[str, str] | None = None,
    ) -> None:
        attempt = run.attempt + 1
        if error is not None and retriable and attempt < spec.max_attempts:
            key, step_id = step if step is not None else ("", None)
            tx.insert_attempt_error(
                AttemptError(run.run_id, key, run.attempt, step_id, dict(error), now)
            )
        if not retriable or attempt >= spec.max_attempts:
            # A step's last attempt is reported as StepFailed by the SDK; reaching here means the
            # handler's own code failed for good.
            self.finish(
                tx, run, "Failed", now, error=error or {"name": "Error", "message": "failed"}
            )
            return
        if retry_after_ms is not None:
            delay = retry_after_ms
        elif self.retry_interval_ms is not None:
            delay = self.retry_interval_ms
        else:
            delay = backoff_ms(run.attempt, random=self.rng)
        delay = min(max(delay, 0), 24 * 3600 * 1000)
        tx.set_run_attempt(run.run_id, attempt)
        tx.release(item.item_id, owner, now + delay)

    def _apply_op(self, tx: Tx, run: RunRecord, op: StepOp, now: int) -> None:
        if isinstance(op, StepRun):
            value = {"data": op.data}
            tx.put_memo(
                run.run_id, op.key, op.step_id, "run", value, now, op.started_at, 1, op.input
            )
        elif isinstance(op, StepFailed):
            value = {"error": op.error}
            tx.put_memo(run.run_id, op.key, op.step_id, "run", value, now, None, 1, op.input)
        elif isinstance(op, Sleep):
            due = op.until_ms if op.until_ms is not None else now + (op.duration_ms or 0)
            tx.enqueue(_timer("sleep", run, op.key, op.step_id, due))
        elif isinstance(op, WaitForEvent):
            self._wait(tx, run, op, now)
        elif isinstance(op, InvokeFunction):
            self._invoke(tx, run, op, now)

    def _wait(self, tx: Tx, run: RunRecord, op: WaitForEvent, now: int) -> None:
        trigger = tx.get_event(run.event_id)
        wire = trigger.to_wire() if trigger else {}
        expires = now + op.timeout_ms
        wait = keyed_wait(run, "step", op.event, op.expression, wire, expires, op.key, op.step_id)
        if tx.insert_wait(wait):
            tx.enqueue(_timer("wait_timeout", run, op.key, op.step_id, expires))

    def _invoke(self, tx: Tx, run: RunRecord, op: InvokeFunction, now: int) -> None:
        if tx.find_child_runs(run.run_id, op.key):
            return  # already started by an earlier invocation of this step
        target = self.router.registry.get(op.function_id)
        if target is not None and target.function_id in self.router.registry.paused:
            message = f"cannot invoke {op.function_id!r}: it is paused"
            return _fail_invoke(tx, run, op, "FunctionPaused", message, now)
        if target is None:
            message = f"cannot invoke {op.function_id!r}: no such function is registered"
            return _fail_invoke(tx, run, op, "FunctionNotFound", message, now)
        data = dict(op.data)
        data["_inngest"] = {
            "source_app_id": run.app_id,
            "source_fn_id": run.function_id,
            "correlation_id": f"{run.run_id}.{op.key}",
            "expire": now + op.timeout_ms,
            "fn_id": op.function_id,
        }
        event = EventRecord(new_id(), INVOKED, data, now, now, dict(op.user), source="invoke")
        tx.insert_event(event)
        child = start_run(tx, target, [event], now, parent=(run.run_id, op.key), cancel=self.cancel)
        if child is None:  # the target's singleton skipped it: fail the step now, not at timeout
            message = f"{op.function_id!r} did not start: {_skip_reason(tx, event, target)}"
            return _fail_invoke(tx, run, op, "FunctionSkipped", message, now)
        tx.enqueue(_timer("invoke_timeout", run, op.key, op.step_id, now + op.timeout_ms))

    # -- timers ----------------------------------------------------------------------------------

    def fire_timer(self, tx: Tx, item: QueueItem, owner: str, now: int) -> None:
        """A sleep ended, a wait or an invoke timed out: memoize and continue the run. A debounce
        or batch is due: start its run. A run's timeout passed: cancel it."""
        if item.kind in ("debounce", "batch"):
            return self._start_held(tx, item, owner, now)
        if item.kind in ("start_timeout", "finish_timeout"):
            return self._time_out(tx, item, now)
        key = str(item.payload["step_key"])
        step_id = str(item.payload.get("step_id") or key)
        tx.delete_queue_item(item.item_id)
        run = tx.get_run(item.run_id)
        if run is None or run.status in FINAL_STATUSES:
            return
        if item.kind == "sleep":
            written = tx.put_memo(run.run_id, key, step_id, "sleep", None, now)
        elif item.kind == "wait_timeout":
            wait = tx.get_wait(run.run_id, key)
            written = False
            if wait is not None and tx.delete_wait(wait.wait_id):
                resume_wait(tx, wait, None, now)
                return
        else:
            written = tx.put_memo(
                run.run_id, key, step_id, "invoke", {"error": INVOKE_TIMEOUT_ERROR}, now
            )
        if written:
            continue_run(tx, run.run_id, run.function_id, now)

    def _start_held(self, tx: Tx, item: QueueItem, owner: str, now: int) -> None:
        key = str(item.payload["key"])
        spec = self.router.registry.get(item.function_id)
        events: list[EventRecord]
        # The key's lock, as the ingest side takes it: an event joining the debounce or batch
        # right now commits first, and is seen here.
        tx.lock_keys([key])
        if item.kind == "debounce":
            pending = tx.get_debounce(key)
            if pending is None or pending.run_id != item.run_id:
                tx.delete_queue_item(item.item_id)
                return
            if pending.due_at > now:  # later events moved it
                tx.release(item.item_id, owner, pending.due_at)
                return
            if spec is None:
                tx.release(item.item_id, owner, now + HELD_RETRY_MS)
                return
            tx.delete_debounce(key, pending.run_id)
            events = tx.get_events([pending.event_id])
        else:
            batch = tx.get_batch(key)
            if batch is None or batch.run_id != item.run_id:
                tx.delete_queue_item(item.item_id)
                return
            if spec is None:
                tx.release(item.item_id, owner, now + HELD_RETRY_MS)
                return
            tx.delete_batch(key, batch.run_id)
            events = tx.get_events(batch.event_ids)
        tx.delete_queue_item(item.item_id)
        if events:
            start_run(tx, spec, events, now, run_id=item.run_id, cancel=self.cancel)

    def _time_out(self, tx: Tx, item: QueueItem, now: int) -> None:
        tx.delete_queue_item(item.item_id)
        run = tx.get_run(item.run_id)
        if run is None or run.status in FINAL_STATUSES:
            return
        spec = self.router.registry.get(run.function_id)
        if item.kind == "start_timeout":
            if run.status != "Queued":
                return
            limit = spec.flow.start_timeout_ms if spec is not None else None
            reason = f"timed out: not started within timeouts.start ({limit} ms)"
        else:
            limit = spec.flow.finish_timeout_ms if spec is not None else None
            reason = f"timed out: not finished within timeouts.finish ({limit} ms)"
        self.finish(tx, run, "Cancelled", now, reason=reason)
        return

    # -- endings ---------------------------------------------------------------------------------

    def finish(
        self,
        tx: Tx,
        run: RunRecord,
        status: RunStatus,
        now: int,
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
        reason: str | None = None,
        events: list[dict[str, Any]] | None = None,
        started_at: int | None = None,
    ) -> bool:
        """End ``run`` once, with its system events, and wake a parent waiting on it
        (``events``: its trigger events in wire form, read from the store when not given;
        ``started_at``: the run starts in the same write, if it had not started)."""
        if not tx.finish_run(
            run.run_id,
            status,
            now,
            output=output,
            error=error,
            cancel_reason=reason,
            started_at=started_at,
        ):
            return False
        tx.delete_queue_items(run.run_id)
        tx.delete_run_waits(run.run_id)
        flow.release_slots(tx, run.flow_keys)
        if run.parent_run_id and run.parent_step_key:
            memo = (
                {"data": output}
                if status == "Completed"
                else {"error": error or _cancelled_error(reason)}
            )
            if tx.put_memo(
                run.parent_run_id, run.parent_step_key, run.parent_step_key, "invoke", memo, now
            ):
                parent = tx.get_run(run.parent_run_id)
                if parent is not None and parent.status not in FINAL_STATUSES:
                    continue_run(tx, parent.run_id, parent.function_id, now)
        self._emit_end_events(
            tx,
            run,
            status,
            now,
            output,
            error or (_cancelled_error(reason) if status == "Cancelled" else None),
            events,
        )
        return True

    def _emit_end_events(
        self,
        tx: Tx,
        run: RunRecord,
        status: RunStatus,
        now: int,
        output: Any,
        error: dict[str, Any] | None,
        events: list[dict[str, Any]] | None,
    ) -> None:
        names = [FINISHED, *_STATUS_EVENTS.get(status, ())]
        if events is None:
            events = [e.to_wire() for e in tx.get_events(list(run.event_ids))]
        if events and events[0].get("name") in END_EVENTS:
            return  # runs started by end events emit none, so handlers never trigger themselves
        data: dict[str, Any] = {
            "function_id": run.function_id,
            "run_id": run.run_id,
            "event": events[0] if events else None,
            "events": events,
            "_inngest": {"status": status},
        }
        if status == "Completed":
            data["result"] = output
        else:
            data["error"] = error
        heard = self._listened(tx, names)
        for name in names:
            record = EventRecord(new_id(), name, data, now, now, source="system")
            tx.insert_event(record)  # every end event is stored: the run's record of its end
            if name in heard:
                self.router.route(tx, record, now)

    def _listened(self, tx: Tx, names: list[str]) -> list[str]:
        """Those of the end events ``names`` that something can observe: a function triggered by
        the name (wildcards included, whatever its ``if``), or a wait (``wait_for_event``,
        ``cancel_on``) on it. The others are stored but not routed: routing an end event nothing
        listens to would find nothing. An invoking parent does not need them (``finish`` resumes
        it)."""
        registry = self.router.registry
        unheard = [n for n in names if not registry.candidates(n)]
        if not unheard:
            return names
        waited = tx.waited_event_names(unheard)
        if len(waited) < len(unheard) and self.apps_stale(tx):
            return names  # another node synced apps this one has not loaded: store them all
        return [n for n in names if n not in unheard or n in waited]


_STATUS_EVENTS: dict[str, tuple[str, ...]] = {"Failed": (FAILED,), "Cancelled": (CANCELLED,)}
"""The end event a status emits besides ``inngest/function.finished``."""


def _never_stale(tx: Tx) -> bool:
    return False


def _fail_invoke(
    tx: Tx, run: RunRecord, op: InvokeFunction, name: str, message: str, now: int
) -> None:
    """Fail an invoke step at once (the invoked function cannot start) and continue the run."""
    error = {"name": name, "message": message}
    if tx.put_memo(run.run_id, op.key, op.step_id, "invoke", {"error": error}, now):
        continue_run(tx, run.run_id, run.function_id, now)


def _skip_reason(tx: Tx, event: EventRecord, spec: FunctionSpec) -> str:
    reasons = [r for f, r in tx.skips_for_event(event.event_id) if f == spec.function_id]
    return reasons[0] if reasons else "skipped by its flow control"


def _cancelled_error(reason: str | None) -> dict[str, Any]:
    return {"name": "FunctionCancelled", "message": reason or "the run was cancelled"}


def _timer(kind: str, run: RunRecord, key: str, step_id: str, due: int) -> QueueItem:
    return QueueItem(
        item_id=f"{kind}:{run.run_id}:{key}",
        kind=kind,  # type: ignore[arg-type]
        run_id=run.run_id,
        function_id=run.function_id,
        available_at=due,
        payload={"step_key": key, "step_id": step_id},
    )


def new_cron_run(
    tx: Tx, spec: FunctionSpec, cron_source: str, tick_at: int, now: int
) -> RunRecord | None:
    """Start the run of one cron tick, once across all nodes."""
    if not tx.claim_cron_tick(spec.function_id, tick_at):
        return None
    event = EventRecord(new_id(), SCHEDULED, {"cron": cron_source}, tick_at, now, source="cron")
    tx.insert_event(event)
    return start_run(tx, spec, [event], now)
