"""REST API v1, in the shapes of Inngest's: events, their runs, runs, cancellation."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from stepwell.engine.api.responses import JSON, error, from_exception
from stepwell.engine.engine import Engine
from stepwell.engine.operations import rerun_from_step
from stepwell.errors import StepwellError
from stepwell.store.records import EventRecord, RunFilter, RunRecord

STATUSES = {"Queued", "Running", "Completed", "Failed", "Cancelled"}


def run_json(run: RunRecord) -> dict[str, Any]:
    """A run as the REST API shows it."""
    return {
        "run_id": run.run_id,
        "function_id": run.function_id,
        "function_version": run.function_version,
        "app_id": run.app_id,
        "status": run.status,
        "output": run.output,
        "error": run.error,
        "event_id": run.event_id,
        "event_ids": list(run.event_ids),
        "attempt": run.attempt,
        "queued_at": run.created_at,
        "run_started_at": run.started_at,
        "ended_at": run.ended_at,
        "cancel_reason": run.cancel_reason,
        "parent_run_id": run.parent_run_id,
    }


def event_json(event: EventRecord) -> dict[str, Any]:
    """An event as the REST API shows it."""
    return {
        "internal_id": event.event_id,
        "id": event.dedupe_key or event.event_id,
        "name": event.name,
        "data": event.data,
        "user": event.user,
        "ts": event.ts,
        "received_at": event.received_at,
    }


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_event(request: Request) -> Response:
    event_id = request.path_params["event_id"]
    event = await _engine(request).store.read(lambda tx: tx.get_event(event_id))
    if event is None:
        return error(404, f"event {event_id!r} not found", "not_found")
    return JSON({"data": event_json(event)})


async def list_events(request: Request) -> Response:
    limit = _limit(request)
    if isinstance(limit, Response):
        return limit
    name, cursor = request.query_params.get("name"), request.query_params.get("cursor")
    events = await _engine(request).store.read(lambda tx: tx.list_events(name, cursor, limit))
    return JSON({"data": [event_json(e) for e in events]})


async def event_runs(request: Request) -> Response:
    event_id = request.path_params["event_id"]
    engine = _engine(request)
    event = await engine.store.read(lambda tx: tx.get_event(event_id))
    if event is None:
        return error(404, f"event {event_id!r} not found", "not_found")
    runs, skips = await engine.store.read(
        lambda tx: (tx.runs_for_event(event_id), tx.skips_for_event(event_id))
    )
    # "skipped": functions whose trigger matched but whose flow control started no run.
    skipped = [{"function_id": f, "reason": reason} for f, reason in skips]
    return JSON({"data": [run_json(r) for r in runs], "skipped": skipped})


async def get_run(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    try:
        run = await _engine(request).get_run(run_id)
    except StepwellError as exc:
        return from_exception(exc)
    return JSON({"data": run_json(run)})


async def run_steps(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    engine = _engine(request)
    try:
        await engine.get_run(run_id)
    except StepwellError as exc:
        return from_exception(exc)
    memo = await engine.store.read(lambda tx: tx.get_memo(run_id))
    return JSON(
        {
            "data": [
                {
                    "step_key": m.step_key,
                    "step_id": m.step_id,
                    "kind": m.kind,
                    "output": m.value,
                    "input": m.input,
                    "seq": m.seq,
                    "started_at": m.started_at,
                    "ended_at": m.created_at,
                }
                for m in memo
            ]
        }
    )


async def rerun_run(request: Request) -> Response:
    """``POST /v1/runs/{run_id}/rerun``: a new run of the same function with the same events;
    with ``step_key``, from that step (earlier steps memoized), optionally with its ``input``
    (the list of its arguments) or earlier steps' ``outputs`` (step key to output) edited."""
    run_id = request.path_params["run_id"]
    body: Any = {}
    if raw := await request.body():
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return error(400, f"body is not valid JSON: {exc}", "invalid_json")
    if not isinstance(body, dict):
        return error(400, "body must be a JSON object")
    step_key, outputs = body.get("step_key"), body.get("outputs") or {}
    if step_key is not None and not isinstance(step_key, str):
        return error(400, "field 'step_key' must be a string (a step_key of GET .../steps)")
    if not isinstance(outputs, dict):
        return error(400, "field 'outputs' must be an object of step key to output")
    try:
        run = await rerun_from_step(_engine(request), run_id, step_key, outputs, body.get("input"))
    except StepwellError as exc:
        return from_exception(exc)
    return JSON({"data": run_json(run)}, status_code=201)


async def cancel_run(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    try:
        await _engine(request).cancel(run_id, "cancelled through the REST API")
        run = await _engine(request).get_run(run_id)
    except StepwellError as exc:
        return from_exception(exc)
    return JSON({"data": run_json(run)})


async def pause_function(request: Request) -> Response:
    return await _set_paused(request, True)


async def resume_function(request: Request) -> Response:
    return await _set_paused(request, False)


async def _set_paused(request: Request, paused: bool) -> Response:
    function_id = request.path_params["function_id"]
    try:
        changed = await _engine(request).pause(function_id, paused)
    except StepwellError as exc:
        return from_exception(exc)
    return JSON({"data": {"function_id": function_id, "paused": paused, "changed": changed}})


async def list_runs(request: Request) -> Response:
    limit = _limit(request)
    if isinstance(limit, Response):
        return limit
    q = request.query_params
    status = q.get("status")
    if status is not None and status not in STATUSES:
        return error(400, f"status must be one of {sorted(STATUSES)}, not {status!r}")
    flt = RunFilter(
        function_id=q.get("function_id"),
        status=status,
        cursor=q.get("cursor"),
        limit=limit,
    )
    runs = await _engine(request).store.read(lambda tx: tx.list_runs(flt))
    return JSON({"data": [run_json(r) for r in runs]})


def _limit(request: Request) -> int | Response:
    raw = request.query_params.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        return error(400, "limit must be an integer from 1 to 500")
    return int(raw)
