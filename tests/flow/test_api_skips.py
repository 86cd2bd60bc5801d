"""Events that flow control kept from starting a run say so, with the reason, in the REST API."""

from __future__ import annotations

from pathlib import Path

import httpx

import stepwell
from tests.support import engine_server


async def test_skipped_events_show_the_reason(tmp_path: Path) -> None:
    app = stepwell.App("api")

    @app.function("once", trigger="api/go", rate_limit=stepwell.RateLimit(1, "1h"))
    async def once(ctx: stepwell.Context) -> str:
        return "ran"

    async with engine_server(tmp_path / "api.db") as served:
        await served.engine.register(app.register_request(), {f.full_id: f for f in app.functions})
        first, second = await served.engine.send_wire([{"name": "api/go"}, {"name": "api/go"}])
        async with httpx.AsyncClient(base_url=served.url) as client:
            ran = (await client.get(f"/v1/events/{first}/runs")).json()
            assert len(ran["data"]) == 1 and ran["skipped"] == []
            skipped = (await client.get(f"/v1/events/{second}/runs")).json()
            assert skipped["data"] == []
            [entry] = skipped["skipped"]
            assert entry["function_id"] == "api-once"
            assert entry["reason"].startswith("rate limited")
