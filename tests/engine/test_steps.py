"""Each step kind, end to end through the engine on a real SQLite file."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import stepwell
from stepwell.errors import StepError


async def test_sequential_steps_complete_and_record_output_in_order(harness) -> None:
    app = stepwell.App("t")

    @app.function("seq", trigger="t/go")
    async def seq(ctx: stepwell.Context) -> str:
        a = await ctx.step.run("a", lambda: "A")
        b = await ctx.step.run("b", lambda: a + "B")
        return b + "!"

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.settle()
        run = await h.run_for(event_id)
        assert run.status == "Completed"
        assert run.output == "AB!"
        memo = await h.memo(run.run_id)
        assert [m.step_id for m in memo] == ["a", "b"]
        assert [m.value for m in memo] == [{"data": "A"}, {"data": "AB"}]


async def test_each_step_body_runs_once_across_replays(harness) -> None:
    app = stepwell.App("t")
    calls: Counter[str] = Counter()

    def body(name: str) -> str:
        calls[name] += 1
        return name

    @app.function("once", trigger="t/go")
    async def once(ctx: stepwell.Context) -> list[str]:
        a = await ctx.step.run("a", body, "a")
        await ctx.step.sleep("nap", "1h")
        b = await ctx.step.run("b", body, "b")
        await ctx.step.sleep("nap-2", "1h")
        return [a, b]

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.advance("1h")
        await h.advance("1h")
        run = await h.run_for(event_id)
        assert run.status == "Completed"
        assert run.output == ["a", "b"]
        assert calls == {"a": 1, "b": 1}


async def test_sync_step_bodies_run_off_the_event_loop(harness) -> None:
    app = stepwell.App("t")
    loop_thread = threading.get_ident()

    @app.function("threads", trigger="t/go")
    async def threads(ctx: stepwell.Context) -> bool:
        ident = await ctx.step.run("where", threading.get_ident)
        return ident != loop_thread

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.settle()
        assert (await h.run_for(event_id)).output is True


async def test_sleep_wakes_only_when_due(harness) -> None:
    app = stepwell.App("t")

    @app.function("sleeper", trigger="t/go")
    async def sleeper(ctx: stepwell.Context) -> str:
        await ctx.step.sleep("nap", timedelta(days=3))
        return "awake"

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.advance("2d")
        assert (await h.run_for(event_id)).status == "Running"
        await h.advance("1d")
        run = await h.run_for(event_id)
        assert (run.status, run.output) == ("Completed", "awake")


async def test_sleep_until_an_absolute_time(harness) -> None:
    app = stepwell.App("t")
    start = datetime(2026, 1, 1, tzinfo=UTC)

    @app.function("until", trigger="t/go")
    async def until(ctx: stepwell.Context) -> str:
        await ctx.step.sleep_until("alarm", start + timedelta(hours=5))
        return "ring"

    async with harness(app, start_ms=int(start.timestamp() * 1000)) as h:
        [event_id] = await h.send("t/go")
        await h.advance("4h")
        assert (await h.run_for(event_id)).status == "Running"
        await h.advance("1h")
        assert (await h.run_for(event_id)).output == "ring"


async def test_wait_for_event_resumes_on_a_match_by_key(harness) -> None:
    app = stepwell.App("t")

    @app.function("waiter", trigger="order/placed")
    async def waiter(ctx: stepwell.Context) -> object:
        label = await ctx.step.wait_for_event(
            "label", event="label/created", match="data.order_id", timeout="7d"
        )
        return label.data["tracking"] if label else None

    async with harness(app) as h:
        [o1] = await h.send("order/placed", {"order_id": "o-1"})
        [o2] = await h.send("order/placed", {"order_id": "o-2"})
        await h.settle()
        await h.send("label/created", {"order_id": "o-2", "tracking": "T2"})
        await h.settle()
        assert (await h.run_for(o2)).output == "T2"
        assert (await h.run_for(o1)).status == "Running"


async def test_wait_for_event_times_out_to_none(harness) -> None:
    app = stepwell.App("t")

    @app.function("waiter", trigger="order/placed")
    async def waiter(ctx: stepwell.Context) -> object:
        label = await ctx.step.wait_for_event(
            "label", event="label/created", match="data.id", timeout="1h"
        )
        return "timed out" if label is None else "got it"

    async with harness(app) as h:
        [event_id] = await h.send("order/placed", {"id": 1})
        await h.advance("59m")
        assert (await h.run_for(event_id)).status == "Running"
        await h.advance("1m")
        assert (await h.run_for(event_id)).output == "timed out"
        # A late event neither resumes nor breaks the finished run.
        await h.send("label/created", {"id": 1})
        await h.settle()
        assert (await h.run_for(event_id)).output == "timed out"


async def test_wait_for_event_with_a_cel_condition(harness) -> None:
    app = stepwell.App("t")

    @app.function("approver", trigger="expense/filed")
    async def approver(ctx: stepwell.Context) -> object:
        ok = await ctx.step.wait_for_event(
            "approval",
            event="expense/approved",
            if_exp="async.data.amount >= event.data.amount && async.data.by != 'intern'",
            timeout="1d",
        )
        return ok.data["by"] if ok else None

    async with harness(app) as h:
        [event_id] = await h.send("expense/filed", {"amount": 100})
        await h.settle()
        await h.send("expense/approved", {"amount": 50, "by": "boss"})
        await h.send("expense/approved", {"amount": 100, "by": "intern"})
        await h.settle()
        assert (await h.run_for(event_id)).status == "Running"
        await h.send("expense/approved", {"amount": 150, "by": "boss"})
        await h.settle()
        assert (await h.run_for(event_id)).output == "boss"


async def test_wait_only_sees_events_after_it_started(harness) -> None:
    app = stepwell.App("t")

    @app.function("waiter", trigger="a/start")
    async def waiter(ctx: stepwell.Context) -> object:
        await ctx.step.sleep("first", "1m")
        got = await ctx.step.wait_for_event("w", event="a/ping", match="data.k", timeout="1h")
        return got is not None

    async with harness(app) as h:
        [event_id] = await h.send("a/start", {"k": 1})
        await h.settle()
        await h.send("a/ping", {"k": 1})  # before the wait exists
        await h.advance("1m")
        assert (await h.run_for(event_id)).status == "Running"
        await h.send("a/ping", {"k": 1})
        await h.settle()
        assert (await h.run_for(event_id)).output is True


async def test_send_event_fans_out_once_and_returns_ids(harness) -> None:
    app = stepwell.App("t")
    children: Counter[int] = Counter()

    @app.function("parent", trigger="fan/out")
    async def parent(ctx: stepwell.Context) -> int:
        ids = await ctx.step.send_event(
            "fan", [stepwell.Event("fan/child", {"n": n}) for n in range(5)]
        )
        await ctx.step.sleep("then-nap", "1m")  # forces a replay of send_event
        return len(ids)

    @app.function("child", trigger="fan/child")
    async def child(ctx: stepwell.Context) -> int:
        n = int(ctx.event.data["n"])
        children[n] += 1
        return n

    async with harness(app) as h:
        [event_id] = await h.send("fan/out")
        await h.advance("1m")
        assert (await h.run_for(event_id)).output == 5
        assert children == {n: 1 for n in range(5)}


async def test_invoke_returns_the_result_or_raises_its_error(harness) -> None:
    app = stepwell.App("t")

    @app.function("double")
    async def double(ctx: stepwell.Context) -> int:
        return int(ctx.event.data["x"]) * 2

    @app.function("broken", retries=0)
    async def broken(ctx: stepwell.Context) -> None:
        raise ValueError("nope")

    @app.function("caller", trigger="t/go")
    async def caller(ctx: stepwell.Context) -> dict[str, object]:
        doubled = await ctx.step.invoke("double-it", double, {"x": 21})
        try:
            await ctx.step.invoke("break-it", "broken")
        except StepError as exc:
            return {"doubled": doubled, "error": exc.name}
        return {"doubled": doubled}

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.settle()
        run = await h.run_for(event_id)
        assert run.output == {"doubled": 42, "error": "ValueError"}


async def test_invoke_times_out(harness) -> None:
    app = stepwell.App("t")

    @app.function("slow")
    async def slow(ctx: stepwell.Context) -> str:
        await ctx.step.sleep("long", "2h")
        return "late"

    @app.function("caller", trigger="t/go")
    async def caller(ctx: stepwell.Context) -> str:
        try:
            return await ctx.step.invoke("call", slow, timeout="1h")
        except stepwell.InvokeTimeoutError:
            return "timed out"

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.advance("1h")
        assert (await h.run_for(event_id)).output == "timed out"


async def test_parallel_steps_with_gather_and_the_helper(harness) -> None:
    app = stepwell.App("t")
    running = 0
    peak = 0

    async def work(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return n * n

    @app.function("par", trigger="t/go")
    async def par(ctx: stepwell.Context) -> list[int]:
        squares = await asyncio.gather(*(ctx.step.run("sq", work, n) for n in range(4)))
        pair = await ctx.step.parallel(
            lambda: ctx.step.run("x", work, 5), lambda: ctx.step.run("y", work, 6)
        )
        return [*squares, *pair]

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.settle()
        assert (await h.run_for(event_id)).output == [0, 1, 4, 9, 25, 36]
        assert peak >= 2


async def test_parallel_branches_that_sleep_and_wait_both_resume(harness) -> None:
    app = stepwell.App("t")

    @app.function("branches", trigger="t/go")
    async def branches(ctx: stepwell.Context) -> list[object]:
        async def sleeper() -> str:
            await ctx.step.sleep("nap", "1h")
            return await ctx.step.run("after-nap", lambda: "slept")

        async def waiter() -> object:
            got = await ctx.step.wait_for_event("w", event="t/ping", timeout="1d")
            return got.data["v"] if got else None

        return list(await asyncio.gather(sleeper(), waiter()))

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.settle()
        await h.send("t/ping", {"v": 7})
        await h.advance("1h")
        run = await h.run_for(event_id)
        assert (run.status, run.output) == ("Completed", ["slept", 7])


async def test_repeated_step_ids_in_a_loop_get_distinct_keys(harness) -> None:
    app = stepwell.App("t")

    @app.function("loop", trigger="t/go")
    async def loop(ctx: stepwell.Context) -> list[int]:
        out = []
        for i in range(3):
            out.append(await ctx.step.run("item", lambda i=i: i))
            await ctx.step.sleep("pause", "1s")
        return out

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        for _ in range(3):
            await h.advance("1s")
        run = await h.run_for(event_id)
        assert run.output == [0, 1, 2]
        memo = await h.memo(run.run_id)
        assert len({m.step_key for m in memo}) == 6


async def test_plain_def_handlers_run_in_a_thread_with_blocking_steps(harness) -> None:
    app = stepwell.App("t")
    calls: Counter[str] = Counter()

    @app.function("sync", trigger="t/go")
    def sync_handler(ctx) -> list[object]:  # type: ignore[no-untyped-def]
        def body() -> str:
            calls["a"] += 1
            return "A"

        a = ctx.step.run("a", body)
        try:
            ctx.step.sleep("nap", "1h")
        except Exception:  # the suspension must not be catchable as an Exception
            return ["swallowed"]
        got = ctx.step.wait_for_event("w", event="t/ping", timeout="1d")
        return [a, got.data["v"] if got else None, threading.get_ident() != loop_thread]

    loop_thread = threading.get_ident()
    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.advance("1h")
        await h.send("t/ping", {"v": 5})
        await h.settle()
        run = await h.run_for(event_id)
        assert (run.status, run.output) == ("Completed", ["A", 5, True])
        assert calls["a"] == 1
