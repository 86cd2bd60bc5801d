"""The engine's side of Inngest's call protocol: request bodies out, responses in.

Pure functions of values (PROTOCOL.md §1.4–§1.7); the HTTP driver does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from stepwell.errors import ConfigError
from stepwell.protocol.durations import parse_duration, parse_time
from stepwell.protocol.ops import (
    CallRequest,
    CallResult,
    DiscoveryRequest,
    Gateway,
    InvokeFunction,
    Sleep,
    StepError,
    StepFailed,
    StepOp,
    StepPlanned,
    StepRun,
    WaitForEvent,
)
from stepwell.protocol.wire import RUN_COMPLETE, RUN_COMPLETE_KEY

# What the TS SDK throws, and answers its call with, after /v1/checkpoint answered 409.
STALE_DISPATCH = "StaleDispatchError"
MAX_RETRY_AFTER_MS = 24 * 3600 * 1000


def call_body(
    request: CallRequest,
    *,
    version: int = -1,
    fn_id: str | None = None,
    qi_id: str | None = None,
    use_api: bool = False,
) -> dict[str, Any]:
    """The JSON body of a call request (PROTOCOL.md §1.4).

    ``use_api`` sends the body trimmed (no events, no memo): the SDK fetches them from
    ``/v0/runs/{run_id}/batch`` and ``/actions`` instead (for state past the body limit).

    ``fn_id`` and ``qi_id`` (the function, and this invocation for ``/v1/checkpoint``) are sent
    only on a discovery call that may run a step inline: there, their presence turns on the TS
    SDK's async checkpointing (§1.11), which it never uses on a targeted call anyway. The Python
    SDK ignores both.
    """
    stack = list(request.stack)
    events = [_event(e) for e in request.events] or [_event(request.event)]
    ctx: dict[str, Any] = {
        "run_id": request.run_id,
        "attempt": request.attempt,
        "max_attempts": request.max_attempts,
        "disable_immediate_execution": request.disable_immediate_execution,
        "use_api": use_api,
        "stack": {"stack": stack, "current": len(stack)},
        "step_id": request.target_step or "step",
        "env": "",
    }
    discovery = request.target_step is None and not request.disable_immediate_execution
    if fn_id and qi_id and discovery:
        ctx["fn_id"] = fn_id
        ctx["qi_id"] = qi_id
    return {
        "event": _event(request.event),
        "events": [] if use_api else events,
        "steps": {} if use_api else dict(request.memo),
        "version": version,
        "use_api": use_api,
        "ctx": ctx,
    }


def memo_value(op: StepRun | StepFailed) -> dict[str, Any]:
    """The memo of a finished step (PROTOCOL.md §1.7)."""
    return {"data": op.data} if isinstance(op, StepRun) else {"error": op.error}


def _event(event: Mapping[str, Any]) -> dict[str, Any]:
    # The Python SDK validates strictly: ts must be an integer, data an object, user present.
    wire = dict(event)
    wire["data"] = wire.get("data") or {}
    wire["user"] = wire.get("user") or {}
    if "ts" in wire and wire["ts"] is not None:
        wire["ts"] = int(wire["ts"])
    return wire


def decode_response(
    status: int, headers: Mapping[str, str], body: bytes, *, now_ms: int
) -> CallResult:
    """Turn an SDK's answer into a :class:`CallResult` (PROTOCOL.md §1.5).

    A run that ended in a 206 (``RunComplete``, from the TS SDK) may carry finished steps it had
    not checkpointed yet: they come back in ``ops`` of the done result, for the driver to record.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    if 200 <= status < 300 and "x-inngest-sdk" not in lower:
        return _failure(
            f"the response ({status}) did not come from an Inngest SDK: is the app's URL right?",
            retriable=True,
        )
    if status == 201:
        return _decode_stream(body, now_ms=now_ms)
    payload = _json(body)
    no_retry = lower.get("x-inngest-no-retry", "false").strip().lower() == "true"
    retry_after = _retry_after_ms(lower.get("retry-after"), now_ms)
    if status == 200:
        return CallResult(done=True, output=payload)
    if status == 206:
        items = payload if isinstance(payload, list) else [payload]
        return _decode_ops(items, no_retry=no_retry, retry_after=retry_after)
    if status == 401:
        return _failure("the app refused the request signature (401): check the signing keys", True)
    error = _error(payload, status)
    if error["name"] == STALE_DISPATCH:
        # The SDK halted because /v1/checkpoint answered 409: whatever this invocation knew is
        # outdated, so the run is invoked again with its memo reloaded (or dropped if it ended).
        return CallResult(done=False, ops=(DiscoveryRequest(),))
    return CallResult(done=True, error=error, retriable=not no_retry, retry_after_ms=retry_after)


def _decode_stream(body: bytes, *, now_ms: int) -> CallResult:
    text = body.decode(errors="replace").strip()
    try:
        final = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _failure("the streamed response ended without its final JSON object", True)
    inner = final.get("body", "")
    raw = inner.encode() if isinstance(inner, str) else orjson.dumps(inner)
    headers = {str(k): str(v) for k, v in (final.get("headers") or {}).items()}
    headers.setdefault("x-inngest-sdk", "streamed")
    return decode_response(int(final.get("status", 500)), headers, raw, now_ms=now_ms)


def _decode_ops(items: Sequence[Any], *, no_retry: bool, retry_after: int | None) -> CallResult:
    ops: list[StepOp] = []
    for item in items:
        if not isinstance(item, Mapping):
            return _failure(f"a 206 body held a non-object op: {item!r}"[:300], True)
        ending = _ending(item, no_retry=no_retry, retry_after=retry_after)
        if ending is not None:
            # Steps the SDK still held in its checkpoint buffer come first; record them.
            finished = tuple(op for op in ops if isinstance(op, StepRun | StepFailed))
            return CallResult(
                done=True,
                output=ending.output,
                error=ending.error,
                retriable=ending.retriable,
                retry_after_ms=ending.retry_after_ms,
                ops=finished,
            )
        op = decode_op(item, no_retry=no_retry, retry_after=retry_after)
        if op is not None:
            ops.append(op)
    return CallResult(done=False, ops=tuple(ops))


def _ending(
    item: Mapping[str, Any], *, no_retry: bool, retry_after: int | None
) -> CallResult | None:
    """The run's end when an op reports it: ``RunComplete``, or the function's own error that
    the TS SDK sends as a StepError/StepFailed with the RunComplete id when ops ride along."""
    code = item.get("op")
    if code == RUN_COMPLETE:
        return CallResult(done=True, output=item.get("data"))
    if code in ("StepError", "StepFailed") and item.get("id") == RUN_COMPLETE_KEY:
        retriable = code == "StepError" and not no_retry
        error = _error(item.get("error"), 500)
        return CallResult(done=True, error=error, retriable=retriable, retry_after_ms=retry_after)
    return None


def decode_op(item: Mapping[str, Any], *, no_retry: bool, retry_after: int | None) -> StepOp | None:
    """One op object of a 206 body; None for ops that ask nothing of the engine."""
    code = item.get("op")
    key = str(item.get("id", ""))
    step_id = _step_id(item)
    opts = item.get("opts") or {}
    if code in ("StepRun", "Step"):
        return StepRun(key, step_id, _unwrap_data(item.get("data")), input=_input(opts))
    if code == "StepPlanned":
        return StepPlanned(key, step_id)
    if code == "DiscoveryRequest":
        return DiscoveryRequest(key, step_id)
    if code == "StepError":
        error = _error(item.get("error"), 500)
        return StepError(key, step_id, error, retriable=not no_retry, retry_after_ms=retry_after)
    if code == "StepFailed":
        return StepFailed(key, step_id, _error(item.get("error"), 500), input=_input(opts))
    if code == "Sleep":
        return _sleep(key, step_id, opts.get("duration") or item.get("name"))
    if code == "WaitForEvent":
        event = opts.get("event") or item.get("name")
        timeout = parse_duration(opts.get("timeout") or "366d", field="waitForEvent timeout")
        return WaitForEvent(key, step_id, str(event), timeout, opts.get("if") or None)
    if code == "Gateway":
        body = opts.get("body")
        return Gateway(
            key,
            step_id,
            str(opts.get("url") or ""),
            str(opts.get("method") or "GET").upper(),
            {str(k): str(v) for k, v in (opts.get("headers") or {}).items()},
            body if isinstance(body, str) or body is None else orjson.dumps(body).decode(),
        )
    if code == "InvokeFunction":
        payload = opts.get("payload") or {}
        invoke_timeout = opts.get("timeout")
        timeout_ms = (
            parse_duration(invoke_timeout, field="invoke timeout")
            if invoke_timeout
            else 366 * 86_400_000
        )
        return InvokeFunction(
            key,
            step_id,
            str(opts.get("function_id", "")),
            dict(payload.get("data") or {}),
            timeout_ms,
            dict(payload.get("user") or {}),
        )
    return None


def _input(opts: Any) -> list[Any] | None:
    # step.run(id, fn, ...args): the TS SDK reports the arguments as opts.input
    args = opts.get("input") if isinstance(opts, Mapping) else None
    return list(args) if isinstance(args, list) else None


def _sleep(key: str, step_id: str, value: Any) -> Sleep:
    text = str(value or "0s")
    try:
        return Sleep(key, step_id, duration_ms=parse_duration(text, field="sleep"))
    except ConfigError:
        return Sleep(key, step_id, until_ms=parse_time(_iso(text), field="sleep"))


def _iso(text: str) -> str:
    # Inngest's SDKs send absolute sleeps as ISO-8601 UTC with a "Z".
    return text.replace("Z", "+00:00") if text.endswith("Z") else text


def _step_id(item: Mapping[str, Any]) -> str:
    userland = item.get("userland") or {}
    return str(
        userland.get("id") or item.get("displayName") or item.get("name") or item.get("id", "")
    )


def _unwrap_data(data: Any) -> Any:
    # StepRun data is never wrapped; the legacy "Step" op sometimes is.
    if isinstance(data, Mapping) and set(data) == {"data"}:
        return data["data"]
    return data


def _error(payload: Any, status: int) -> dict[str, Any]:
    if isinstance(payload, Mapping):
        name = payload.get("name") or payload.get("code") or "Error"
        message = payload.get("message") or payload.get("error") or f"the app answered {status}"
        error: dict[str, Any] = {"name": str(name), "message": str(message)}
        if payload.get("stack"):
            error["stack"] = str(payload["stack"])
        return error
    return {"name": "Error", "message": f"the app answered {status}: {str(payload)[:500]}"}


def _failure(message: str, retriable: bool) -> CallResult:
    return CallResult(
        done=True, error={"name": "HTTPDriverError", "message": message}, retriable=retriable
    )


def _json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace")


def _retry_after_ms(value: str | None, now_ms: int) -> int | None:
    if not value:
        return None
    value = value.strip()
    try:
        if len(value) <= 7 and value.isdigit():
            delay = int(value) * 1000
        else:
            delay = int(datetime.fromisoformat(_iso(value)).timestamp() * 1000) - now_ms
    except ValueError:
        return None
    return min(max(delay, 1000), MAX_RETRY_AFTER_MS)
