"""Pausing a function: its events start no run and say why; it resumes; other nodes notice."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import stepwell
from stepwell.errors import NotFound
from tests.flow.conftest import BedFactory
from tests.support import engine_server


def build_app() -> stepwell.App:
    app = stepwell.App("t")

    @app.function("work", trigger="t/go")
    async def work(ctx: stepwell.Context) -> str:
        return await ctx.step.run("a", lambda: "done")

    @app.function("caller", trigger="t/call")
    async def caller(ctx: stepwell.Context) -> str:
        try:
            return str(await ctx.step.invoke("call", "work", {}))
        except stepwell.StepError as exc:
            return f"failed: {exc}"

    return app


async def test_a_paused_function_starts_no_run_until_resumed(bed: BedFactory) -> None:
    async with bed(build_app()) as b:
        assert await b.engine.pause("t-work") is True
        held = await b.send("t/go")
        called = await b.send("t/call")
        await b.settle()
        assert await b.runs_for(held) == []
        [(_, reason)] = await b.skips(held)
        assert reason.startswith("function paused")
        [call] = await b.runs_for(called)
        assert call.output.startswith("failed:") and "paused" in call.output
        assert await b.engine.pause("t-work", False) is True
        assert await b.engine.pause("t-work", False) is False  # already running
        later = await b.send("t/go")
        await b.settle()
        assert [r.output for r in await b.runs_for(later)] == ["done"]
        with pytest.raises(NotFound):
            await b.engine.pause("t-nope")


async def test_pause_and_resume_through_the_rest_api(tmp_path: Path) -> None:
    app = build_app()
    async with engine_server(tmp_path / "api.db") as served:
        await served.engine.register(app.register_request(), {f.full_id: f for f in app.functions})
        async with httpx.AsyncClient(base_url=served.url) as client:
            paused = await client.post("/v1/functions/t-work/pause")
            assert paused.json()["data"] == {
                "function_id": "t-work",
                "paused": True,
                "changed": True,
            }
            [event_id] = await served.engine.send_wire({"name": "t/go"})
            skipped = (await client.get(f"/v1/events/{event_id}/runs")).json()["skipped"]
            assert [s["function_id"] for s in skipped] == ["t-work"]
            resumed = await client.post("/v1/functions/t-work/resume")
            assert resumed.json()["data"]["paused"] is False
            assert (await client.post("/v1/functions/t-nope/pause")).status_code == 404
