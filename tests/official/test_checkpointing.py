"""The TS SDK's async checkpointing on stepwell: steps run back to back inside one call.

The Next.js app (npm ``inngest`` 4.24.0) gets ``ctx.fn_id`` and ``ctx.qi_id`` on discovery calls,
runs consecutive steps itself, posts each to ``/v1/checkpoint/{run_id}/async`` and answers
once with ``RunComplete``. Every request to the engine's API and every SDK call the HTTP driver
makes is recorded, so the tests count round trips instead of guessing from timings.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stepwell.clock import SystemClock
from stepwell.embedded import Embedded
from stepwell.engine.api import build_app
from stepwell.engine.api import checkpoint as checkpoint_route
from stepwell.engine.drivers.http import HttpDriver
from stepwell.engine.engine import Engine
from stepwell.engine.sync import Syncer
from stepwell.protocol.ops import CallRequest
from stepwell.protocol.signing import bearer_token
from stepwell.store.records import RunRecord
from tests.official.harness import (
    NEXTJS_APP_ID,
    SERVE_PATH,
    new_signing_key,
    start_nextjs,
)
from tests.official.test_scenarios import Driver, _scenarios
from tests.support import free_port, http_function, uvicorn_app

pytestmark = pytest.mark.official

A = hashlib.sha1(b"a").hexdigest()
B = hashlib.sha1(b"b").hexdigest()


class Recorder:
    """Wraps the engine's ASGI app and keeps ``(method, path, status)`` of every request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[tuple[str, str, int]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.requests.append((scope["method"], scope["path"], message["status"]))
            await send(message)

        await self.app(scope, receive, record)

    def checkpoints(self, run_id: str | None = None) -> list[int]:
        """Statuses of the checkpoint requests (of one run)."""
        return [
            status
            for method, path, status in self.requests
            if method == "POST"
            and path.startswith("/v1/checkpoint/")
            and (run_id is None or path == f"/v1/checkpoint/{run_id}/async")
        ]


@dataclass
class Engineside:
    engine: Engine
    driver: HttpDriver
    syncer: Syncer
    url: str
    api: Recorder
    calls: list[tuple[CallRequest, str | None]] = field(default_factory=list)
    before_call: list[Callable[[CallRequest], Awaitable[None]]] = field(default_factory=list)

    def calls_of(self, run_id: str) -> list[tuple[CallRequest, str | None]]:
        return [(r, qi) for r, qi in self.calls if r.run_id == run_id]


@asynccontextmanager
async def engineside(
    db: Path,
    *,
    signing_key: str | None = None,
    checkpointing: bool = True,
    retry_interval_ms: int = 200,
) -> AsyncIterator[Engineside]:
    """An engine with the HTTP driver behind its API on loopback, both recorded."""
    driver = HttpDriver(SystemClock(), signing_key=signing_key, checkpointing=checkpointing)
    calls: list[tuple[CallRequest, str | None]] = []
    before_call: list[Callable[[CallRequest], Awaitable[None]]] = []
    call = driver._call

    async def recorded(
        spec: Any, request: CallRequest, qi_id: str | None = None, checkpointer: Any = None
    ) -> Any:
        calls.append((request, qi_id))
        for hook in before_call:
            await hook(request)
        return await call(spec, request, qi_id, checkpointer)

    driver._call = recorded  # type: ignore[method-assign]
    kind = "cloud" if signing_key else "dev"
    async with Embedded(
        [], db=str(db), http=driver, retry_interval_ms=retry_interval_ms
    ) as embedded:
        syncer = Syncer(embedded.engine, server_kind=kind, signing_key=signing_key)
        api = Recorder(
            build_app(
                embedded.engine,
                event_keys=["ek"] if signing_key else None,
                signing_keys=[signing_key] if signing_key else [],
                server_kind=kind,
                syncer=syncer,
            )
        )
        port = free_port()
        async with uvicorn_app(api, port):
            yield Engineside(
                embedded.engine, driver, syncer, f"http://127.0.0.1:{port}", api, calls, before_call
            )


@asynccontextmanager
async def nextjs(side: Engineside, *, checkpointing: bool = True) -> AsyncIterator[Driver]:
    """The Next.js app, synced with the engine; yields a driver of events."""
    key = side.driver.signing_key
    port = free_port()
    process = start_nextjs(
        side.url,
        port=port,
        mode="cloud" if key else "dev",
        signing_key=key,
        event_key="ek" if key else None,
        checkpointing=checkpointing,
    )
    async with process:
        state = await side.syncer.sync(f"http://127.0.0.1:{port}{SERVE_PATH}")
        assert state.ok, f"{state.error}\n{process.logs()}"
        try:
            yield Driver(side.engine, side.url, "ek" if key else "any")
        except AssertionError:
            print(process.logs())
            raise


async def _memo(engine: Engine, run: RunRecord) -> list[tuple[str, Any]]:
    memo = await engine.store.read(lambda tx: tx.get_memo(run.run_id))
    return [(m.step_key, m.value) for m in memo]


# -- with the Next.js app ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["dev", "cloud"])
async def test_consecutive_steps_run_in_one_call_and_are_checkpointed_each(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    written_at_once: list[str] = []
    record = checkpoint_route._record

    def spied(run_id: str, *args: Any) -> Any:
        written_at_once.append(run_id)
        return record(run_id, *args)

    monkeypatch.setattr(checkpoint_route, "_record", spied)
    key = new_signing_key() if mode == "cloud" else None
    async with engineside(tmp_path / "e.db", signing_key=key) as side, nextjs(side) as d:
        run = await d.run("test/sequential")
        assert (run.status, run.output) == ("Completed", "AB")
        assert await _memo(side.engine, run) == [(A, {"data": "A"}), (B, {"data": "AB"})]
        # One SDK call for two steps; each step reached the store through /v1/checkpoint.
        [(request, qi_id)] = side.calls_of(run.run_id)
        assert request.target_step is None and qi_id is not None
        assert side.api.checkpoints(run.run_id) == [200, 200]
        # The invocation was live on this engine: its checkpoints were written behind, by its
        # checkpointer, not each in a unit of its own before the answer.
        assert written_at_once == []


@pytest.mark.parametrize(
    ("app_side", "engine_side"), [(False, True), (True, False)], ids=["app-off", "engine-off"]
)
async def test_without_checkpointing_each_step_is_one_call(
    tmp_path: Path, app_side: bool, engine_side: bool
) -> None:
    async with (
        engineside(tmp_path / "e.db", checkpointing=engine_side) as side,
        nextjs(side, checkpointing=app_side) as d,
    ):
        run = await d.run("test/sequential")
        assert (run.status, run.output) == ("Completed", "AB")
        assert await _memo(side.engine, run) == [(A, {"data": "A"}), (B, {"data": "AB"})]
        assert len(side.calls_of(run.run_id)) == 3
        assert side.api.checkpoints() == []


async def test_the_scenario_table_passes_and_uses_checkpoints(tmp_path: Path) -> None:
    key = new_signing_key()  # production mode: checkpoints carry the bearer token
    async with engineside(tmp_path / "e.db", signing_key=key) as side, nextjs(side) as d:
        await _scenarios(d, side.engine, NEXTJS_APP_ID)
        statuses = side.api.checkpoints()
        assert statuses and set(statuses) == {200}
        # Parallel steps are still planned and called one by one, never checkpointed.
        assert all(qi is None for r, qi in side.calls if r.target_step is not None)


async def test_a_checkpoint_of_an_invocation_that_is_over_halts_the_sdk(tmp_path: Path) -> None:
    async with engineside(tmp_path / "e.db") as side, nextjs(side) as d:
        run = await d.run("test/sequential")
        [(_, qi_id)] = side.calls_of(run.run_id)
        cancellable = await d.send("test/cancellable", {"id": "c"})
        for _ in range(200):
            [sleeping] = await side.engine.store.read(lambda tx: tx.runs_for_event(cancellable))
            if sleeping.status == "Running":
                break
            await asyncio.sleep(0.05)
        step = {"op": "StepRun", "id": A, "name": "a", "data": "A", "userland": {"id": "a"}}
        async with httpx.AsyncClient(base_url=side.url) as c:
            body = {"run_id": sleeping.run_id, "qi_id": qi_id, "steps": [step]}
            response = await c.post(f"/v1/checkpoint/{sleeping.run_id}/async", json=body)
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "stale_dispatch"
        assert A not in dict(await _memo(side.engine, sleeping))


async def test_a_step_stored_meanwhile_elsewhere_wins_and_the_run_goes_on(tmp_path: Path) -> None:
    async with engineside(tmp_path / "e.db") as side, nextjs(side) as d:
        engine = side.engine

        async def store_b_first(request: CallRequest) -> None:
            # As if another invocation had finished step b after this one loaded its memo.
            if not request.memo and request.event.get("name") == "test/sequential":
                now = engine.clock.now_ms()
                await engine.store.run(
                    lambda tx: tx.put_memo(request.run_id, B, "b", "run", {"data": "X"}, now)
                )

        side.before_call.append(store_b_first)
        run = await d.run("test/sequential")
        # The SDK's checkpoint of b got 409 and it halted; the run was invoked again with the
        # stored memo, so the function returned the stored result of b.
        assert (run.status, run.output) == ("Completed", "X")
        assert side.api.checkpoints(run.run_id) == [200, 409]
        assert await _memo(engine, run) == [(B, {"data": "X"}), (A, {"data": "A"})]
        assert len(side.calls_of(run.run_id)) == 2


# -- the route on its own ---------------------------------------------------------------------

FUNCTION = http_function("solo-fn", "http://127.0.0.1:9/api")


def _step(key: str, step_id: str, data: Any) -> dict[str, Any]:
    return {"op": "StepRun", "id": key, "name": step_id, "data": data, "userland": {"id": step_id}}


async def test_the_route_records_live_steps_and_refuses_stale_ones(tmp_path: Path) -> None:
    signing_key = new_signing_key()
    auth = {"Authorization": f"Bearer {bearer_token(signing_key)}"}
    # The app cannot be reached: the run's first call fails and its retry is a minute away,
    # so the run stays Running, and the one invocation it had is over.
    async with (
        engineside(tmp_path / "e.db", signing_key=signing_key, retry_interval_ms=60_000) as side,
        httpx.AsyncClient(base_url=side.url, headers=auth) as c,
    ):
        await side.engine.sync_app(
            {"appName": "solo", "url": "http://127.0.0.1:9/api", "functions": [FUNCTION]}
        )
        [event_id] = await side.engine.send_wire({"name": "t/go", "data": {}})
        for _ in range(200):
            [run] = await side.engine.store.read(lambda tx: tx.runs_for_event(event_id))
            if side.calls and run.status == "Running":
                break
            await asyncio.sleep(0.05)
        [(_, over)] = side.calls
        assert over is not None
        url = f"/v1/checkpoint/{run.run_id}/async"

        async def post(qi_id: str, *steps: dict[str, Any], path: str = url) -> httpx.Response:
            body = {
                "run_id": path.split("/")[3],
                "fn_id": "solo-fn",
                "qi_id": qi_id,
                "steps": list(steps),
            }
            return await c.post(path, json=body)

        # Another engine node's invocation: recorded, first write wins, a resend is fine.
        foreign = "01J00000000000000000000000:7"
        assert (await post(foreign, _step(A, "a", "A"))).status_code == 200
        assert (await post(foreign, _step(A, "a", "A"), _step(B, "b", "AB"))).status_code == 200
        assert await _memo(side.engine, run) == [(A, {"data": "A"}), (B, {"data": "AB"})]

        stale = [
            await post(foreign, _step(A, "a", "other")),  # another result for a stored step
            await post(over, _step("c" * 40, "c", 1)),  # this engine's invocation, now over
            await post("made-up", _step("c" * 40, "c", 1)),
            await post(foreign, _step("c" * 40, "c", 1), path="/v1/checkpoint/01NOPE/async"),
        ]
        assert [r.status_code for r in stale] == [409] * 4
        assert {r.json()["code"] for r in stale} == {"stale_dispatch"}

        sleep = {"op": "Sleep", "id": "d" * 40, "name": "1h", "userland": {"id": "nap"}}
        refused = await post(foreign, _step("c" * 40, "c", 1), sleep)
        assert refused.status_code == 400 and "'Sleep'" in refused.json()["error"]
        unauthenticated = await c.post(
            url, json={"qi_id": foreign, "steps": []}, headers={"Authorization": ""}
        )
        assert unauthenticated.status_code == 401
        assert len(await _memo(side.engine, run)) == 2

        await side.engine.cancel(run.run_id)
        ended = await post(foreign, _step("c" * 40, "c", 1))
        assert ended.status_code == 409 and "ended" in ended.json()["error"]


async def test_a_step_checkpointed_before_the_app_died_is_kept(tmp_path: Path) -> None:
    """The app checkpoints a step, then fails its request without an SDK's answer (as if it
    died): the step, written behind, is committed with the invocation's failure, and the run's
    retry will find it in its memo."""
    checkpointed: list[int] = []
    async with engineside(tmp_path / "e.db", retry_interval_ms=60_000) as side:

        async def dying_app(request: Request) -> Response:
            ctx = orjson.loads(await request.body())["ctx"]
            body = {"run_id": ctx["run_id"], "qi_id": ctx["qi_id"], "steps": [_step(A, "a", "A")]}
            async with httpx.AsyncClient(base_url=side.url) as c:
                answer = await c.post(f"/v1/checkpoint/{ctx['run_id']}/async", json=body)
            checkpointed.append(answer.status_code)
            return Response(b"gone", 502)  # no SDK headers: the app is not there any more

        port = free_port()
        app = Starlette(routes=[Route("/api", dying_app, methods=["POST"])])
        async with uvicorn_app(app, port):
            url = f"http://127.0.0.1:{port}/api"
            function = http_function("solo-fn", url)
            await side.engine.sync_app({"appName": "solo", "url": url, "functions": [function]})
            [event_id] = await side.engine.send_wire({"name": "t/go", "data": {}})
            for _ in range(200):
                runs = await side.engine.store.read(lambda tx: tx.runs_for_event(event_id))
                if checkpointed and runs and runs[0].attempt == 1:
                    break
                await asyncio.sleep(0.05)
        [run] = runs
        assert checkpointed == [200]
        assert (run.status, run.attempt) == ("Running", 1)  # retried in a minute
        assert await _memo(side.engine, run) == [(A, {"data": "A"})]
