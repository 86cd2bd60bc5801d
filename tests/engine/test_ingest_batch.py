"""Routing a batch of events at once finds what routing them one by one would: keyed and unkeyed
waits, waits of some names only, waits made by an earlier event of the batch or by another node,
and duplicate ids within the batch. On both stores."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import stepwell
from tests.flow.conftest import Bed, BedFactory, backend, bed, pg_backend

__all__ = ["backend", "bed", "pg_backend"]


async def _send_batch(node: Bed, events: list[dict[str, Any]]) -> list[str]:
    return await node.engine.send_wire(events)


def _waiting_app() -> stepwell.App:
    """Runs waiting on several event names: keyed by ``data.id``, by a free CEL condition, and
    with no condition at all."""
    app = stepwell.App("t")

    @app.function("keyed", trigger="t/start-keyed")
    async def keyed(ctx: stepwell.Context) -> Any:
        got = await ctx.step.wait_for_event(
            "approve", event="t/approve", match="data.id", timeout="1h"
        )
        return got.data["n"] if got else None

    @app.function("free", trigger="t/start-free")
    async def free(ctx: stepwell.Context) -> Any:
        got = await ctx.step.wait_for_event(
            "big", event="t/order", if_exp="async.data.total > event.data.min", timeout="1h"
        )
        return got.data["n"] if got else None

    @app.function("any", trigger="t/start-any")
    async def any_(ctx: stepwell.Context) -> Any:
        got = await ctx.step.wait_for_event("ping", event="t/ping", timeout="1h")
        return got.data["n"] if got else None

    return app


async def test_a_batch_of_many_names_resumes_the_keyed_and_unkeyed_waits_it_matches(
    bed: BedFactory,
) -> None:
    async with bed(_waiting_app()) as node:
        for key in ("a", "b", "c"):
            await node.send("t/start-keyed", {"id": key})
        await node.send("t/start-free", {"min": 10})
        await node.send("t/start-any")
        await node.settle()
        batch = [
            {"name": "t/noise-1", "data": {"id": "a"}},
            {"name": "t/approve", "data": {"id": "zzz", "n": 0}},
            {"name": "t/order", "data": {"total": 5, "n": 1}},
            {"name": "t/approve", "data": {"id": "b", "n": 2}},
            {"name": "t/noise-2", "data": {"n": 3}},
            {"name": "t/approve", "data": {"n": 4}},  # no key: matches no keyed wait
            {"name": "t/order", "data": {"total": 50, "n": 5}},
            {"name": "t/approve", "data": {"id": "a", "n": 6}},
            {"name": "t/ping", "data": {"n": 7}},
            {"name": "t/approve", "data": {"id": "a", "n": 8}},  # its wait was taken by n=6
            {"name": "t/order", "data": {"total": 99, "n": 9}},  # its wait was taken by n=5
        ]
        ids = await _send_batch(node, batch)
        assert len(set(ids)) == len(batch)
        await node.settle()
        outputs = {
            (r.function_id, r.status, r.output)
            for r in await node.runs()
            if r.function_id in ("t-keyed", "t-free", "t-any")
        }
    assert outputs == {
        ("t-keyed", "Completed", 6),
        ("t-keyed", "Completed", 2),
        ("t-keyed", "Running", None),  # waiting for "c"
        ("t-free", "Completed", 5),
        ("t-any", "Completed", 7),
    }


async def test_an_event_cancels_a_run_started_earlier_in_its_own_batch(bed: BedFactory) -> None:
    app = stepwell.App("t")

    @app.function(
        "onboard",
        trigger="user/signed-up",
        cancel_on=[
            stepwell.CancelOn("user/deleted", match="data.user_id"),
            stepwell.CancelOn("user/banned", if_exp="async.data.who == event.data.user_id"),
        ],
    )
    async def onboard(ctx: stepwell.Context) -> None:
        await ctx.step.sleep("later", "3d")

    async with bed(app) as node:
        await _send_batch(
            node,
            [
                {"name": "user/signed-up", "data": {"user_id": "a"}},
                {"name": "user/signed-up", "data": {"user_id": "b"}},
                {"name": "user/signed-up", "data": {"user_id": "c"}},
                {"name": "user/deleted", "data": {"user_id": "a"}},
                {"name": "user/banned", "data": {"who": "b"}},
            ],
        )
        await node.settle()
        runs = await node.runs("onboard")
    events = [r.event_id for r in runs]
    assert events == sorted(events)  # event ids follow the batch's order
    assert [r.status for r in runs] == ["Cancelled", "Cancelled", "Running"]


async def test_an_event_right_after_a_wait_made_on_another_node_resumes_it(
    bed: BedFactory,
) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(bed(_waiting_app(), node_id="A"))
        b = await stack.enter_async_context(bed(_waiting_app(), node_id="B"))
        # B routes the awaited names first, while no wait exists anywhere.
        await _send_batch(b, [{"name": "t/approve", "data": {"id": "x"}}, {"name": "t/ping"}])
        await a.send("t/start-keyed", {"id": "x"})
        await a.send("t/start-any")
        await a.settle()  # A runs them up to their waits
        assert {r.status for r in await a.runs()} >= {"Running"}
        await _send_batch(
            b,
            [
                {"name": "t/approve", "data": {"id": "x", "n": 1}},
                {"name": "t/ping", "data": {"n": 2}},
            ],
        )
        await a.settle()
        await b.settle()
        done = {(r.function_id, r.output) for r in await a.runs() if r.status == "Completed"}
    assert done == {("t-keyed", 1), ("t-any", 2)}


async def test_duplicate_ids_in_one_batch_store_and_route_the_first_only(
    bed: BedFactory,
) -> None:
    app = stepwell.App("t")

    @app.function("count", trigger="t/go")
    async def count(ctx: stepwell.Context) -> Any:
        return ctx.event.data["n"]

    async with bed(app) as node:
        ids = await _send_batch(
            node,
            [
                {"name": "t/go", "id": "k1", "data": {"n": 1}},
                {"name": "t/go", "id": "k2", "data": {"n": 2}},
                {"name": "t/go", "id": "k1", "data": {"n": 3}},
                {"name": "t/go", "data": {"n": 4}},
                {"name": "t/go", "id": "k2", "data": {"n": 5}},
            ],
        )
        again = await _send_batch(node, [{"name": "t/go", "id": "k2", "data": {"n": 6}}])
        await node.settle()
        runs = await node.runs("count")
    assert ids[2] == ids[0] and ids[4] == ids[1] and again == [ids[1]]
    assert len(set(ids)) == 3
    assert sorted(r.output for r in runs) == [1, 2, 4]
