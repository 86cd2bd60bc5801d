"""One scenario table, run against every adapter on a real loopback server.

The test plays the engine: call requests shaped as PROTOCOL.md §1.4 (Appendix B), canonical
JSON signed with the signing key in cloud mode; sync PUTs as the engine sends them; the
engine's API origin is a recording server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from stepwell.protocol.canonical_json import canonical_json
from stepwell.protocol.signing import bearer_token, sign, verify_signature
from tests.serve.engine_role import (
    APP_ID,
    EVENT_KEY,
    FALLBACK,
    KEY,
    SDK,
    Served,
    call_body,
    event,
    fn,
    h,
)
from tests.serve.served_app import app as served_app
from tests.serve.servers import Recorder

Scenario = Callable[[Served, Recorder], None]


def ops(response: Any, status: int = 206) -> list[dict[str, Any]]:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, list)
    return body


# -- running functions ---------------------------------------------------------------------------


def sequential_steps_carry_the_memo(engine: Served, _: Recorder) -> None:
    for function in (fn("sequential"), fn("sync-sequential")):
        steps: dict[str, Any] = {}
        stack: list[str] = []
        for step_id, data in (("a", "A"), ("b", "AB")):
            response = engine.call(function, steps=steps, stack=stack)
            engine.check_headers(response, signed_with=KEY)
            [op] = ops(response)
            assert op["op"] == "StepRun"
            assert (op["id"], op["displayName"], op["data"]) == (h(step_id), step_id, data)
            steps[op["id"]] = {"data": op["data"]}
            stack.append(op["id"])
        done = engine.call(function, steps=steps, stack=stack)
        assert done.status_code == 200
        assert done.json() == "AB"
        engine.check_headers(done, signed_with=KEY)


def sleeps_are_reported_with_their_duration_or_date(engine: Served, _: Recorder) -> None:
    [nap] = ops(engine.call(fn("sleeper")))
    assert nap == {
        "id": h("nap"),
        "op": "Sleep",
        "name": "1h",
        "displayName": "nap",
        "opts": {"duration": "1h"},
        "userland": {"id": "nap"},
    }
    [until] = ops(engine.call(fn("sleeper"), steps={h("nap"): None}, stack=[h("nap")]))
    assert (until["op"], until["name"]) == ("Sleep", "2030-01-01T09:00:00.123Z")
    done = engine.call(fn("sleeper"), steps={h("nap"): None, h("until"): None})
    assert (done.status_code, done.json()) == (200, "slept")


def waits_carry_event_timeout_and_condition(engine: Served, _: Recorder) -> None:
    [wait] = ops(engine.call(fn("waiter")))
    assert wait["op"] == "WaitForEvent"
    assert (wait["id"], wait["name"], wait["displayName"]) == (
        h("approval"),
        "app/approved",
        "approval",
    )
    assert wait["opts"] == {
        "event": "app/approved",
        "timeout": "3d",
        "if": "event.data.id == async.data.id",
    }
    matched = {"name": "app/approved", "data": {"id": 7}, "id": "01E", "ts": 5, "user": {}}
    done = engine.call(fn("waiter"), steps={h("approval"): matched})
    assert (done.status_code, done.json()) == (200, {"id": 7})
    timed_out = engine.call(fn("waiter"), steps={h("approval"): None})
    assert (timed_out.status_code, timed_out.json()) == (200, None)


def invokes_name_the_function_and_payload(engine: Served, _: Recorder) -> None:
    [invoke] = ops(engine.call(fn("invoker")))
    assert invoke["op"] == "InvokeFunction"
    assert invoke["opts"] == {
        "function_id": fn("child"),
        "payload": {"data": {"x": 1}},
        "timeout": "1h",
    }
    done = engine.call(fn("invoker"), steps={h("call-child"): {"data": {"x": 1}}})
    assert (done.status_code, done.json()) == (200, {"x": 1})


def parallel_steps_are_planned_then_run_one_by_one(engine: Served, _: Recorder) -> None:
    planned = ops(engine.call(fn("parallel")))
    assert [(o["op"], o["id"]) for o in planned] == [
        ("StepPlanned", h("p1")),
        ("StepPlanned", h("p2")),
    ]
    assert all(o["opts"] == {"type": "step.run"} for o in planned)
    [p1] = ops(engine.call(fn("parallel"), step=h("p1"), disable=True))
    assert (p1["op"], p1["id"], p1["data"]) == ("StepRun", h("p1"), 1)
    memo = {h("p1"): {"data": 1}}
    [p2] = ops(engine.call(fn("parallel"), step=h("p2"), steps=memo, stack=[h("p1")], disable=True))
    assert (p2["op"], p2["id"], p2["data"]) == ("StepRun", h("p2"), 2)
    memo[h("p2")] = {"data": 2}
    done = engine.call(fn("parallel"), steps=memo, stack=[h("p1"), h("p2")], disable=True)
    assert (done.status_code, done.json()) == (200, [1, 2])


def a_failing_step_is_retried(engine: Served, _: Recorder) -> None:
    response = engine.call(fn("flaky"), attempt=0, max_attempts=3)
    [op] = ops(response)
    assert response.headers["x-inngest-no-retry"] == "false"
    assert op["op"] == "StepError"
    assert (op["id"], op["error"]["name"], op["error"]["message"]) == (
        h("boom"),
        "ValueError",
        "boom",
    )
    assert "Traceback" in op["error"]["stack"]


def a_non_retriable_step_fails_at_once(engine: Served, _: Recorder) -> None:
    response = engine.call(fn("fatal"), attempt=0, max_attempts=5)
    [op] = ops(response)
    assert (op["op"], op["error"]["name"]) == ("StepFailed", "NonRetriableError")
    assert response.headers["x-inngest-no-retry"] == "true"


def the_final_attempt_fails_the_step_and_the_run(engine: Served, _: Recorder) -> None:
    response = engine.call(fn("flaky"), attempt=2, max_attempts=3)
    [op] = ops(response)
    assert op["op"] == "StepFailed"
    assert response.headers["x-inngest-no-retry"] == "true"
    failed = engine.call(fn("flaky"), steps={h("boom"): {"error": op["error"]}}, stack=[h("boom")])
    assert failed.status_code == 500
    assert failed.headers["x-inngest-no-retry"] == "true"
    assert failed.json()["name"] == "StepError"
    handled = engine.call(fn("flaky-failure"), trigger=event("inngest/function.failed"))
    assert (handled.status_code, handled.json()) == (200, "noted")


def handler_errors_are_500_with_retry_headers(engine: Served, _: Recorder) -> None:
    crash = engine.call(fn("crash"))
    assert crash.status_code == 500
    assert crash.headers["x-inngest-no-retry"] == "false"
    body = crash.json()
    assert (body["name"], body["message"]) == ("RuntimeError", "handler broke")
    assert "Traceback" in body["stack"]
    engine.check_headers(crash, signed_with=KEY)
    reject = engine.call(fn("reject"))
    assert (reject.status_code, reject.headers["x-inngest-no-retry"]) == (500, "true")
    later = engine.call(fn("later"))
    assert later.headers["retry-after"] == "30"
    assert later.headers["x-inngest-no-retry"] == "false"


def send_event_reaches_the_event_api(engine: Served, recorder: Recorder) -> None:
    [op] = ops(engine.call(fn("sender")))
    assert (op["op"], op["data"]) == ("StepRun", {"ids": ["01SENT"]})
    [sent] = recorder.of(f"/e/{EVENT_KEY}")
    assert [e["name"] for e in sent.body] == ["demo/notified"]


def dev_mode_neither_checks_nor_signs(engine: Served, _: Recorder) -> None:
    response = engine.call(fn("sequential"), dev=True, key=None, signature="t=1&s=bad")
    assert response.status_code == 206
    assert "x-inngest-signature" not in response.headers


def the_fallback_key_is_accepted_and_signs_the_answer(engine: Served, _: Recorder) -> None:
    response = engine.call(fn("sequential"), key=FALLBACK)
    assert response.status_code == 206
    engine.check_headers(response, signed_with=FALLBACK)


def signatures_cover_the_canonical_form_of_the_body(engine: Served, _: Recorder) -> None:
    body = call_body()
    pretty = json.dumps(body, indent=2).encode()
    over_canonical = sign(canonical_json(body), KEY, int(time.time()))
    assert engine.call(fn("sequential"), raw=pretty, signature=over_canonical).status_code == 206
    over_raw = sign(pretty, KEY, int(time.time()))
    assert engine.call(fn("sequential"), raw=pretty, signature=over_raw).status_code == 401


# -- refusals ------------------------------------------------------------------------------------


def a_bad_signature_is_401(engine: Served, _: Recorder) -> None:
    for signature in ("t=1&s=00", sign(b"other", KEY, int(time.time())), "garbage"):
        response = engine.call(fn("sequential"), signature=signature)
        assert (response.status_code, response.json()) == (401, {"message": "Unauthorized"})
        assert "x-inngest-signature" not in response.headers
    wrong_key = engine.call(fn("sequential"), key="signkey-test-" + "ef" * 32)
    assert wrong_key.status_code == 401
    stale = sign(canonical_json(call_body()), KEY, int(time.time()) - 3600)
    assert engine.call(fn("sequential"), signature=stale).status_code == 401


def an_unsigned_call_is_401_in_cloud_mode(engine: Served, _: Recorder) -> None:
    response = engine.call(fn("sequential"), key=None)
    assert (response.status_code, response.json()) == (401, {"message": "Unauthorized"})


def an_unknown_function_is_500(engine: Served, _: Recorder) -> None:
    response = engine.call(fn("nope"))
    assert response.status_code == 500
    assert response.json()["code"] == "function_not_found"
    assert "nope" in response.json()["message"]
    engine.check_headers(response, signed_with=KEY)


def malformed_bodies_are_500_with_a_json_error(engine: Served, _: Recorder) -> None:
    # A body that is not JSON is signed as it is; JSON ones over their canonical form.
    for raw, signed in (
        (b"{not json", b"{not json"),
        (b"[1, 2]", b"[1,2]"),
        (canonical_json({"event": {}, "ctx": {}}), canonical_json({"event": {}, "ctx": {}})),
    ):
        signature = sign(signed, KEY, int(time.time()))
        response = engine.call(fn("sequential"), raw=raw, signature=signature)
        assert response.status_code == 500, response.text
        assert response.json()["code"] == "body_invalid"
        engine.check_headers(response, signed_with=KEY)


def other_methods_are_405(engine: Served, _: Recorder) -> None:
    response = engine.client.patch(engine.cloud_url)
    assert response.status_code == 405
    engine.check_headers(response)


# -- sync and introspection ----------------------------------------------------------------------


def put_syncs_out_of_band_in_dev_mode(engine: Served, recorder: Recorder) -> None:
    response = engine.client.put(
        engine.dev_url + "?deployId=d1",
        content=b'{"url":"ignored"}',
        headers={"x-inngest-server-kind": "dev"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "Successfully registered", "modified": True}
    assert response.headers["x-inngest-sync-kind"] == "out_of_band"
    engine.check_headers(response)
    [register] = recorder.of("/fn/register")
    assert register.query == {"deployId": "d1"}
    assert "authorization" not in register.headers
    assert register.headers["x-inngest-sdk"] == SDK
    assert register.headers["x-inngest-framework"] == engine.framework
    assert register.headers["x-inngest-expected-server-kind"] == "dev"
    payload = register.body
    assert payload["url"] == engine.dev_url
    assert (payload["appName"], payload["framework"], payload["deployType"]) == (
        APP_ID,
        engine.framework,
        "ping",
    )
    runtime = {f["id"]: f["steps"]["step"]["runtime"] for f in payload["functions"]}
    assert runtime[fn("sequential")] == {
        "type": "http",
        "url": f"{engine.dev_url}?fnId={fn('sequential')}&stepId=step",
    }
    assert fn("flaky-failure") in runtime


def put_syncs_out_of_band_with_a_bearer_token_in_cloud_mode(
    engine: Served, recorder: Recorder
) -> None:
    response = engine.client.put(engine.cloud_url, headers={"x-inngest-server-kind": "cloud"})
    assert response.status_code == 200, response.text
    [register] = recorder.of("/fn/register")
    assert register.headers["authorization"] == f"Bearer {bearer_token(KEY)}"
    assert register.body["url"] == engine.cloud_url


def a_failed_registration_is_reported_with_its_status(engine: Served, _: Recorder) -> None:
    response = engine.client.put(engine.dev_url + "?deployId=refuse")
    assert response.status_code == 400
    assert "app id is taken" in response.json()["message"]
    assert response.headers["x-inngest-sync-kind"] == "out_of_band"


def a_sync_from_the_wrong_kind_of_server_is_refused(engine: Served, recorder: Recorder) -> None:
    response = engine.client.put(engine.dev_url, headers={"x-inngest-server-kind": "cloud"})
    assert response.status_code == 400
    assert response.json()["code"] == "server_kind_mismatch"
    assert recorder.of("/fn/register") == []


def in_band_sync_answers_with_a_signed_configuration(engine: Served, recorder: Recorder) -> None:
    body = canonical_json({"url": "http://engine-sees-me:9000/api/stepwell"})
    response = engine.client.put(
        engine.cloud_url,
        content=body,
        headers={
            "x-inngest-signature": sign(body, KEY, int(time.time())),
            "x-inngest-sync-kind": "in_band",
            "x-inngest-server-kind": "cloud",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-inngest-sync-kind"] == "in_band"
    assert verify_signature(
        response.content, response.headers["x-inngest-signature"], [KEY], int(time.time())
    )
    engine.check_headers(response, signed_with=KEY)
    config = response.json()
    assert config["app_id"] == APP_ID
    assert config["framework"] == engine.framework
    assert (config["sdk_language"], config["sdk_version"], config["env"]) == ("py", "0.1.0", None)
    assert config["url"] == "http://engine-sees-me:9000/api/stepwell"
    assert config["capabilities"]["in_band_sync"] == "v1"
    urls = {f["steps"]["step"]["runtime"]["url"] for f in config["functions"]}
    assert f"http://engine-sees-me:9000/api/stepwell?fnId={fn('sequential')}&stepId=step" in urls
    assert config["inspection"]["authentication_succeeded"] is True
    assert recorder.of("/fn/register") == []


def an_unsigned_in_band_sync_is_401(engine: Served, _: Recorder) -> None:
    response = engine.client.put(
        engine.cloud_url, content=b'{"url":"x"}', headers={"x-inngest-sync-kind": "in_band"}
    )
    assert response.status_code == 401


def get_introspects(engine: Served, _: Recorder) -> None:
    dev = engine.client.get(engine.dev_url)
    assert dev.status_code == 200
    assert dev.json() == {
        "schema_version": "2024-05-24",
        "function_count": len(served_app.functions),
        "has_event_key": True,
        "has_signing_key": False,
        "has_signing_key_fallback": False,
        "mode": "dev",
    }
    engine.check_headers(dev)
    assert engine.client.get(engine.cloud_url).status_code == 401
    signed = engine.client.get(
        engine.cloud_url, headers={"x-inngest-signature": sign(b"", KEY, int(time.time()))}
    )
    assert signed.status_code == 200
    engine.check_headers(signed, signed_with=KEY)
    body = signed.json()
    assert (body["mode"], body["app_id"], body["authentication_succeeded"]) == (
        "cloud",
        APP_ID,
        True,
    )
    assert body["signing_key_hash"] == bearer_token(KEY)
    assert body["serve_path"] == "/api/stepwell"


SCENARIOS: list[Scenario] = [
    sequential_steps_carry_the_memo,
    sleeps_are_reported_with_their_duration_or_date,
    waits_carry_event_timeout_and_condition,
    invokes_name_the_function_and_payload,
    parallel_steps_are_planned_then_run_one_by_one,
    a_failing_step_is_retried,
    a_non_retriable_step_fails_at_once,
    the_final_attempt_fails_the_step_and_the_run,
    handler_errors_are_500_with_retry_headers,
    send_event_reaches_the_event_api,
    dev_mode_neither_checks_nor_signs,
    the_fallback_key_is_accepted_and_signs_the_answer,
    signatures_cover_the_canonical_form_of_the_body,
    a_bad_signature_is_401,
    an_unsigned_call_is_401_in_cloud_mode,
    an_unknown_function_is_500,
    malformed_bodies_are_500_with_a_json_error,
    other_methods_are_405,
    put_syncs_out_of_band_in_dev_mode,
    put_syncs_out_of_band_with_a_bearer_token_in_cloud_mode,
    a_failed_registration_is_reported_with_its_status,
    a_sync_from_the_wrong_kind_of_server_is_refused,
    in_band_sync_answers_with_a_signed_configuration,
    an_unsigned_in_band_sync_is_401,
    get_introspects,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_adapter(scenario: Scenario, engine: Served, recorder: Recorder) -> None:
    scenario(engine, recorder)
