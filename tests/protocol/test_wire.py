"""The SDK's side of the call protocol: call request bodies in, 200/206/500 answers out."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stepwell.protocol.ops import (
    CallResult,
    InvokeFunction,
    SendEvent,
    Sleep,
    StepError,
    StepFailed,
    StepPlanned,
    StepRun,
    WaitForEvent,
)
from stepwell.protocol.wire import (
    UNKNOWN_MAX_ATTEMPTS,
    WireError,
    decode_call_request,
    encode_op,
    encode_ops,
    encode_result,
    iso_utc,
)


def h(step_id: str) -> str:
    return hashlib.sha1(step_id.encode()).hexdigest()


EVENT = {"id": "01EVT", "name": "demo/go", "data": {"n": 1}, "user": {}, "ts": 1760000000000}


def body(**overrides: Any) -> dict[str, Any]:
    """A call request body as PROTOCOL.md §1.4 and Appendix B show it."""
    ctx = {
        "run_id": "01RUN",
        "attempt": 0,
        "max_attempts": 5,
        "disable_immediate_execution": False,
        "use_api": False,
        "stack": {"stack": [h("a")], "current": 1},
        "step_id": "step",
        "env": "",
    }
    ctx.update(overrides.pop("ctx", {}))
    wire: dict[str, Any] = {
        "event": EVENT,
        "events": [EVENT],
        "steps": {h("a"): {"data": "A"}},
        "version": -1,
        "use_api": False,
        "ctx": ctx,
    }
    wire.update(overrides)
    return wire


# -- decoding call requests ----------------------------------------------------------------------


def test_a_discovery_request_is_decoded_field_by_field() -> None:
    request = decode_call_request("my-app-demo", body(), step_id="step", now_ms=42)
    assert request.function_id == "my-app-demo"
    assert request.run_id == "01RUN"
    assert request.attempt == 0
    assert request.max_attempts == 5
    assert request.event == EVENT
    assert list(request.events) == [EVENT]
    assert request.memo == {h("a"): {"data": "A"}}
    assert tuple(request.stack) == (h("a"),)
    assert request.target_step is None
    assert request.disable_immediate_execution is False
    assert request.now_ms == 42


@pytest.mark.parametrize("step_id", [None, "", "step"])
def test_step_query_absent_or_step_means_discovery(step_id: str | None) -> None:
    assert decode_call_request("f", body(), step_id=step_id).target_step is None


def test_any_other_step_query_targets_that_step() -> None:
    assert decode_call_request("f", body(), step_id=h("b")).target_step == h("b")


def test_memo_values_pass_through_untouched() -> None:
    steps = {
        h("run"): {"data": {"nested": [1, 2]}},
        h("fail"): {"error": {"name": "Error", "message": "boom"}},
        h("sleep"): None,
        h("wait"): {"name": "app/approved", "data": {"id": 1}, "ts": 1},
        h("raw"): "not wrapped",
    }
    request = decode_call_request("f", body(steps=steps), step_id=None)
    assert request.memo == steps


def test_attempt_flags_and_retries_are_read_from_ctx() -> None:
    wire = body(ctx={"attempt": 3, "max_attempts": 4, "disable_immediate_execution": True})
    request = decode_call_request("f", wire, step_id=None)
    assert (request.attempt, request.max_attempts) == (3, 4)
    assert request.disable_immediate_execution is True


def test_a_float_attempt_that_is_whole_is_read_as_an_integer() -> None:
    # JCS writes 2.0 as 2, but a server may still send a float.
    assert decode_call_request("f", body(ctx={"attempt": 2.0}), step_id=None).attempt == 2


def test_missing_optional_fields_get_protocol_defaults() -> None:
    wire = {"event": EVENT, "ctx": {"run_id": "R"}}
    request = decode_call_request("f", wire, step_id=None)
    assert request.attempt == 0
    assert request.max_attempts == UNKNOWN_MAX_ATTEMPTS
    assert list(request.events) == [EVENT]
    assert request.memo == {}
    assert tuple(request.stack) == ()
    assert request.disable_immediate_execution is False


def test_trimmed_events_fall_back_to_the_first_event() -> None:
    assert list(decode_call_request("f", body(events=[]), step_id=None).events) == [EVENT]


def test_a_batch_is_kept_whole() -> None:
    second = {**EVENT, "id": "02"}
    request = decode_call_request("f", body(events=[EVENT, second]), step_id=None)
    assert list(request.events) == [EVENT, second]


def test_null_stack_is_an_empty_stack() -> None:
    request = decode_call_request("f", body(ctx={"stack": {"stack": None}}), step_id=None)
    assert tuple(request.stack) == ()


def test_now_defaults_to_the_wall_clock() -> None:
    assert decode_call_request("f", body(), step_id=None).now_ms > 1_600_000_000_000


def test_unknown_fields_are_ignored() -> None:
    wire = body(defers={}, extra=[1], ctx={"fn_id": "x", "qi_id": "q"})
    assert decode_call_request("f", wire, step_id=None).run_id == "01RUN"


@pytest.mark.parametrize(
    ("wire", "field"),
    [
        ([], "body"),
        ({"ctx": {"run_id": "R"}}, "'event'"),
        ({"event": "x", "ctx": {"run_id": "R"}}, "'event'"),
        ({"event": EVENT}, "'ctx'"),
        ({"event": EVENT, "ctx": {}}, "'ctx.run_id'"),
        ({"event": EVENT, "ctx": {"run_id": 7}}, "'ctx.run_id'"),
        ({"event": EVENT, "ctx": {"run_id": "R", "attempt": "1"}}, "'ctx.attempt'"),
        ({"event": EVENT, "ctx": {"run_id": "R", "attempt": True}}, "'ctx.attempt'"),
        ({"event": EVENT, "ctx": {"run_id": "R", "attempt": -1}}, "'ctx.attempt'"),
        ({"event": EVENT, "ctx": {"run_id": "R", "attempt": 1.5}}, "'ctx.attempt'"),
        ({"event": EVENT, "ctx": {"run_id": "R", "max_attempts": "5"}}, "'ctx.max_attempts'"),
        (
            {"event": EVENT, "ctx": {"run_id": "R", "disable_immediate_execution": "no"}},
            "disable_immediate_execution",
        ),
        ({"event": EVENT, "ctx": {"run_id": "R", "stack": {"stack": [1]}}}, "stack"),
        ({"event": EVENT, "ctx": {"run_id": "R", "stack": {"stack": "a"}}}, "stack"),
        ({"event": EVENT, "events": {}, "ctx": {"run_id": "R"}}, "'events'"),
        ({"event": EVENT, "events": [1], "ctx": {"run_id": "R"}}, "'events'"),
        ({"event": EVENT, "steps": [], "ctx": {"run_id": "R"}}, "'steps'"),
    ],
)
def test_malformed_bodies_raise_a_wire_error_naming_the_field(wire: Any, field: str) -> None:
    with pytest.raises(WireError, match=field):
        decode_call_request("f", wire, step_id=None)


def test_wire_errors_are_stepwell_errors_that_do_not_retry() -> None:
    assert WireError.code == "body_invalid"
    assert WireError.retriable is False


# -- op objects ----------------------------------------------------------------------------------


def common(op: str, step_id: str) -> dict[str, Any]:
    return {
        "id": h(step_id),
        "op": op,
        "name": step_id,
        "displayName": step_id,
        "userland": {"id": step_id},
    }


def test_step_run_carries_its_data_unwrapped() -> None:
    op = StepRun(h("fetch"), "fetch", {"n": 1}, started_at=5)
    assert encode_op(op) == {**common("StepRun", "fetch"), "data": {"n": 1}}


def test_step_run_with_null_data_still_has_a_data_field() -> None:
    assert encode_op(StepRun(h("x"), "x", None))["data"] is None


def test_step_planned_says_it_is_a_step_run() -> None:
    op = StepPlanned(h("a"), "a")
    assert encode_op(op) == {**common("StepPlanned", "a"), "opts": {"type": "step.run"}}


def test_a_relative_sleep_is_a_duration_in_name_and_opts() -> None:
    op = Sleep(h("nap"), "nap", duration_ms=3_600_000)
    assert encode_op(op) == {
        **common("Sleep", "nap"),
        "name": "1h",
        "opts": {"duration": "1h"},
    }


def test_an_absolute_sleep_is_an_iso_utc_date_with_milliseconds() -> None:
    op = Sleep(h("until"), "until", until_ms=1_893_488_400_123)
    wire = encode_op(op)
    assert wire["name"] == "2030-01-01T09:00:00.123Z"
    assert wire["opts"] == {"duration": "2030-01-01T09:00:00.123Z"}
    assert wire["displayName"] == "until"


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0s"), (500, "500ms"), (90_000, "1m30s"), (3 * 86_400_000, "3d")],
)
def test_sleep_durations_are_go_style(ms: int, text: str) -> None:
    assert encode_op(Sleep("k", "s", duration_ms=ms))["name"] == text


def test_wait_for_event_puts_the_event_in_name_and_the_condition_in_opts() -> None:
    op = WaitForEvent(h("w"), "w", "app/approved", 3 * 86_400_000, "event.data.id == async.data.id")
    assert encode_op(op) == {
        **common("WaitForEvent", "w"),
        "name": "app/approved",
        "opts": {"event": "app/approved", "timeout": "3d", "if": "event.data.id == async.data.id"},
    }


def test_wait_for_event_without_a_condition_has_no_if() -> None:
    opts = encode_op(WaitForEvent("k", "w", "app/x", 60_000))["opts"]
    assert opts == {"event": "app/x", "timeout": "1m"}


def test_invoke_names_the_composite_function_and_wraps_the_data() -> None:
    op = InvokeFunction(h("call"), "call", "my-app-child", {"x": 1}, 3_600_000)
    assert encode_op(op) == {
        **common("InvokeFunction", "call"),
        "opts": {"function_id": "my-app-child", "payload": {"data": {"x": 1}}, "timeout": "1h"},
    }


def test_invoke_passes_a_user_object_along() -> None:
    op = InvokeFunction("k", "call", "a-b", {}, 1000, user={"id": "u1"})
    assert encode_op(op)["opts"]["payload"] == {"data": {}, "user": {"id": "u1"}}


@pytest.mark.parametrize("kind", [StepError, StepFailed])
def test_step_errors_carry_the_serialised_error(kind: type[StepError] | type[StepFailed]) -> None:
    error = {"name": "ValueError", "message": "boom", "stack": "Traceback…"}
    wire = encode_op(kind(h("s"), "s", error))
    assert wire == {**common(kind.__name__, "s"), "error": error}


def test_a_repeated_step_keeps_its_suffixed_id() -> None:
    wire = encode_op(StepRun(h("a:1"), "a:1", 1))
    assert (wire["id"], wire["name"], wire["userland"]) == (h("a:1"), "a:1", {"id": "a:1"})


def test_ops_the_protocol_does_not_carry_are_refused() -> None:
    with pytest.raises(TypeError, match="SendEvent"):
        encode_op(SendEvent("k", "s", []))  # type: ignore[arg-type]


def test_encode_ops_keeps_order() -> None:
    ops = (StepPlanned(h("a"), "a"), StepPlanned(h("b"), "b"))
    assert [o["id"] for o in encode_ops(ops)] == [h("a"), h("b")]


def test_iso_utc_pads_milliseconds() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1_000_007) == "1970-01-01T00:16:40.007Z"


# -- HTTP answers --------------------------------------------------------------------------------


def test_a_finished_handler_is_200_with_its_output() -> None:
    status, headers, raw = encode_result(CallResult(done=True, output={"ok": True}))
    assert status == 200
    assert headers == {"content-type": "application/json"}
    assert orjson.loads(raw) == {"ok": True}


@pytest.mark.parametrize("output", [None, "AB", 3, [1, "x"], {"a": {"b": None}}, 2**70, "é"])
def test_any_json_output_round_trips(output: Any) -> None:
    _, _, raw = encode_result(CallResult(done=True, output=output))
    assert orjson.loads(raw) == output


def test_ops_are_206_with_an_array_and_no_retry_headers() -> None:
    result = CallResult(done=False, ops=(StepRun(h("a"), "a", "A"),))
    status, headers, raw = encode_result(result)
    assert status == 206
    assert "x-inngest-no-retry" not in headers
    assert orjson.loads(raw) == [{**common("StepRun", "a"), "data": "A"}]


def test_a_retriable_step_error_says_no_retry_false() -> None:
    error = {"name": "ValueError", "message": "boom", "stack": "…"}
    status, headers, raw = encode_result(
        CallResult(done=False, ops=(StepError(h("s"), "s", error),))
    )
    assert status == 206
    assert headers["x-inngest-no-retry"] == "false"
    assert "retry-after" not in headers
    assert orjson.loads(raw)[0]["op"] == "StepError"


def test_a_step_error_asking_for_a_delay_sets_retry_after_in_whole_seconds() -> None:
    op = StepError("k", "s", {"name": "RetryAfterError", "message": "later"}, retry_after_ms=1500)
    _, headers, _ = encode_result(CallResult(done=False, ops=(op,)))
    assert headers["retry-after"] == "2"


def test_a_tiny_retry_delay_is_at_least_one_second() -> None:
    op = StepError("k", "s", {"name": "E", "message": "m"}, retry_after_ms=0)
    assert encode_result(CallResult(done=False, ops=(op,)))[1]["retry-after"] == "1"


def test_a_non_retriable_step_error_says_no_retry_true() -> None:
    op = StepError("k", "s", {"name": "E", "message": "m"}, retriable=False)
    assert encode_result(CallResult(done=False, ops=(op,)))[1]["x-inngest-no-retry"] == "true"


def test_a_failed_step_says_no_retry_true() -> None:
    op = StepFailed(h("s"), "s", {"name": "E", "message": "m"})
    status, headers, raw = encode_result(CallResult(done=False, ops=(op,)))
    assert status == 206
    assert headers["x-inngest-no-retry"] == "true"
    assert orjson.loads(raw)[0]["op"] == "StepFailed"


def test_a_handler_error_is_500_with_name_message_stack() -> None:
    error = {"name": "KeyError", "message": "'x'", "stack": "Traceback…"}
    status, headers, raw = encode_result(CallResult(done=True, error=error))
    assert status == 500
    assert headers["x-inngest-no-retry"] == "false"
    assert orjson.loads(raw) == error


def test_a_non_retriable_handler_error_says_no_retry_true() -> None:
    error = {"name": "NonRetriableError", "message": "bad input"}
    status, headers, raw = encode_result(CallResult(done=True, error=error, retriable=False))
    assert (status, headers["x-inngest-no-retry"]) == (500, "true")
    assert orjson.loads(raw) == {"name": "NonRetriableError", "message": "bad input", "stack": None}


def test_a_retry_after_handler_error_sets_retry_after() -> None:
    result = CallResult(
        done=True, error={"name": "RetryAfterError", "message": "m"}, retry_after_ms=30_000
    )
    _, headers, _ = encode_result(result)
    assert headers["retry-after"] == "30"
    assert headers["x-inngest-no-retry"] == "false"


def test_an_error_missing_name_or_message_gets_defaults_and_keeps_extras() -> None:
    _, _, raw = encode_result(CallResult(done=True, error={"code": "x"}))
    assert orjson.loads(raw) == {"name": "Error", "message": "", "stack": None, "code": "x"}


OPS = st.one_of(
    st.builds(StepRun, st.text(min_size=1), st.text(min_size=1), st.integers() | st.text()),
    st.builds(StepPlanned, st.text(min_size=1), st.text(min_size=1)),
    st.builds(
        Sleep,
        st.text(min_size=1),
        st.text(min_size=1),
        duration_ms=st.integers(min_value=0, max_value=10**10),
    ),
    st.builds(
        WaitForEvent,
        st.text(min_size=1),
        st.text(min_size=1),
        st.text(min_size=1),
        st.integers(min_value=0, max_value=10**10),
        st.none() | st.text(min_size=1),
    ),
)


@given(st.lists(OPS, max_size=6))
def test_every_op_array_is_a_206_of_objects_keyed_by_step(ops: list[Any]) -> None:
    status, _, raw = encode_result(CallResult(done=False, ops=tuple(ops)))
    decoded = orjson.loads(raw)
    assert status == 206
    assert [o["id"] for o in decoded] == [op.key for op in ops]
    assert all(o["displayName"] == op.step_id for o, op in zip(decoded, ops, strict=True))
