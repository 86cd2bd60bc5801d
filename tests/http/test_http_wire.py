"""The engine's side of the call protocol as pure functions: request bodies out, answers in."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from stepwell.engine.drivers.http_wire import (
    RUN_COMPLETE_KEY,
    call_body,
    decode_op,
    decode_response,
)
from stepwell.protocol.ops import (
    CallRequest,
    DiscoveryRequest,
    InvokeFunction,
    Sleep,
    StepError,
    StepFailed,
    StepPlanned,
    StepRun,
    WaitForEvent,
)

NOW = 1_760_000_000_000
SDK = {"X-Inngest-SDK": "inngest-js:v4.24.0", "x-inngest-req-version": "2"}
A = hashlib.sha1(b"a").hexdigest()
B = hashlib.sha1(b"b").hexdigest()
_NO: dict[str, Any] = {"no_retry": False, "retry_after": None}


def _request(**changes: Any) -> CallRequest:
    fields: dict[str, Any] = {
        "function_id": "app-fn",
        "run_id": "01RUN",
        "attempt": 0,
        "max_attempts": 4,
        "event": {"name": "t/go", "data": {}, "ts": 1.0e12},
        "events": [],
        "memo": {A: {"data": "A"}},
        "stack": [A],
    }
    fields.update(changes)
    return CallRequest(**fields)


def _decode(status: int, body: Any, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return decode_response(status, {**SDK, **(headers or {})}, raw, now_ms=NOW)


# -- call bodies ----------------------------------------------------------------------------


def test_a_discovery_call_names_the_function_and_invocation_for_checkpointing() -> None:
    ctx = call_body(_request(), fn_id="app-fn", qi_id="node:1")["ctx"]
    assert (ctx["fn_id"], ctx["qi_id"], ctx["step_id"]) == ("app-fn", "node:1", "step")
    assert ctx["stack"] == {"stack": [A], "current": 1}


def test_targeted_and_plan_only_calls_never_turn_checkpointing_on() -> None:
    targeted = call_body(_request(target_step=B), fn_id="app-fn", qi_id="node:1")["ctx"]
    plan_only = call_body(
        _request(disable_immediate_execution=True), fn_id="app-fn", qi_id="node:1"
    )["ctx"]
    without = call_body(_request())["ctx"]
    for ctx in (targeted, plan_only, without):
        assert "fn_id" not in ctx and "qi_id" not in ctx
    assert targeted["step_id"] == B


def test_event_timestamps_are_sent_as_integers() -> None:
    body = call_body(_request())
    assert body["event"]["ts"] == 1_000_000_000_000 and isinstance(body["event"]["ts"], int)
    assert body["events"] == [body["event"]] and body["use_api"] is False


# -- answers --------------------------------------------------------------------------------


def test_a_200_is_the_functions_return_value() -> None:
    result = _decode(200, {"ok": True})
    assert (result.done, result.output, result.error) == (True, {"ok": True}, None)


def test_run_complete_ends_the_run_with_its_data() -> None:
    result = _decode(206, [{"op": "RunComplete", "id": RUN_COMPLETE_KEY, "data": "AB"}])
    assert (result.done, result.output, result.error, result.ops) == (True, "AB", None, ())


def test_run_complete_brings_the_steps_still_in_the_sdks_checkpoint_buffer() -> None:
    body = [
        {"op": "StepRun", "id": B, "name": "b", "data": "AB", "userland": {"id": "b"}},
        {"op": "RunComplete", "id": RUN_COMPLETE_KEY, "data": "AB"},
    ]
    result = _decode(206, body)
    assert result.done and result.output == "AB"
    assert result.ops == (StepRun(B, "b", "AB"),)


def test_a_function_error_sent_as_an_op_with_the_run_complete_id_ends_the_run() -> None:
    error = {"name": "Error", "message": "boom"}
    final = _decode(206, [{"op": "StepFailed", "id": RUN_COMPLETE_KEY, "error": error}])
    retried = _decode(206, [{"op": "StepError", "id": RUN_COMPLETE_KEY, "error": error}])
    assert (final.done, final.error, final.retriable) == (True, error, False)
    assert (retried.done, retried.retriable) == (True, True)


def test_a_discovery_request_asks_for_another_call() -> None:
    key = hashlib.sha1(b"discovery-request-1760000000000").hexdigest()
    result = _decode(206, [{"op": "DiscoveryRequest", "id": key}])
    assert not result.done
    assert [type(op) for op in result.ops] == [DiscoveryRequest]


def test_a_halt_after_a_stale_checkpoint_asks_for_a_call_with_a_fresh_memo() -> None:
    error = {"name": "StaleDispatchError", "message": "Stale dispatch: checkpoint returned 409"}
    result = _decode(400, {**error, "__serialized": True}, {"x-inngest-no-retry": "true"})
    assert not result.done
    assert [type(op) for op in result.ops] == [DiscoveryRequest]


def test_a_step_error_carries_no_retry_and_retry_after() -> None:
    op = {"op": "StepError", "id": A, "name": "a", "error": {"name": "Error", "message": "x"}}
    plain = _decode(206, [op], {"x-inngest-no-retry": "false"})
    final = _decode(206, [op], {"x-inngest-no-retry": "true", "retry-after": "30"})
    dated = _decode(206, [op], {"retry-after": "2025-10-09T09:07:00Z"})
    assert plain.ops == (StepError(A, "a", {"name": "Error", "message": "x"}),)
    [stop] = final.ops
    assert isinstance(stop, StepError) and not stop.retriable and stop.retry_after_ms == 30_000
    [later] = dated.ops
    assert isinstance(later, StepError) and later.retry_after_ms == 1_760_000_820_000 - NOW


def test_retry_after_is_clamped_to_a_second_and_a_day() -> None:
    error = {"name": "Error", "message": "slow down"}
    soon = _decode(500, error, {"retry-after": "0"})
    far = _decode(500, error, {"retry-after": "9999999"})
    assert soon.retry_after_ms == 1000 and far.retry_after_ms == 24 * 3600 * 1000
    assert soon.done and soon.retriable


def test_a_400_with_no_retry_fails_the_run_for_good() -> None:
    result = _decode(
        400, {"name": "NonRetriableError", "message": "no"}, {"x-inngest-no-retry": "true"}
    )
    assert (result.done, result.retriable) == (True, False)
    assert result.error == {"name": "NonRetriableError", "message": "no"}


def test_sleep_takes_a_duration_or_an_iso_date() -> None:
    relative = decode_op({"op": "Sleep", "id": A, "name": "1h", "displayName": "nap"}, **_NO)
    dated = decode_op(
        {"op": "Sleep", "id": A, "name": "2030-01-01T00:00:00.000Z", "userland": {"id": "nap"}},
        **_NO,
    )
    in_opts = decode_op({"op": "Sleep", "id": A, "opts": {"duration": "90s"}}, **_NO)
    assert relative == Sleep(A, "nap", duration_ms=3_600_000)
    assert dated == Sleep(A, "nap", until_ms=1_893_456_000_000)
    assert isinstance(in_opts, Sleep) and in_opts.duration_ms == 90_000


def test_wait_for_event_reads_its_event_timeout_and_condition() -> None:
    op = decode_op(
        {
            "op": "WaitForEvent",
            "id": A,
            "name": "app/approved",
            "userland": {"id": "w"},
            "opts": {"timeout": "3d", "if": "event.data.id == async.data.id"},
        },
        **_NO,
    )
    assert op == WaitForEvent(
        A, "w", "app/approved", 3 * 86_400_000, "event.data.id == async.data.id"
    )
    bare = decode_op({"op": "WaitForEvent", "id": A, "opts": {"event": "x/y"}}, **_NO)
    assert isinstance(bare, WaitForEvent) and bare.event == "x/y" and bare.expression is None


def test_invoke_function_reads_target_payload_and_timeout() -> None:
    op = decode_op(
        {
            "op": "InvokeFunction",
            "id": A,
            "userland": {"id": "call"},
            "opts": {
                "function_id": "app-child",
                "payload": {"data": {"n": 5}, "user": {"id": "u"}, "v": "1"},
                "timeout": "1h",
            },
        },
        **_NO,
    )
    assert op == InvokeFunction(A, "call", "app-child", {"n": 5}, 3_600_000, {"id": "u"})
    untimed = decode_op({"op": "InvokeFunction", "id": A, "opts": {"function_id": "f"}}, **_NO)
    assert isinstance(untimed, InvokeFunction) and untimed.timeout_ms == 366 * 86_400_000


def test_planned_and_finished_steps() -> None:
    body = [
        {"op": "StepPlanned", "id": A, "displayName": "a", "opts": {"type": "step.run"}},
        {"op": "StepFailed", "id": B, "name": "b", "error": {"name": "E", "message": "m"}},
        {"op": "Step", "id": A, "name": "a", "data": {"data": 1}},
        {"op": "DeferAdd", "id": B},
    ]
    result = _decode(206, body)
    assert result.ops == (
        StepPlanned(A, "a"),
        StepFailed(B, "b", {"name": "E", "message": "m"}),
        StepRun(A, "a", 1),
    )


def test_a_201_stream_is_decoded_from_its_final_object() -> None:
    final = {
        "status": 206,
        "headers": {"x-inngest-no-retry": "false"},
        "body": orjson.dumps([{"op": "StepRun", "id": A, "name": "a", "data": "A"}]).decode(),
    }
    result = _decode(201, b"   \n  " + orjson.dumps(final))
    assert result.ops == (StepRun(A, "a", "A"),)
    broken = _decode(201, b"   ")
    assert broken.done and broken.retriable and "final JSON" in str(broken.error)


def test_a_2xx_without_the_sdk_header_did_not_come_from_an_sdk() -> None:
    result = decode_response(200, {"content-type": "text/html"}, b"<html>", now_ms=NOW)
    assert result.done and result.retriable
    assert "did not come from an Inngest SDK" in (result.error or {})["message"]


def test_a_401_means_the_app_refused_the_signature() -> None:
    result = _decode(401, {"message": "Unauthorized"})
    assert result.done and result.retriable
    assert "signature" in (result.error or {})["message"]


def test_a_206_with_something_other_than_ops_is_a_retriable_failure() -> None:
    result = _decode(206, ["not an op"])
    assert result.done and result.retriable and "non-object op" in str(result.error)
