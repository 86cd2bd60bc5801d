"""What the HTTP driver sends an app, as a real server on loopback receives it: the call's
headers (uncompressed answers asked for), the call handed to the driver's hooks as sent, and an
unreachable app reported as a retriable error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stepwell.clock import SystemClock
from stepwell.engine.drivers.http import HttpDriver
from stepwell.engine.registry import parse_function
from stepwell.protocol.ops import CallRequest, StepFailed, StepRun
from tests.support import free_port, http_function, uvicorn_app


class _NoCheckpoints:
    """The app below ends the run in its first call: nothing is ever checkpointed."""

    async def step_completed(self, op: StepRun | StepFailed) -> None:
        raise AssertionError("no step was expected")

    async def send_events(self, key: str, step_id: str, events: Any) -> list[str]:
        raise AssertionError("no event was expected")

    async def flush(self) -> None:
        return None

    def full(self) -> bool:
        return False


def _spec(url: str) -> Any:
    return parse_function("app", http_function("app-fn", url))


def _request() -> CallRequest:
    event = {"id": "e1", "name": "t/go", "data": {}, "user": {}, "ts": 1}
    return CallRequest(
        function_id="app-fn",
        run_id="run-1",
        attempt=0,
        max_attempts=1,
        event=event,
        events=[event],
        memo={},
        stack=[],
        now_ms=1,
    )


async def test_a_call_asks_for_an_uncompressed_answer_and_reaches_the_hooks_as_sent() -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    async def sdk(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        headers = {"X-Inngest-SDK": "inngest-js:v4.24.0", "x-inngest-req-version": "2"}
        return Response(b'"done"', 200, headers=headers, media_type="application/json")

    hooked: list[tuple[str, Mapping[str, str], bytes]] = []
    driver = HttpDriver(
        SystemClock(), checkpointing=False, call_hooks=[lambda *call: hooked.append(call)]
    )
    port = free_port()
    async with uvicorn_app(Starlette(routes=[Route("/api", sdk, methods=["POST"])]), port):
        try:
            result = await driver.invoke(
                _spec(f"http://127.0.0.1:{port}/api"), _request(), _NoCheckpoints()
            )
        finally:
            await driver.close()
    assert (result.done, result.output, result.error) == (True, "done", None)
    [(headers, body)] = received
    assert headers["accept-encoding"] == "identity"
    assert headers["x-run-id"] == "run-1"
    [(url, hook_headers, hook_body)] = hooked
    assert url == f"http://127.0.0.1:{port}/api?fnId=app-fn&stepId=step"
    assert hook_body == body and orjson.loads(body)["ctx"]["run_id"] == "run-1"
    assert hook_headers["Accept-Encoding"] == "identity"


async def test_an_app_that_cannot_be_reached_is_a_retriable_error() -> None:
    driver = HttpDriver(SystemClock(), checkpointing=False)
    try:
        result = await driver.invoke(
            _spec(f"http://127.0.0.1:{free_port()}/api"), _request(), _NoCheckpoints()
        )
    finally:
        await driver.close()
    assert result.done and result.retriable and result.error is not None
    assert result.error["name"] == "HTTPDriverError"
    assert "could not reach" in result.error["message"]
