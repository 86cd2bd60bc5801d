"""The SDK's side of Inngest's call protocol: call requests in, responses out.

Pure functions of values (PROTOCOL.md §1.4, §1.5). :func:`decode_call_request` reads the body
the engine POSTs to the serve endpoint; :func:`encode_ops` and :func:`encode_result` write what
the official SDKs answer: 200 with the function's output, 206 with an array of op objects, or
500 with a serialised error and ``x-inngest-no-retry``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from stepwell.errors import StepwellError
from stepwell.protocol.durations import format_duration
from stepwell.protocol.ops import (
    CallRequest,
    CallResult,
    InvokeFunction,
    RunComplete,
    Sleep,
    StepError,
    StepFailed,
    StepOp,
    StepPlanned,
    StepRun,
    WaitForEvent,
)

__all__ = [
    "DISCOVERY_STEP_ID",
    "NO_RETRY_HEADER",
    "RETRY_AFTER_HEADER",
    "RUN_COMPLETE",
    "RUN_COMPLETE_KEY",
    "WireError",
    "decode_call_request",
    "encode_op",
    "encode_ops",
    "encode_result",
    "iso_utc",
]

DISCOVERY_STEP_ID = "step"
NO_RETRY_HEADER = "x-inngest-no-retry"
RETRY_AFTER_HEADER = "retry-after"
RUN_COMPLETE = "RunComplete"
# The TS SDK gives RunComplete, and a function's own error reported as an op, this id:
# sha1("complete") (PROTOCOL.md §1.6).
RUN_COMPLETE_KEY = "0737c22d3bfae812339732d14d8c7dbd6dc4e09c"
# When the engine does not say how many attempts a step has, never call a failure final: answer
# StepError and let the engine decide, as the official Python SDK does.
UNKNOWN_MAX_ATTEMPTS = 2**31 - 1

_JSON = {"content-type": "application/json"}


class WireError(StepwellError):
    """A call request body that does not have the protocol's shape."""

    code = "body_invalid"
    retriable = False


def decode_call_request(
    function_id: str,
    body: Mapping[str, Any],
    *,
    step_id: str | None,
    now_ms: int | None = None,
) -> CallRequest:
    """Read a call request body (PROTOCOL.md §1.4) into a :class:`CallRequest`.

    Args:
        function_id: the composite id from the ``fnId`` query parameter.
        body: the parsed JSON body: ``event``, ``events``, ``steps``, ``ctx``.
        step_id: the ``stepId`` query parameter; absent or ``"step"`` means discovery, anything
            else is the key of the one step to run.
        now_ms: the time to resolve ``RetryAfterError`` dates against; default: now.

    ``steps`` memo values pass through untouched (``{"data": x}``, ``{"error": e}``, ``null``,
    a raw event). Unknown fields are ignored, as the official SDKs ignore them.

    Raises:
        WireError: a required field is missing or has the wrong type; the message names it.
    """
    if not isinstance(body, Mapping):
        raise WireError("the call request body must be a JSON object")
    event = _require(body, "event", Mapping)
    events = body.get("events")
    if events is None or events == []:
        events = [event]
    elif not isinstance(events, list) or not all(isinstance(e, Mapping) for e in events):
        raise WireError("'events' must be an array of event objects")
    steps = body.get("steps")
    if steps is None:
        steps = {}
    elif not isinstance(steps, Mapping):
        raise WireError("'steps' must be an object of step key to memo")
    ctx = _require(body, "ctx", Mapping)
    run_id = _require(ctx, "run_id", str, where="ctx.")
    attempt = _integer(ctx, "attempt", default=0)
    max_attempts = _integer(ctx, "max_attempts", default=UNKNOWN_MAX_ATTEMPTS)
    disable = ctx.get("disable_immediate_execution", False)
    if not isinstance(disable, bool):
        raise WireError("'ctx.disable_immediate_execution' must be a boolean")
    return CallRequest(
        function_id=function_id,
        run_id=run_id,
        attempt=attempt,
        max_attempts=max_attempts,
        event=event,
        events=list(events),
        memo=dict(steps),
        stack=_stack(ctx.get("stack")),
        target_step=None if step_id in (None, "", DISCOVERY_STEP_ID) else step_id,
        disable_immediate_execution=disable,
        now_ms=int(time.time() * 1000) if now_ms is None else now_ms,
    )


def _require(body: Mapping[str, Any], name: str, kind: type, *, where: str = "") -> Any:
    value = body.get(name)
    if not isinstance(value, kind):
        what = "an object" if kind is Mapping else f"a {kind.__name__}"
        raise WireError(f"'{where}{name}' is required and must be {what}")
    return value


def _integer(ctx: Mapping[str, Any], name: str, *, default: int) -> int:
    value = ctx.get(name)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WireError(f"'ctx.{name}' must be a non-negative integer, not {value!r}")
    return value


def _stack(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    stack = raw.get("stack") if isinstance(raw, Mapping) else None
    if stack is None:
        return ()
    if not isinstance(stack, list) or not all(isinstance(k, str) for k in stack):
        raise WireError("'ctx.stack.stack' must be an array of step keys")
    return tuple(stack)


# -- responses -----------------------------------------------------------------------------------


def encode_ops(ops: Iterable[StepOp]) -> list[dict[str, Any]]:
    """The op objects of a 206 body (PROTOCOL.md §1.5.2), in order."""
    return [encode_op(op) for op in ops]


def encode_op(op: StepOp) -> dict[str, Any]:
    """One op object: ``id`` is the step key; ``name`` and ``displayName`` the step id, except
    where the protocol gives ``name`` a meaning of its own (sleeps and waits)."""
    wire: dict[str, Any] = {
        "id": op.key,
        "op": type(op).__name__,
        "name": op.step_id,
        "displayName": op.step_id,
        "userland": {"id": op.step_id},
    }
    if isinstance(op, RunComplete):
        return {"id": RUN_COMPLETE_KEY, "op": RUN_COMPLETE, "data": op.output}
    if isinstance(op, StepRun):
        wire["data"] = op.data
    elif isinstance(op, StepPlanned):
        wire["opts"] = {"type": "step.run"}
    elif isinstance(op, StepError | StepFailed):
        wire["error"] = op.error
    elif isinstance(op, Sleep):
        wire["name"] = _sleep_value(op)
        wire["opts"] = {"duration": wire["name"]}
    elif isinstance(op, WaitForEvent):
        wire["name"] = op.event
        opts: dict[str, Any] = {"event": op.event, "timeout": format_duration(op.timeout_ms)}
        if op.expression:
            opts["if"] = op.expression
        wire["opts"] = opts
    elif isinstance(op, InvokeFunction):
        payload: dict[str, Any] = {"data": op.data}
        if op.user:
            payload["user"] = op.user
        wire["opts"] = {
            "function_id": op.function_id,
            "payload": payload,
            "timeout": format_duration(op.timeout_ms),
        }
    else:
        raise TypeError(f"{type(op).__name__} is not an op the call protocol carries")
    if isinstance(op, StepRun | StepFailed) and op.input is not None:
        wire["opts"] = {"type": "step.run", "input": op.input}
    return wire


def _sleep_value(op: Sleep) -> str:
    # A relative sleep is a Go-style duration; an absolute one an ISO-8601 UTC date with
    # milliseconds and "Z", the form the Python SDK sends and the engine parses as a date.
    if op.until_ms is not None:
        return iso_utc(op.until_ms)
    return format_duration(op.duration_ms or 0)


def iso_utc(epoch_ms: int) -> str:
    """``2030-01-01T09:00:00.000Z`` for epoch milliseconds."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def encode_result(result: CallResult) -> tuple[int, dict[str, str], bytes]:
    """The HTTP answer to a call request: ``(status, headers, body)``.

    * the handler returned: 200, its output as JSON;
    * it stopped at steps: 206, the op array; a ``StepError`` or ``StepFailed`` adds
      ``x-inngest-no-retry`` (``true`` unless a retriable ``StepError``) and ``retry-after``;
    * it raised: 500, ``{"name", "message", "stack"}``, ``x-inngest-no-retry`` and, for a
      ``RetryAfterError``, ``retry-after`` in whole seconds.

    Headers are lower-case; only the protocol's own are set here.
    """
    headers = dict(_JSON)
    if result.done and result.error is None:
        return 200, headers, _dumps(result.output)
    if result.done:
        assert result.error is not None
        headers[NO_RETRY_HEADER] = "false" if result.retriable else "true"
        _retry_after(headers, result.retry_after_ms)
        return 500, headers, _dumps(_error_body(result.error))
    failures = [op for op in result.ops if isinstance(op, StepError | StepFailed)]
    if failures:
        final = any(isinstance(op, StepFailed) or not op.retriable for op in failures)
        headers[NO_RETRY_HEADER] = "true" if final else "false"
        delays = [op.retry_after_ms for op in failures if isinstance(op, StepError)]
        _retry_after(headers, max((d for d in delays if d is not None), default=None))
    return 206, headers, _dumps(encode_ops(result.ops))


def _error_body(error: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": str(error.get("name") or "Error"),
        "message": str(error.get("message") or ""),
    }
    body["stack"] = error.get("stack")
    body.update({k: v for k, v in error.items() if k not in body})
    return body


def _retry_after(headers: dict[str, str], delay_ms: int | None) -> None:
    if delay_ms is not None:
        # Whole seconds, rounded up, at least one: the integer form every server accepts.
        headers[RETRY_AFTER_HEADER] = str(max(1, math.ceil(delay_ms / 1000)))


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        # orjson stops at 64-bit integers; the standard library writes any integer.
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
