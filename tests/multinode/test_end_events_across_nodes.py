"""End events across nodes: a function triggered by ``inngest/function.finished`` that another
node synced hears the end of a run on this node, although this node had not loaded it yet."""

from __future__ import annotations

import asyncio

import fastapi
import pytest

import stepwell
from stepwell.clock import SystemClock
from stepwell.engine.drivers.http import HttpDriver
from stepwell.engine.engine import Engine
from stepwell.sdk import serve
from stepwell.store.postgres import PostgresStore
from stepwell.store.records import RunFilter
from tests.support import free_port, uvicorn_app

pytestmark = pytest.mark.postgres

watchers = stepwell.App("watchers")


@watchers.function("watch", trigger="inngest/function.finished")
async def watch(ctx: stepwell.Context) -> str:
    return str(ctx.event.data["run_id"])


async def test_a_listener_synced_on_another_node_hears_a_run_end_here(pg_url: str) -> None:
    web = fastapi.FastAPI()
    serve.fastapi(web, watchers, mode="dev", api_base_url="http://127.0.0.1:9", event_key="x")
    port = free_port()
    gate = asyncio.Event()
    jobs = stepwell.App("jobs")

    @jobs.function("job", trigger="jobs/go")
    async def job(ctx: stepwell.Context) -> str:
        await ctx.step.run("held", gate.wait)
        return "done"

    nodes = [
        Engine(PostgresStore(pg_url), http=HttpDriver(SystemClock()), node_id=name)
        for name in ("A", "B")
    ]
    async with uvicorn_app(web, port):
        for node in nodes:
            await node.start()
        try:
            a, b = nodes
            await b.register(jobs.register_request(), {f.full_id: f for f in jobs.functions})
            [event_id] = await b.send_wire({"name": "jobs/go"})
            await asyncio.sleep(0.2)  # B runs the job, held in its step
            await a.sync_app(watchers.register_request(f"http://127.0.0.1:{port}/api/stepwell"))
            assert b.registry.get("watchers-watch") is None  # B has not loaded it
            gate.set()  # the job ends on B
            job_run = None
            for _ in range(200):
                runs = await b.store.read(lambda tx: tx.list_runs(RunFilter(limit=10)))
                watched = [r for r in runs if r.function_id == "watchers-watch"]
                job_run = next(r for r in runs if r.event_id == event_id)
                if watched and watched[0].status == "Completed":
                    break
                await asyncio.sleep(0.05)
            assert job_run is not None and job_run.status == "Completed"
            assert [r.output for r in watched] == [job_run.run_id]
        finally:
            for node in nodes:
                await node.stop(grace_s=1)
