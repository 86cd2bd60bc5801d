"""The framework-neutral handler, called directly: the edges the adapter table does not reach."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any

import pytest

import stepwell
from stepwell.protocol.canonical_json import canonical_json
from stepwell.protocol.signing import bearer_token, sign, verify_signature
from stepwell.sdk import serve
from stepwell.sdk.client import HttpEventSender
from stepwell.sdk.serve import ServeHandler, ServeRequest, ServeResponse
from stepwell.sdk.serve._loop import LoopThread
from tests.serve.engine_role import KEY, call_body, fn, h
from tests.serve.served_app import app
from tests.serve.servers import Recorder, free_port

URL = "http://app.local:8000/api/stepwell"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("INNGEST_", "STEPWELL_")):
            monkeypatch.delenv(name)


def handler(recorder: Recorder | None = None, **options: Any) -> ServeHandler:
    options.setdefault("mode", "cloud")
    if options["mode"] == "cloud":
        options.setdefault("signing_key", KEY)
    if recorder is not None:
        options.setdefault("api_base_url", recorder.url)
    return ServeHandler(app, **options)


def signed(method: str, query: str = "", body: bytes = b"", **headers: str) -> ServeRequest:
    """A request signed as the engine signs: over the canonical form of a JSON body."""
    try:
        covered = canonical_json(json.loads(body)) if body else body
    except ValueError:
        covered = body
    all_headers = {"X-Inngest-Signature": sign(covered, KEY, int(time.time())), **headers}
    return ServeRequest.build(method, URL + query, all_headers.items(), body)


def test_public_names_are_pinned() -> None:
    assert serve.__all__ == [
        "ServeConfig",
        "ServeHandler",
        "ServeRequest",
        "ServeResponse",
        "django_view",
        "fastapi",
        "flask",
        "serve_asgi",
        "starlette",
    ]


def test_requests_normalise_method_and_header_names() -> None:
    request = ServeRequest.build("post", URL + "?fnId=a&fnId=b&x", [("X-Thing", "1")], b"")
    assert (request.method, dict(request.headers)) == ("POST", {"x-thing": "1"})
    assert request.query == {"fnId": "a", "x": ""}


def test_env_selects_dev_mode_and_reads_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INNGEST_DEV", "1")
    assert ServeHandler(app).config.mode == "dev"
    monkeypatch.setenv("INNGEST_DEV", "0")
    with pytest.raises(stepwell.ConfigError):
        ServeHandler(app)
    monkeypatch.setenv("STEPWELL_SIGNING_KEY", KEY)
    assert ServeHandler(app).config.signing_key == KEY


def test_the_app_sender_is_pointed_at_the_event_api() -> None:
    local = stepwell.App("sender-test")
    handler_ = ServeHandler(
        local, mode="dev", event_api_base_url="http://engine:9/", event_key="k1"
    )
    assert handler_.config.event_origin == "http://engine:9"
    assert isinstance(local.sender, HttpEventSender)
    assert local.sender.endpoint == "http://engine:9/e/k1"


def test_an_app_attached_to_an_embedded_engine_keeps_its_sender() -> None:
    local = stepwell.App("embedded-test")

    class Embedded:
        async def send_wire(self, events: Any) -> list[str]:
            return []

    engine = Embedded()
    local.attach(engine)
    ServeHandler(local, mode="dev")
    assert local.sender is engine


async def test_a_trust_probe_is_an_empty_signed_200() -> None:
    response = await handler().handle(signed("POST", "?probe=trust"))
    assert (response.status, response.body) == (200, b"")
    assert verify_signature(b"", response.headers["x-inngest-signature"], [KEY], int(time.time()))


async def test_a_call_without_fn_id_is_500() -> None:
    response = await handler().handle(signed("POST", "", canonical_json(call_body())))
    assert response.status == 500
    assert response.json()["code"] == "query_param_missing"


async def test_a_function_id_without_the_app_prefix_is_found() -> None:
    body = canonical_json(call_body())
    response = await handler().handle(signed("POST", "?fnId=sequential&stepId=step", body))
    assert response.status == 206


async def test_a_trimmed_request_fetches_events_and_steps_from_the_api(recorder: Recorder) -> None:
    recorder.calls.clear()
    wire = call_body()
    wire["use_api"] = True
    wire["steps"] = {}
    body = canonical_json(wire)
    response = await handler(recorder).handle(
        signed("POST", f"?fnId={fn('sequential')}&stepId=step", body)
    )
    assert response.status == 206
    paths = [c.path for c in recorder.calls]
    assert paths == ["/v0/runs/01RUN/batch", "/v0/runs/01RUN/actions"]
    assert {c.headers["authorization"] for c in recorder.calls} == {f"Bearer {bearer_token(KEY)}"}


async def test_an_unsigned_put_is_refused_when_unsigned_sync_is_off(
    monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    monkeypatch.setenv("INNGEST_ENABLE_UNAUTHED_SYNC", "false")
    request = ServeRequest.build("PUT", URL, [], b"")
    response = await handler(recorder).handle(request)
    assert response.status == 401


async def test_a_signed_put_is_signed_back(recorder: Recorder) -> None:
    response = await handler(recorder).handle(signed("PUT"))
    assert response.status == 200
    assert response.headers["x-inngest-sync-kind"] == "out_of_band"
    assert verify_signature(
        response.body, response.headers["x-inngest-signature"], [KEY], int(time.time())
    )


async def test_an_unreachable_engine_fails_the_sync_with_500() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    response = await handler(mode="dev", api_base_url=dead).handle(
        ServeRequest.build("PUT", URL, [], b"")
    )
    assert response.status == 500
    assert response.json()["code"] == "registration_failed"
    assert dead in response.json()["message"]
    assert response.headers["x-inngest-sync-kind"] == "out_of_band"


@pytest.mark.parametrize("body", [b"not json", b"[]", b"{}", b'{"url": 5}'])
async def test_a_malformed_in_band_sync_is_400(body: bytes) -> None:
    request = signed("PUT", "", body, **{"X-Inngest-Sync-Kind": "in_band"})
    response = await handler().handle(request)
    assert response.status == 400
    assert response.json()["code"] == "invalid_request"


async def test_in_band_sync_in_dev_mode_falls_back_to_out_of_band(recorder: Recorder) -> None:
    recorder.calls.clear()
    request = ServeRequest.build(
        "PUT", URL, [("x-inngest-sync-kind", "in_band")], b'{"url":"http://x/api"}'
    )
    response = await handler(recorder, mode="dev").handle(request)
    assert response.headers["x-inngest-sync-kind"] == "out_of_band"
    assert [c.path for c in recorder.calls] == ["/fn/register"]


async def test_the_configured_serve_origin_is_what_gets_registered(recorder: Recorder) -> None:
    recorder.calls.clear()
    endpoint = handler(recorder, mode="dev", serve_origin="https://public.example.com")
    await endpoint.handle(ServeRequest.build("PUT", URL, [], b""))
    [register] = recorder.of("/fn/register")
    assert register.body["url"] == "https://public.example.com/api/stepwell"
    assert register.body["capabilities"] == {"in_band_sync": "v1", "trust_probe": "v1"}


async def test_a_get_from_the_wrong_kind_of_server_is_403() -> None:
    request = ServeRequest.build("GET", URL, [("x-inngest-server-kind", "cloud")], b"")
    response = await handler(mode="dev").handle(request)
    assert response.status == 403


async def test_the_env_name_is_sent_on_every_answer() -> None:
    response = await handler(mode="dev", env="branch-7").handle(
        ServeRequest.build("GET", URL, [], b"")
    )
    assert response.headers["x-inngest-env"] == "branch-7"


async def test_an_unexpected_failure_is_a_500_json_error_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint = handler()

    async def broken(*_: Any) -> ServeResponse:
        raise RuntimeError("wires crossed")

    monkeypatch.setattr(endpoint, "_call", broken)
    body = canonical_json(call_body())
    response = await endpoint.handle(signed("POST", f"?fnId={fn('sequential')}", body))
    assert response.status == 500
    assert response.json()["code"] == "unknown"
    assert "wires crossed" in response.json()["message"]
    assert response.headers["x-inngest-sdk-handled"] == "true"
    assert "x-inngest-signature" in response.headers


async def test_a_targeted_step_that_is_already_memoized_is_not_rerun() -> None:
    memo = {h("a"): {"data": "A"}}
    body = canonical_json(call_body(steps=memo, stack=[h("a")]))
    response = await handler().handle(
        signed("POST", f"?fnId={fn('sequential')}&stepId={h('b')}", body)
    )
    [op] = response.json()
    assert (op["op"], op["id"], op["data"]) == ("StepRun", h("b"), "AB")


def test_the_private_loop_serves_many_threads_and_restarts_after_close() -> None:
    loop = LoopThread()

    async def which() -> tuple[asyncio.AbstractEventLoop, int]:
        return asyncio.get_running_loop(), threading.get_ident()

    seen: list[tuple[asyncio.AbstractEventLoop, int]] = []
    threads = [threading.Thread(target=lambda: seen.append(loop.run(which()))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1
    first_loop, first_thread = seen[0]
    assert first_thread != threading.get_ident()
    loop.close()
    second_loop, _ = loop.run(which())
    assert second_loop is not first_loop
    loop.close()
