"""An app synced through one node is known to every node sharing the database, at once: an event
that reaches another node a moment later starts its runs there."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import fastapi
import pytest

import stepwell
from stepwell.clock import SystemClock
from stepwell.engine.drivers.http import HttpDriver
from stepwell.engine.engine import Engine
from stepwell.sdk import serve
from tests.conformance.conftest import Backend, _postgres
from tests.support import free_port, uvicorn_app

app = stepwell.App("spread")


@app.function("greet", trigger="spread/hello")
async def greet(ctx: stepwell.Context) -> str:
    return await ctx.step.run("say", lambda: f"hello {ctx.event.data['who']}")


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Backend]:
    made = _postgres(tmp_path)
    yield made
    made.cleanup()


async def test_an_app_synced_on_one_node_runs_events_sent_to_another(pg: Backend) -> None:
    web = fastapi.FastAPI()
    serve.fastapi(web, app, mode="dev", api_base_url="http://127.0.0.1:9", event_key="x")
    port = free_port()
    nodes = [Engine(pg.make(), http=HttpDriver(SystemClock()), node_id=name) for name in ("A", "B")]
    async with uvicorn_app(web, port):
        for node in nodes:
            await node.start()
        try:
            a, b = nodes
            url = f"http://127.0.0.1:{port}/api/stepwell"
            await a.sync_app(app.register_request(url))
            assert b.registry.get("spread-greet") is None  # B has not loaded it yet
            [event_id] = await b.send_wire({"name": "spread/hello", "data": {"who": "B"}})
            assert b.registry.get("spread-greet") is not None
            for _ in range(200):
                runs = await b.store.read(lambda tx: tx.runs_for_event(event_id))
                if runs and runs[0].status == "Completed":
                    break
                await asyncio.sleep(0.05)
            assert [(r.status, r.output) for r in runs] == [("Completed", "hello B")]
        finally:
            for node in nodes:
                await node.stop(grace_s=1)
