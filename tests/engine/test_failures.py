"""Retries, backoff, NonRetriableError, RetryAfterError, StepError, on_failure, non-determinism."""

from __future__ import annotations

from collections import Counter

import pytest

import stepwell
from stepwell.errors import StepError


async def test_a_failing_step_is_retried_with_backoff_then_succeeds(harness) -> None:
    app = stepwell.App("t")
    attempts: list[int] = []

    @app.function("flaky", trigger="t/go", retries=3)
    async def flaky(ctx: stepwell.Context) -> str:
        def body() -> str:
            attempts.append(ctx.attempt)
            if len(attempts) < 3:
                raise ConnectionError("try again")
            return "ok"

        return await ctx.step.run("call", body)

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.settle()
        assert len(attempts) == 1
        await h.advance("10s")  # first backoff is 15 s (+ jitter): not yet
        assert len(attempts) == 1
        await h.advance("7s")
        assert len(attempts) == 2
        await h.advance("40s")  # second backoff is 30 s (+ jitter)
        run = await h.run_for(event_id)
        assert (run.status, run.output) == ("Completed", "ok")
        assert attempts == [0, 1, 2]


async def test_retries_exhausted_raise_step_error_the_handler_can_catch(harness) -> None:
    app = stepwell.App("t")
    calls = Counter[str]()

    @app.function("catcher", trigger="t/go", retries=1)
    async def catcher(ctx: stepwell.Context) -> str:
        def body() -> None:
            calls["body"] += 1
            raise KeyError("missing")

        try:
            await ctx.step.run("doomed", body)
        except StepError as exc:
            return f"caught {exc.name} from {exc.step_id}"
        return "unreachable"

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.advance("1m")
        run = await h.run_for(event_id)
        assert run.output == "caught KeyError from doomed"
        assert calls["body"] == 2


async def test_non_retriable_error_fails_the_step_at_once(harness) -> None:
    app = stepwell.App("t")
    calls = Counter[str]()

    @app.function("strict", trigger="t/go", retries=4)
    async def strict(ctx: stepwell.Context) -> None:
        def body() -> None:
            calls["body"] += 1
            raise stepwell.NonRetriableError("card declined")

        await ctx.step.run("charge", body)

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.advance("1h")
        run = await h.run_for(event_id)
        assert run.status == "Failed"
        assert calls["body"] == 1
        assert "card declined" in run.error["message"]


async def test_retry_after_error_sets_the_next_attempt_time(harness) -> None:
    app = stepwell.App("t")
    attempts: list[int] = []

    @app.function("limited", trigger="t/go")
    async def limited(ctx: stepwell.Context) -> str:
        def body() -> str:
            attempts.append(ctx.attempt)
            if len(attempts) == 1:
                raise stepwell.RetryAfterError("rate limited", "2m")
            return "done"

        return await ctx.step.run("api", body)

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.advance("1m59s")
        assert attempts == [0]
        await h.advance("1s")
        assert (await h.run_for(event_id)).output == "done"


async def test_handler_code_errors_are_retried_then_fail_the_run(harness) -> None:
    app = stepwell.App("t")
    calls = Counter[str]()

    @app.function("bad", trigger="t/go", retries=2)
    async def bad(ctx: stepwell.Context) -> None:
        calls["handler"] += 1
        raise RuntimeError("bug")

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        for _ in range(3):
            await h.advance("5m")
        run = await h.run_for(event_id)
        assert run.status == "Failed"
        assert calls["handler"] == 3
        assert run.error["name"] == "RuntimeError"


async def test_on_failure_runs_once_with_the_error(harness) -> None:
    app = stepwell.App("t")
    seen: list[dict] = []

    async def cleanup(ctx: stepwell.Context) -> None:
        seen.append(dict(ctx.event.data))

    @app.function("fragile", trigger="t/go", retries=0, on_failure=cleanup)
    async def fragile(ctx: stepwell.Context) -> None:
        raise ValueError("boom")

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.settle()
        run = await h.run_for(event_id)
        assert run.status == "Failed"
        assert len(seen) == 1
        assert seen[0]["function_id"] == "t-fragile"
        assert seen[0]["run_id"] == run.run_id
        assert seen[0]["error"]["message"] == "boom"


async def test_system_events_are_emitted_once_per_run_end(harness) -> None:
    app = stepwell.App("t")
    finished: list[str] = []

    @app.function("ok", trigger="t/go")
    async def ok(ctx: stepwell.Context) -> int:
        return 1

    @app.function("watch", trigger="inngest/function.finished")
    async def watch(ctx: stepwell.Context) -> None:
        finished.append(ctx.event.data["function_id"])

    async with harness(app) as h:
        await h.send("t/go")
        await h.settle()
        # the watcher's own end emits no event, so it never re-triggers itself
        assert finished == ["t-ok"]


async def test_replay_that_contradicts_the_memo_fails_the_run_naming_the_step(harness) -> None:
    app = stepwell.App("t")
    version = {"n": 1}

    @app.function("changing", trigger="t/go")
    async def changing(ctx: stepwell.Context) -> str:
        if version["n"] == 1:
            await ctx.step.run("fetch-user", lambda: 1)
        else:
            await ctx.step.run("fetch-account", lambda: 2)
        await ctx.step.sleep("nap", "1m")
        return "done"

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.settle()
        version["n"] = 2
        await h.advance("1m")
        run = await h.run_for(event_id)
        assert run.status == "Failed"
        assert run.error["name"] == "NonDeterminismError"
        assert "fetch-account" in run.error["message"]
        assert "fetch-user" in run.error["message"]


async def test_a_step_of_another_kind_under_the_same_id_is_non_deterministic(harness) -> None:
    app = stepwell.App("t")
    version = {"n": 1}

    @app.function("kinds", trigger="t/go")
    async def kinds(ctx: stepwell.Context) -> str:
        if version["n"] == 1:
            await ctx.step.run("thing", lambda: 1)
            await ctx.step.sleep("nap", "1m")
        else:
            await ctx.step.sleep("thing", "1s")
        return "done"

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.settle()
        version["n"] = 2
        await h.advance("1m")
        run = await h.run_for(event_id)
        assert run.status == "Failed"
        assert "'thing'" in run.error["message"]


async def test_nested_steps_fail_the_run_clearly(harness) -> None:
    app = stepwell.App("t")

    @app.function("nested", trigger="t/go")
    async def nested(ctx: stepwell.Context) -> None:
        async def outer() -> None:
            await ctx.step.run("inner", lambda: 1)

        await ctx.step.run("outer", outer)

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.settle()
        run = await h.run_for(event_id)
        assert run.status == "Failed"
        assert "nested" in run.error["message"]


@pytest.mark.parametrize("value", [object(), {1, 2}.__class__])
async def test_unserialisable_step_output_fails_without_retries(harness, value) -> None:
    app = stepwell.App("t")
    calls = Counter[str]()

    @app.function("odd", trigger="t/go")
    async def odd(ctx: stepwell.Context) -> None:
        def body() -> object:
            calls["n"] += 1
            return value

        await ctx.step.run("odd-output", body)

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.advance("1h")
        run = await h.run_for(event_id)
        assert run.status == "Failed"
        assert "not JSON serialisable" in run.error["message"]
        assert calls["n"] == 1


async def test_invoking_an_unknown_function_raises_step_error(harness) -> None:
    app = stepwell.App("t")

    @app.function("caller", trigger="t/go")
    async def caller(ctx: stepwell.Context) -> str:
        try:
            await ctx.step.invoke("call", "does-not-exist")
        except StepError as exc:
            return exc.name
        return "unreachable"

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.settle()
        assert (await h.run_for(event_id)).output == "FunctionNotFound"
