"""The HTTP API over a real loopback server: ingest, REST v1, bad input."""

from __future__ import annotations

import asyncio

import httpx

import stepwell

app = stepwell.App("api")


@app.function("echo", trigger="api/echo")
async def echo(ctx: stepwell.Context) -> dict:
    value = await ctx.step.run("copy", lambda: dict(ctx.event.data))
    return {"echo": value}


@app.function("sleeper", trigger="api/sleep")
async def sleeper(ctx: stepwell.Context) -> None:
    await ctx.step.sleep("long", "1h")


async def _wait_status(client: httpx.AsyncClient, run_id: str, status: str) -> dict:
    for _ in range(200):
        run = (await client.get(f"/v1/runs/{run_id}")).json()["data"]
        if run["status"] == status:
            return run
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} never reached {status}: {run}")


async def _runs_of(client: httpx.AsyncClient, event_id: str) -> list[dict]:
    for _ in range(200):
        runs = (await client.get(f"/v1/events/{event_id}/runs")).json()["data"]
        if runs:
            return runs
        await asyncio.sleep(0.02)
    raise AssertionError(f"event {event_id} started no run")


async def test_an_event_posted_runs_and_is_visible_in_the_rest_api(server) -> None:
    async with server(app) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/e/any-key", json={"name": "api/echo", "data": {"x": 1}})
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == 200 and len(body["ids"]) == 1
        [event_id] = body["ids"]
        event = (await client.get(f"/v1/events/{event_id}")).json()["data"]
        assert (event["name"], event["data"]) == ("api/echo", {"x": 1})
        [run] = await _runs_of(client, event_id)
        assert run["function_id"] == "api-echo" and run["event_id"] == event_id
        done = await _wait_status(client, run["run_id"], "Completed")
        assert done["output"] == {"echo": {"x": 1}}
        assert done["run_started_at"] is not None and done["ended_at"] is not None
        listed = (await client.get("/v1/runs", params={"function_id": "api-echo"})).json()["data"]
        assert [r["run_id"] for r in listed] == [run["run_id"]]


async def test_an_array_of_events_gets_ids_in_order(server) -> None:
    async with server(app) as url, httpx.AsyncClient(base_url=url) as client:
        events = [{"name": "api/none", "data": {"n": n}} for n in range(3)]
        body = (await client.post("/e/k", json=events)).json()
        stored = [
            (await client.get(f"/v1/events/{i}")).json()["data"]["data"]["n"] for i in body["ids"]
        ]
        assert stored == [0, 1, 2]


async def test_delete_cancels_a_sleeping_run(server) -> None:
    async with server(app) as url, httpx.AsyncClient(base_url=url) as client:
        [event_id] = (await client.post("/e/k", json={"name": "api/sleep"})).json()["ids"]
        [run] = await _runs_of(client, event_id)
        await _wait_status(client, run["run_id"], "Running")
        response = await client.delete(f"/v1/runs/{run['run_id']}")
        assert response.status_code == 200
        assert response.json()["data"]["status"] == "Cancelled"


async def test_bad_input_gets_a_clear_json_error_and_stores_nothing(server) -> None:
    async with server(app) as url, httpx.AsyncClient(base_url=url) as client:
        cases = [
            (b"{not json", 400, "JSON"),
            (b'{"data": {}}', 400, "name"),
            (b'{"name": 42}', 400, "name"),
            (b'{"name": "a", "data": "text"}', 400, "data"),
            (b'{"name": "a", "ts": "yesterday"}', 400, "ts"),
            (b"[]", 400, "no events"),
            (b'[{"name": "ok"}, {"name": ""}]', 400, "event[1]"),
        ]
        for body, status, fragment in cases:
            response = await client.post("/e/k", content=body)
            assert response.status_code == status, body
            payload = response.json()
            assert payload["status"] == status and fragment in payload["error"], payload
        big = {"name": "a", "data": {"blob": "x" * (600 * 1024)}}
        response = await client.post("/e/k", json=big)
        assert response.status_code == 413
        huge = b'{"name": "a", "data": {"blob": "' + b"x" * (4 * 1024 * 1024) + b'"}}'
        response = await client.post("/e/k", content=huge)
        assert response.status_code == 413
        assert (await client.get("/v1/events")).json()["data"] == []


async def test_unknown_ids_are_404_and_bad_queries_400(server) -> None:
    async with server(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/v1/runs/nope")).status_code == 404
        assert (await client.delete("/v1/runs/nope")).status_code == 404
        assert (await client.get("/v1/events/nope")).status_code == 404
        assert (await client.get("/v1/events/nope/runs")).status_code == 404
        assert (await client.get("/v1/runs", params={"status": "Sleeping"})).status_code == 400
        assert (await client.get("/v1/runs", params={"limit": "0"})).status_code == 400
        health = await client.get("/health")
        assert health.json() == {"status": 200, "message": "OK"}


async def test_event_keys_are_checked_when_configured(server) -> None:
    async with server(app, event_keys=["secret"]) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.post("/e/wrong", json={"name": "a"})).status_code == 401
        assert (await client.post("/e/secret", json={"name": "a"})).status_code == 200
