"""Sending events from application code: async and sync, embedded and over HTTP."""

from __future__ import annotations

import asyncio

import pytest

import stepwell
from stepwell.errors import EventError
from tests.support import serve

app = stepwell.App("send")


@app.function("noop", trigger="send/noop")
async def noop(ctx: stepwell.Context) -> str:
    return ctx.event.data.get("v", "")


async def test_send_inside_the_embedded_engine_commits_before_returning(harness) -> None:
    async with harness(app) as h:
        ids = await app.send(
            [stepwell.Event("send/noop", {"v": "a"}), {"name": "send/noop", "data": {"v": "b"}}]
        )
        events = await h.engine.store.read(lambda tx: tx.get_events(ids))
        assert [e.data["v"] for e in events] == ["a", "b"]


async def test_send_sync_from_a_thread_reaches_the_embedded_engine(harness) -> None:
    async with harness(app) as h:
        ids = await asyncio.to_thread(app.send_sync, stepwell.Event("send/noop", {"v": "t"}))
        await h.settle()
        assert (await h.run_for(ids[0])).output == "t"


async def test_an_app_outside_the_engine_sends_over_http(tmp_path) -> None:
    served = stepwell.App("served")

    @served.function("echo", trigger="send/http")
    async def echo(ctx: stepwell.Context) -> str:
        return "ok"

    async with serve([served], tmp_path / "http.db") as url:
        client_side = stepwell.App("client", url=url)
        [event_id] = await client_side.send(stepwell.Event("send/http", {}))
        [sync_id] = await asyncio.to_thread(client_side.send_sync, stepwell.Event("send/http", {}))
        assert event_id != sync_id
        with pytest.raises(EventError, match="name"):
            await client_side.send({"name": "", "data": {}})


def test_bad_events_are_refused_before_sending() -> None:
    with pytest.raises(EventError):
        app.send_sync(stepwell.Event("", {}))
    with pytest.raises(EventError):
        app.send_sync(42)  # type: ignore[arg-type]
