"""A run's end events are stored once for every end, and routed to whatever observes them: a
function triggered by their name (wildcards too), a ``wait_for_event`` or ``cancel_on`` on it.
An invoking parent gets its child's result without them."""

from __future__ import annotations

from typing import Any

import stepwell
from stepwell.testing import Harness

FINISHED = "inngest/function.finished"
FAILED = "inngest/function.failed"


async def _events(h: Harness, name: str) -> list[dict[str, Any]]:
    stored = await h.engine.store.read(lambda tx: tx.list_events(name))
    return [e.data for e in stored]


def _ok_app() -> stepwell.App:
    app = stepwell.App("t")

    @app.function("ok", trigger="t/go")
    async def ok(ctx: stepwell.Context) -> int:
        return int(await ctx.step.run("one", lambda: 1))

    return app


async def test_a_run_nothing_listens_to_still_stores_its_end_event_once(harness) -> None:
    async with harness(_ok_app()) as h:
        [event_id] = await h.send("t/go")
        await h.settle()
        run = await h.run_for(event_id)
        assert run.status == "Completed"
        [finished] = await _events(h, FINISHED)
        assert finished["run_id"] == run.run_id and finished["result"] == 1
        assert len(await h.engine.store.read(_all_runs)) == 1  # it started nothing


async def test_a_function_triggered_by_function_finished_runs_once_per_end(harness) -> None:
    app = _ok_app()

    @app.function("watch", trigger=FINISHED)
    async def watch(ctx: stepwell.Context) -> str:
        return str(ctx.event.data["run_id"])

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.settle()
        run = await h.run_for(event_id)
        [finished] = await _events(h, FINISHED)
        assert finished["run_id"] == run.run_id and finished["result"] == 1
        [watcher] = [r for r in await h.engine.store.read(_all_runs) if r.function_id == "t-watch"]
        assert watcher.output == run.run_id


async def test_a_wildcard_trigger_hears_every_end_event(harness) -> None:
    app = stepwell.App("t")
    heard: list[str] = []

    @app.function("bad", trigger="t/go", retries=0)
    async def bad(ctx: stepwell.Context) -> None:
        raise ValueError("boom")

    @app.function("all", trigger="inngest/function.*")
    async def all_ends(ctx: stepwell.Context) -> None:
        heard.append(ctx.event.name)

    async with harness(app) as h:
        await h.send("t/go")
        await h.settle()
        assert sorted(heard) == [FAILED, FINISHED]


async def test_an_on_failure_handler_gets_the_failed_event_once(harness) -> None:
    app = stepwell.App("t")
    seen: list[str] = []

    async def cleanup(ctx: stepwell.Context) -> None:
        seen.append(ctx.event.data["error"]["message"])

    @app.function("fragile", trigger="t/go", retries=0, on_failure=cleanup)
    async def fragile(ctx: stepwell.Context) -> None:
        raise ValueError("boom")

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.settle()
        assert (await h.run_for(event_id)).status == "Failed"
        assert seen == ["boom"]
        assert [e["function_id"] for e in await _events(h, FAILED)] == ["t-fragile"]
        # the handler's own run ends too, but runs started by end events emit none
        assert [e["function_id"] for e in await _events(h, FINISHED)] == ["t-fragile"]


async def test_a_wait_for_function_finished_is_resumed_by_the_end(harness) -> None:
    app = _ok_app()

    @app.function("waiter", trigger="t/wait")
    async def waiter(ctx: stepwell.Context) -> Any:
        ended = await ctx.step.wait_for_event(
            "ended", event=FINISHED, if_exp="async.data.function_id == 't-ok'", timeout="1h"
        )
        return ended.data["result"] if ended else None

    async with harness(app) as h:
        [wait_id] = await h.send("t/wait")
        await h.settle()
        await h.send("t/go")
        await h.settle()
        assert (await h.run_for(wait_id)).output == 1


async def test_a_cancel_on_function_finished_cancels_the_run(harness) -> None:
    app = _ok_app()

    @app.function(
        "long",
        trigger="t/long",
        cancel_on=stepwell.CancelOn(FINISHED, if_exp="async.data.function_id == 't-ok'"),
    )
    async def long(ctx: stepwell.Context) -> str:
        await ctx.step.sleep("nap", "1d")
        return "slept"

    async with harness(app) as h:
        [long_id] = await h.send("t/long")
        await h.settle()
        await h.send("t/go")
        await h.settle()
        run = await h.run_for(long_id)
        assert run.status == "Cancelled" and FINISHED in (run.cancel_reason or "")


async def test_an_invoking_parent_gets_the_result_from_its_child_directly(harness) -> None:
    app = stepwell.App("t")

    @app.function("child")
    async def child(ctx: stepwell.Context) -> int:
        return int(ctx.event.data["n"]) * 2

    @app.function("parent", trigger="t/go")
    async def parent(ctx: stepwell.Context) -> int:
        return int(await ctx.step.invoke("call", child, {"n": 21}))

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.settle()
        assert (await h.run_for(event_id)).output == 42
        assert sorted(e["function_id"] for e in await _events(h, FINISHED)) == [
            "t-child",
            "t-parent",
        ]


async def test_the_end_event_carries_the_trigger_as_stored_even_if_the_handler_changed_it(
    harness,
) -> None:
    app = stepwell.App("t")

    @app.function("meddler", trigger="t/go")
    async def meddler(ctx: stepwell.Context) -> int:
        ctx.event.data["n"] = 999  # changes the handler's copy only
        return int(await ctx.step.run("one", lambda: 1))

    async with harness(app) as h:
        await h.send("t/go", {"n": 1})
        await h.settle()
        [finished] = await _events(h, FINISHED)
        assert finished["event"]["data"] == {"n": 1}
        assert [e["data"] for e in finished["events"]] == [{"n": 1}]


def _all_runs(tx: Any) -> Any:
    from stepwell.store.records import RunFilter

    return tx.list_runs(RunFilter(limit=100))
