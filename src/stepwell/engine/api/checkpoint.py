"""``POST /v1/checkpoint/{run_id}/async``: steps the TS SDK ran within one call (PROTOCOL.md §1.10).

The TS SDK (v4) runs consecutive steps of a discovery call itself and posts each finished step
here before running the next; it awaits the answer. 200 means "recorded, go on"; 409 means
"this dispatch is stale" and makes the SDK stop running steps at once: the run is unknown or
has ended, the invocation named by ``qi_id`` is over (or belongs to another run), or the run
already holds a different result for one of the steps (another invocation got there first).
Steps are memoized first write wins; a checkpoint sent again with the same results (the SDK
retries on network errors) is answered 200.

A checkpoint of an invocation this engine has in flight (``live``) is checked by a read (the run
is there, not ended, of that function, and holds no other result for these steps) and handed to
the invocation's checkpointer, which writes it behind, as the in-process driver's steps are: the
SDK goes on without waiting for a commit, and the writes are durable before anything the outside
world can observe (the run's end at the latest). A checkpoint of another node's invocation
(``foreign``) is written in its own unit before the answer. Either way a step whose checkpoint was
not committed when the engine died runs again on replay (at least once); a write that loses to
another invocation's after the read drops this invocation's outcome, and the run is replayed from
the memo.

The SDK only ever checkpoints finished steps: results of ``step.run``-like steps (``StepRun``),
and, when the experimental ``defer()`` is used, ``DeferAdd``/``DeferAbort`` ops, which stepwell
does not run. Anything but a finished step is refused with a 400 that names it, and nothing of
that checkpoint is recorded; the SDK then retries, gives up and returns its steps in its answer
to the call, which the engine records.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from stepwell.engine.api.auth import check_bearer
from stepwell.engine.api.responses import JSON, error
from stepwell.engine.drivers.http import HttpDriver
from stepwell.engine.drivers.http_wire import decode_op, memo_value
from stepwell.engine.engine import Engine
from stepwell.protocol.ops import StepFailed, StepRun
from stepwell.store.base import Tx
from stepwell.store.records import FINAL_STATUSES

log = logging.getLogger("stepwell.checkpoint")

MAX_CHECKPOINT_BODY = 64 * 1024 * 1024
Finished = StepRun | StepFailed


class _Conflict(Exception):
    """A step already has a different result: roll the whole checkpoint back."""


async def checkpoint_async(request: Request) -> Response:
    """Record the finished steps of a live invocation; 409 when its dispatch is stale."""
    denied = check_bearer(request)
    if denied is not None:
        return denied
    run_id = request.path_params["run_id"]
    parsed = await _parse(request, run_id)
    if isinstance(parsed, Response):
        return parsed
    qi_id, fn_id, ops = parsed
    engine: Engine = request.app.state.engine
    driver = engine.http if isinstance(engine.http, HttpDriver) else None
    owner = driver.owner(run_id, qi_id) if driver is not None else "foreign"
    if owner == "stale":
        return _stale(run_id, f"its invocation {qi_id!r} is over or was never made by this engine")
    if owner == "live" and driver is not None:
        refused = await engine.store.read(partial(_check, run_id, fn_id, ops))
        if refused is None and not await driver.checkpoint_live(qi_id, ops):
            refused = f"its invocation {qi_id!r} is over"
        return _stale(run_id, refused) if refused is not None else JSON({})
    now = engine.clock.now_ms()
    try:
        refused = await engine.store.run(partial(_record, run_id, fn_id, ops, now))
    except _Conflict as exc:
        refused = str(exc)
    if refused is not None:
        return _stale(run_id, refused)
    return JSON({})


async def _parse(
    request: Request, run_id: str
) -> tuple[str, str | None, list[Finished]] | Response:
    body = await request.body()
    if len(body) > MAX_CHECKPOINT_BODY:
        return error(413, "checkpoint body too large", "payload_too_large")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return error(400, f"body is not valid JSON: {exc}", "invalid_json")
    if not isinstance(payload, Mapping):
        return error(400, "body must be a JSON object", "invalid_request")
    if payload.get("run_id") not in (None, run_id):
        return error(400, f"body run_id {payload['run_id']!r} is not {run_id!r}", "invalid_request")
    qi_id, fn_id, steps = payload.get("qi_id"), payload.get("fn_id"), payload.get("steps")
    if not isinstance(qi_id, str) or not qi_id:
        return error(
            400, "field 'qi_id' must be the ctx.qi_id of the call request", "invalid_request"
        )
    if not isinstance(steps, list):
        return error(400, "field 'steps' must be an array of op objects", "invalid_request")
    ops = _finished_steps(steps)
    if isinstance(ops, str):
        log.warning("run %s: refused a checkpoint: %s", run_id, ops)
        return error(400, ops, "unsupported_op")
    return qi_id, fn_id if isinstance(fn_id, str) else None, ops


def _finished_steps(steps: Sequence[Any]) -> list[Finished] | str:
    """The steps as ops, or why they cannot be checkpointed."""
    ops: list[Finished] = []
    for i, item in enumerate(steps):
        if not isinstance(item, Mapping):
            return f"steps[{i}] is not an op object"
        op = decode_op(item, no_retry=False, retry_after=None)
        if not isinstance(op, StepRun | StepFailed):
            return (
                f"steps[{i}] is a {item.get('op')!r} op: only finished steps (StepRun, StepFailed) "
                "can be checkpointed; other ops belong in the answer to the call request"
            )
        ops.append(op)
    return ops


def _check(run_id: str, fn_id: str | None, ops: list[Finished], tx: Tx) -> str | None:
    """Why a live invocation's checkpoint is stale, or None: read only."""
    refused = _refused(tx, run_id, fn_id)
    if refused is not None:
        return refused
    held = {m.step_key: m.value for m in tx.get_memo(run_id, [op.key for op in ops])}
    for op in ops:
        if op.key in held and held[op.key] != memo_value(op):
            return f"step {op.step_id!r} already has another result"
    return None


def _refused(tx: Tx, run_id: str, fn_id: str | None) -> str | None:
    run = tx.get_run(run_id)
    if run is None:
        return "the run does not exist"
    if run.status in FINAL_STATUSES:
        return f"the run has ended ({run.status})"
    if fn_id is not None and fn_id != run.function_id:
        return f"the run belongs to {run.function_id!r}, not {fn_id!r}"
    return None


def _record(run_id: str, fn_id: str | None, ops: list[Finished], now: int, tx: Tx) -> str | None:
    """Memoize ``ops`` (first write wins); why the checkpoint is stale, or None."""
    refused = _refused(tx, run_id, fn_id)
    if refused is not None:
        return refused
    for op in ops:
        value = memo_value(op)
        if tx.put_memo(run_id, op.key, op.step_id, "run", value, now, None, 1, op.input):
            continue
        held = next((m.value for m in tx.get_memo(run_id, [op.key])), None)
        if held != value:
            raise _Conflict(f"step {op.step_id!r} already has another result")
    return None


def _stale(run_id: str, reason: str) -> Response:
    log.info("run %s: checkpoint refused as stale: %s", run_id, reason)
    return error(409, f"stale dispatch for run {run_id!r}: {reason}", "stale_dispatch")
