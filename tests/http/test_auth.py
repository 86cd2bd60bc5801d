"""Production mode: signatures, bearer tokens, event keys and key rotation, with the official
Python SDK on one side and raw HTTP probes on the other."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from stepwell.protocol.signing import bearer_token
from tests.http.official_app import build
from tests.support import free_port, uvicorn_app

OLD = "signkey-prod-" + "11" * 32
NEW = "signkey-prod-" + "22" * 32


async def _finished(engine, event_id: str):  # type: ignore[no-untyped-def]
    for _ in range(300):
        runs = await engine.store.read(lambda tx: tx.runs_for_event(event_id))
        if runs and runs[0].status in {"Completed", "Failed", "Cancelled"}:
            return runs[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no finished run for {event_id}")


async def test_sdk_calls_and_the_rest_api_need_the_right_bearer_token(engine_at) -> None:
    async with (
        engine_at(signing_key=NEW, event_keys=["ek"]) as served,
        httpx.AsyncClient(base_url=served.url) as c,
    ):
        body = {"url": "http://127.0.0.1:9/api", "appName": "x", "functions": []}
        assert (await c.post("/fn/register", json=body)).status_code == 401
        wrong = {"Authorization": f"Bearer {bearer_token(OLD)}"}
        assert (await c.post("/fn/register", json=body, headers=wrong)).status_code == 401
        hashed = bearer_token(NEW)
        for token in (hashed, f"signkey-prod-{hashed}"):  # the PY and TS forms
            response = await c.post(
                "/fn/register", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200, response.text
        assert (await c.get("/v1/runs")).status_code == 401
        assert (await c.get("/v1/runs", headers=wrong)).status_code == 401
        assert (
            await c.get("/v1/runs", headers={"Authorization": f"Bearer {NEW}"})
        ).status_code == 200
        assert (await c.get("/v0/runs/nope/actions")).status_code == 401
        assert (await c.post("/e/not-a-key", json={"name": "a"})).status_code == 401
        assert (await c.post("/e/ek", json={"name": "a"})).status_code == 200


async def test_register_refuses_a_server_kind_mismatch(engine_at) -> None:
    async with engine_at() as served, httpx.AsyncClient(base_url=served.url) as c:
        body = {"url": "http://127.0.0.1:9/api", "appName": "x", "functions": []}
        response = await c.post(
            "/fn/register", json=body, headers={"X-Inngest-Expected-Server-Kind": "cloud"}
        )
        assert response.status_code == 400
        assert response.json()["status"] == 400 and "dev" in response.json()["error"]


async def test_an_app_with_another_signing_key_is_refused(engine_at) -> None:
    async with engine_at(signing_key=OLD, event_keys=["ek"]) as served:
        port = free_port()
        async with uvicorn_app(build(served.url, signing_key=NEW, event_key="ek"), port):
            state = await served.syncer.sync(f"http://127.0.0.1:{port}/api/inngest")
            assert not state.ok
            assert served.engine.registry.all() == []


async def test_key_rotation_with_the_fallback_key(
    engine_at, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The app already has the new key, with the old one as fallback; the engine still signs with
    # the old key and accepts the new one as its fallback. Everything keeps working.
    monkeypatch.setenv("INNGEST_SIGNING_KEY_FALLBACK", OLD)
    async with engine_at(signing_key=OLD, fallback=NEW, event_keys=["ek"]) as served:
        port = free_port()
        async with uvicorn_app(build(served.url, signing_key=NEW, event_key="ek"), port):
            state = await served.syncer.sync(f"http://127.0.0.1:{port}/api/inngest")
            assert state.ok, state.error
            [event_id] = await served.engine.send_wire([{"name": "py/sequential"}])
            run = await _finished(served.engine, event_id)
            assert (run.status, run.output) == ("Completed", "AB")


async def test_a_forged_response_signature_is_not_trusted(engine_at) -> None:
    # A server that answers like an SDK but cannot sign with our key gets no result recorded.
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def fake(request):  # type: ignore[no-untyped-def]
        if request.method == "PUT":
            return JSONResponse({}, status_code=200)
        return JSONResponse(
            "pwned",
            headers={"X-Inngest-SDK": "inngest-py:v0.5.19", "X-Inngest-Signature": "t=1&s=00"},
        )

    fake_app = Starlette(routes=[Route("/api/inngest", fake, methods=["GET", "POST", "PUT"])])
    async with engine_at(signing_key=OLD, event_keys=["ek"]) as served:
        port = free_port()
        url = f"http://127.0.0.1:{port}/api/inngest"
        await served.engine.sync_app(
            {
                "appName": "fake",
                "url": url,
                "functions": [
                    {
                        "id": "fake-fn",
                        "triggers": [{"event": "fake/go"}],
                        "steps": {
                            "step": {
                                "id": "step",
                                "runtime": {
                                    "type": "http",
                                    "url": f"{url}?fnId=fake-fn&stepId=step",
                                },
                                "retries": {"attempts": 0},
                            }
                        },
                    }
                ],
            }
        )
        async with uvicorn_app(fake_app, port):
            [event_id] = await served.engine.send_wire([{"name": "fake/go"}])
            run = await _finished(served.engine, event_id)
        assert run.status == "Failed"
        assert "signature" in run.error["message"]
