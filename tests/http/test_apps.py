"""Apps: discovered on local ports, synced by URL, listed with their sync state and errors."""

from __future__ import annotations

import fastapi
import httpx

import stepwell
from stepwell.sdk import serve
from tests.support import free_port, uvicorn_app

app = stepwell.App("listed")


@app.function("hello", trigger="listed/hello")
async def hello(ctx: stepwell.Context) -> str:
    return "hi"


async def test_apps_are_discovered_synced_and_listed_with_their_errors(engine_at) -> None:
    async with engine_at() as served, httpx.AsyncClient(base_url=served.url) as client:
        web = fastapi.FastAPI()
        serve.fastapi(web, app, mode="dev", api_base_url=served.url, event_api_base_url=served.url)
        port, closed_port = free_port(), free_port()
        async with uvicorn_app(web, port):
            found = await served.syncer.discover(ports=[closed_port, port])
            assert found == [f"http://127.0.0.1:{port}/api/stepwell"]

            response = await client.post("/v1/apps/sync", json={"url": found[0]})
            assert response.status_code == 200 and response.json()["data"]["ok"] is True
            dead = f"http://127.0.0.1:{closed_port}/api/inngest"
            response = await client.post("/v1/apps/sync", json={"url": dead})
            assert response.status_code == 502
            assert "cannot reach" in response.json()["data"]["error"]
            bad = await client.post("/v1/apps/sync", json={"url": "ftp://x"})
            assert bad.status_code == 400

            rows = {
                r["url"].split("?")[0]: r for r in (await client.get("/v1/apps")).json()["data"]
            }
            listed = rows[found[0]]
            assert listed["app_id"] == "listed" and listed["functions"] == ["listed-hello"]
            assert listed["error"] is None
            assert "cannot reach" in rows[dead]["error"]
