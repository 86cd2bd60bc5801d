"""Every flow-control feature through stepwell's SDK, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import stepwell
from stepwell.errors import ConfigError
from tests.flow.conftest import BedFactory

SECOND = 1000


class Gauge:
    """Counts step bodies executing at once, overall and per key."""

    def __init__(self) -> None:
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.order: list[str] = []

    async def hold(self, *keys: str, seconds: float = 0.03) -> None:
        for k in ("*", *keys):
            self.now[k] = self.now.get(k, 0) + 1
            self.peak[k] = max(self.peak.get(k, 0), self.now[k])
        try:
            await asyncio.sleep(seconds)
        finally:
            for k in ("*", *keys):
                self.now[k] -= 1


# -- concurrency --------------------------------------------------------------------------------


async def test_concurrency_limits_executing_steps(bed: BedFactory) -> None:
    app = stepwell.App("t")
    gauge = Gauge()

    @app.function("work", trigger="t/go", concurrency=2)
    async def work(ctx: stepwell.Context) -> str:
        await ctx.step.run("a", lambda: gauge.hold())
        await ctx.step.run("b", lambda: gauge.hold())
        return "ok"

    async with bed(app) as b:
        for _ in range(6):
            await b.send("t/go")
        await b.settle()
        runs = await b.runs("work")
        assert [r.status for r in runs] == ["Completed"] * 6
        assert gauge.peak["*"] == 2  # the limit held, and was used


async def test_a_hot_key_does_not_starve_the_others(bed: BedFactory) -> None:
    app = stepwell.App("t")
    gauge = Gauge()

    @app.function(
        "per-user", trigger="t/go", concurrency=stepwell.Concurrency(1, key="event.data.user")
    )
    async def per_user(ctx: stepwell.Context) -> str:
        user = ctx.event.data["user"]
        await ctx.step.run("a", lambda: gauge.hold(user))
        gauge.order.append(user)
        return user

    async with bed(app) as b:
        for _ in range(8):
            await b.send("t/go", {"user": "hot"})
        await b.send("t/go", {"user": "cold"})
        await b.settle()
        assert gauge.peak["hot"] == 1 and gauge.peak["cold"] == 1
        # the cold user's run finished long before the hot key's backlog drained
        assert gauge.order.index("cold") <= 1
        assert {r.status for r in await b.runs("per-user")} == {"Completed"}


async def test_a_step_must_fit_both_limits(bed: BedFactory) -> None:
    app = stepwell.App("t")
    gauge = Gauge()

    @app.function(
        "two",
        trigger="t/go",
        concurrency=[
            stepwell.Concurrency(1, key="event.data.user"),
            stepwell.Concurrency(2),
        ],
    )
    async def two(ctx: stepwell.Context) -> None:
        user = ctx.event.data["user"]
        await ctx.step.run("a", lambda: gauge.hold(user))

    async with bed(app) as b:
        for i in range(9):
            await b.send("t/go", {"user": f"u{i % 3}"})
        await b.settle()
        assert gauge.peak["*"] == 2
        assert max(gauge.peak[f"u{i}"] for i in range(3)) == 1
        assert len(await b.runs("two")) == 9


async def test_env_scope_shares_a_key_across_functions(bed: BedFactory) -> None:
    app = stepwell.App("t")
    gauge = Gauge()
    shared = stepwell.Concurrency(1, key='"openai"', scope="env")

    @app.function("one", trigger="t/go", concurrency=shared)
    async def one(ctx: stepwell.Context) -> None:
        await ctx.step.run("a", lambda: gauge.hold())

    @app.function("two", trigger="t/go", concurrency=shared)
    async def two(ctx: stepwell.Context) -> None:
        await ctx.step.run("a", lambda: gauge.hold())

    async with bed(app) as b:
        for _ in range(3):
            await b.send("t/go")
        await b.settle()
        assert gauge.peak["*"] == 1
        assert len(await b.runs()) == 6


async def test_sleeping_runs_hold_no_slot(bed: BedFactory) -> None:
    app = stepwell.App("t")

    @app.function("nap", trigger="t/go", concurrency=1)
    async def nap(ctx: stepwell.Context) -> str:
        await ctx.step.sleep("zz", "1h")
        return "rested"

    async with bed(app) as b:
        for _ in range(3):
            await b.send("t/go")
        await b.settle()
        # all three reached their sleep although only one step may execute at once
        runs = await b.runs("nap")
        assert [r.status for r in runs] == ["Running"] * 3
        await b.advance(3600 * SECOND)
        assert [r.output for r in await b.runs("nap")] == ["rested"] * 3


async def test_waiting_work_is_served_oldest_first(bed: BedFactory) -> None:
    app = stepwell.App("t")
    order: list[int] = []

    @app.function("fifo", trigger="t/go", concurrency=1)
    async def fifo(ctx: stepwell.Context) -> None:
        await ctx.step.run("a", lambda: order.append(ctx.event.data["n"]))

    async with bed(app) as b:
        for n in range(6):
            await b.send("t/go", {"n": n})
        await b.settle()
        assert order == list(range(6))


# -- throttle -----------------------------------------------------------------------------------


async def test_throttle_delays_excess_runs_in_order_and_drops_none(bed: BedFactory) -> None:
    app = stepwell.App("t")
    started: list[tuple[int, int]] = []

    @app.function(
        "paced", trigger="t/go", throttle=stepwell.Throttle(limit=1, period="10s", burst=1)
    )
    async def paced(ctx: stepwell.Context) -> None:
        n = ctx.event.data["n"]
        await ctx.step.run("a", lambda: started.append((n, b.clock.now_ms())))

    async with bed(app) as b:
        t0 = b.clock.now_ms()
        for n in range(5):
            await b.send("t/go", {"n": n})
        await b.settle()
        assert sorted(n for n, _ in started) == [0, 1]  # limit + burst at once
        for _ in range(3):
            await b.advance(10 * SECOND)
        assert sorted(started) == [(0, t0), (1, t0)] + [
            (n, t0 + (n - 1) * 10 * SECOND) for n in (2, 3, 4)
        ]
        assert len(await b.runs("paced")) == 5


async def test_throttle_keys_have_their_own_buckets(bed: BedFactory) -> None:
    app = stepwell.App("t")

    @app.function(
        "keyed",
        trigger="t/go",
        throttle=stepwell.Throttle(limit=1, period="1m", burst=1, key="event.data.user"),
    )
    async def keyed(ctx: stepwell.Context) -> str:
        return await ctx.step.run("a", lambda: "done")

    async with bed(app) as b:
        for user in ("a", "a", "a", "b", "b"):
            await b.send("t/go", {"user": user})
        await b.settle()
        done = [r for r in await b.runs("keyed") if r.status == "Completed"]
        assert len(done) == 4  # two per key at once; the third "a" waits a minute
        await b.advance(60 * SECOND)
        assert {r.status for r in await b.runs("keyed")} == {"Completed"}


# -- rate limit ---------------------------------------------------------------------------------


async def test_rate_limit_skips_excess_events_with_the_reason(bed: BedFactory) -> None:
    app = stepwell.App("t")

    @app.function("limited", trigger="t/go", rate_limit=stepwell.RateLimit(2, "1m"))
    async def limited(ctx: stepwell.Context) -> str:
        return "ran"

    async with bed(app) as b:
        ids = [await b.send("t/go") for _ in range(5)]
        await b.settle()
        assert [len(await b.runs_for(i)) for i in ids] == [1, 1, 0, 0, 0]
        [(function_id, reason)] = await b.skips(ids[2])
        assert function_id == "t-limited" and reason.startswith("rate limited")
        await b.advance(60 * SECOND)
        later = await b.send("t/go")
        await b.settle()
        assert len(await b.runs_for(later)) == 1


# -- debounce -----------------------------------------------------------------------------------


async def test_debounce_starts_one_run_with_the_last_event(bed: BedFactory) -> None:
    app = stepwell.App("t")

    @app.function("quiet", trigger="t/go", debounce=stepwell.Debounce("5s", key="event.data.doc"))
    async def quiet(ctx: stepwell.Context) -> Any:
        return ctx.event.data["v"]

    async with bed(app) as b:
        for v in range(3):
            await b.send("t/go", {"doc": "x", "v": v})
            await b.advance(2 * SECOND)
        await b.send("t/go", {"doc": "y", "v": 10})
        assert await b.runs("quiet") == []
        await b.advance(5 * SECOND)
        runs = await b.runs("quiet")
        assert sorted(r.output for r in runs) == [2, 10]


async def test_debounce_timeout_caps_the_delay(bed: BedFactory) -> None:
    app = stepwell.App("t")

    @app.function("capped", trigger="t/go", debounce=stepwell.Debounce("5s", timeout="8s"))
    async def capped(ctx: stepwell.Context) -> Any:
        return ctx.event.data["v"]

    async with bed(app) as b:
        first_at = b.clock.now_ms()
        for v in range(6):  # an event every 2 s: never 5 s of quiet
            await b.send("t/go", {"v": v})
            await b.advance(2 * SECOND)
        runs = await b.runs("capped")
        # started 8 s after the first event (sent at 0, 2, 4, 6 s), with the latest one then
        assert runs and runs[0].output == 3
        assert runs[0].created_at - first_at == 8 * SECOND


# -- batching -----------------------------------------------------------------------------------


async def test_batches_start_when_full_or_after_the_timeout(bed: BedFactory) -> None:
    app = stepwell.App("t")

    @app.function("bulk", trigger="t/go", batch=stepwell.Batch(max_size=3, timeout="5s"))
    async def bulk(ctx: stepwell.Context) -> list[int]:
        return [e.data["n"] for e in ctx.events]

    async with bed(app) as b:
        for n in range(7):
            await b.send("t/go", {"n": n})
        await b.settle()
        assert [r.output for r in await b.runs("bulk")] == [[0, 1, 2], [3, 4, 5]]
        await b.advance(5 * SECOND)
        assert [r.output for r in await b.runs("bulk")] == [[0, 1, 2], [3, 4, 5], [6]]


async def test_batches_by_key_and_condition(bed: BedFactory) -> None:
    app = stepwell.App("t")

    @app.function(
        "grouped",
        trigger="t/go",
        batch=stepwell.Batch(2, "5s", key="event.data.g", if_exp="event.data.n < 100"),
    )
    async def grouped(ctx: stepwell.Context) -> list[int]:
        return [e.data["n"] for e in ctx.events]

    async with bed(app) as b:
        for g, n in (("a", 1), ("b", 2), ("a", 3), ("b", 500), ("b", 4)):
            await b.send("t/go", {"g": g, "n": n})
        await b.settle()
        outputs = sorted(r.output for r in await b.runs("grouped"))
        assert outputs == [[1, 3], [2, 4], [500]]  # 500 is not batched: it runs alone


# -- priority -----------------------------------------------------------------------------------


async def test_priority_moves_a_run_ahead(bed: BedFactory) -> None:
    app = stepwell.App("t")
    order: list[str] = []

    @app.function(
        "ranked",
        trigger="t/go",
        concurrency=1,
        priority="event.data.tier == 'enterprise' ? 300 : 0",
    )
    async def ranked(ctx: stepwell.Context) -> None:
        await ctx.step.run("a", lambda: order.append(ctx.event.data["who"]))

    async with bed(app) as b:
        for who, tier in (("f1", "free"), ("f2", "free"), ("e1", "enterprise")):
            await b.send("t/go", {"who": who, "tier": tier})
        await b.settle()
        assert order == ["e1", "f1", "f2"]


# -- singleton ----------------------------------------------------------------------------------


async def test_singleton_skip_and_cancel(bed: BedFactory) -> None:
    app = stepwell.App("t")

    @app.function(
        "only-one", trigger="t/skip", singleton=stepwell.Singleton(key="event.data.u", mode="skip")
    )
    async def only_one(ctx: stepwell.Context) -> str:
        await ctx.step.sleep("wait", "1m")
        return "done"

    @app.function("latest", trigger="t/cancel", singleton=stepwell.Singleton(mode="cancel"))
    async def latest(ctx: stepwell.Context) -> str:
        await ctx.step.sleep("wait", "1m")
        return ctx.event.data["v"]

    async with bed(app) as b:
        first = await b.send("t/skip", {"u": 1})
        second = await b.send("t/skip", {"u": 1})
        other = await b.send("t/skip", {"u": 2})
        await b.send("t/cancel", {"v": "old"})
        await b.send("t/cancel", {"v": "new"})
        await b.settle()
        assert len(await b.runs_for(first)) == 1 and len(await b.runs_for(other)) == 1
        assert await b.runs_for(second) == []
        [(_, reason)] = await b.skips(second)
        assert reason.startswith("singleton")
        await b.advance(60 * SECOND)
        latest_runs = await b.runs("latest")
        assert [(r.status, r.output) for r in latest_runs] == [
            ("Cancelled", None),
            ("Completed", "new"),
        ]
        assert "singleton" in (latest_runs[0].cancel_reason or "")
        # the key is free again once its run ended
        again = await b.send("t/skip", {"u": 1})
        await b.settle()
        assert len(await b.runs_for(again)) == 1


# -- idempotency --------------------------------------------------------------------------------


async def test_idempotency_allows_one_run_per_key_per_day(bed: BedFactory) -> None:
    app = stepwell.App("t")

    @app.function("charge", trigger="t/go", idempotency="event.data.cart")
    async def charge(ctx: stepwell.Context) -> str:
        return "charged"

    async with bed(app) as b:
        ids = [await b.send("t/go", {"cart": c}) for c in ("c1", "c1", "c2")]
        await b.settle()
        assert [len(await b.runs_for(i)) for i in ids] == [1, 0, 1]
        [(_, reason)] = await b.skips(ids[1])
        assert ids[0] in reason
        await b.advance(24 * 3600 * SECOND + 1)
        later = await b.send("t/go", {"cart": "c1"})
        await b.settle()
        assert len(await b.runs_for(later)) == 1


# -- timeouts -----------------------------------------------------------------------------------


async def test_start_timeout_cancels_a_run_that_waited_too_long(bed: BedFactory) -> None:
    app = stepwell.App("t")
    gate = asyncio.Event()

    async def blocked() -> str:
        await gate.wait()
        return "x"

    @app.function("busy", trigger="t/go", concurrency=1, timeouts=stepwell.Timeouts(start="10s"))
    async def busy(ctx: stepwell.Context) -> str:
        return await ctx.step.run("a", blocked)

    async with bed(app) as b:
        first = await b.send("t/go")
        second = await b.send("t/go")
        await b.engine.tick()
        await asyncio.sleep(0.05)  # the first run is executing and holds the only slot
        assert isinstance(b.clock, stepwell.testing.FakeClock)
        b.clock.advance(11 * SECOND)
        await b.engine.tick()
        # The timer fires in a task of its own, one commit away: wait for it, a loaded machine
        # may take more than a few milliseconds (the fake clock does not move meanwhile).
        for _ in range(200):
            [late] = await b.runs_for(second)
            if late.status != "Queued":
                break
            await asyncio.sleep(0.025)
        assert late.status == "Cancelled"
        assert "timeouts.start" in (late.cancel_reason or "")
        gate.set()
        await b.settle()
        [done] = await b.runs_for(first)
        assert done.status == "Completed"


async def test_finish_timeout_cancels_a_run_that_ran_too_long(bed: BedFactory) -> None:
    app = stepwell.App("t")

    @app.function("slow", trigger="t/go", timeouts=stepwell.Timeouts(finish="30s"))
    async def slow(ctx: stepwell.Context) -> str:
        await ctx.step.run("a", lambda: 1)
        await ctx.step.sleep("long", "1m")
        return "finished"

    async with bed(app) as b:
        event = await b.send("t/go")
        await b.advance(31 * SECOND)
        [run] = await b.runs_for(event)
        assert run.status == "Cancelled"
        assert "timeouts.finish" in (run.cancel_reason or "")


# -- refused configurations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        (
            {"batch": stepwell.Batch(10, "5s"), "debounce": stepwell.Debounce("5s")},
            "batchEvents",
            "debounce",
        ),
        ({"batch": stepwell.Batch(10, "5s"), "priority": "1"}, "batchEvents", "priority"),
        ({"throttle": stepwell.Throttle(1, "8d")}, "throttle.period", "out of range"),
        ({"rate_limit": stepwell.RateLimit(1, "25h")}, "rateLimit.period", "out of range"),
        ({"batch": stepwell.Batch(10, "2m")}, "batchEvents.timeout", "out of range"),
        ({"debounce": stepwell.Debounce("0s")}, "debounce.period", "out of range"),
        (
            {"concurrency": [stepwell.Concurrency(1)] * 3},
            "concurrency",
            "at most 2",
        ),
        (
            {"concurrency": stepwell.Concurrency(1, scope="env")},
            "concurrency.key",
            "needs a key",
        ),
        ({"idempotency": "event.data.("}, "idempotency", "syntax error"),
        (
            {"throttle": stepwell.Throttle(1, "1m", key="event.data.)")},
            "throttle.key",
            "syntax error",
        ),
    ],
)
async def test_invalid_flow_control_is_refused_naming_function_and_field(
    bed: BedFactory, options: dict[str, Any], field: str, message: str
) -> None:
    app = stepwell.App("t")

    @app.function("bad", trigger="t/go", **options)
    async def bad(ctx: stepwell.Context) -> None:
        return None

    with pytest.raises(ConfigError) as err:
        async with bed(app):
            pass
    text = str(err.value)
    assert "'t-bad'" in text and f"'{field}'" in text and message in text


async def test_expired_rate_limit_buckets_are_forgotten(bed: BedFactory) -> None:
    app = stepwell.App("t")

    @app.function("limited", trigger="t/go", rate_limit=stepwell.RateLimit(1, "1m"))
    async def limited(ctx: stepwell.Context) -> None:
        return None

    async with bed(app) as b:
        await b.send("t/go")
        store = b.engine.store
        now = b.clock.now_ms()
        assert await store.run(lambda tx: tx.delete_expired_buckets(now)) == 0
        later = now + 2 * 60 * SECOND
        assert await store.run(lambda tx: tx.delete_expired_buckets(later)) == 1


async def test_invoking_a_singleton_that_is_running_fails_the_step_at_once(
    bed: BedFactory,
) -> None:
    app = stepwell.App("t")

    @app.function("worker", singleton=stepwell.Singleton(mode="skip"))
    async def worker(ctx: stepwell.Context) -> str:
        await ctx.step.sleep("busy", "1h")
        return "worked"

    @app.function("caller", trigger="t/call")
    async def caller(ctx: stepwell.Context) -> str:
        try:
            return str(await ctx.step.invoke("call", "worker", {}))
        except stepwell.StepError as exc:
            return f"failed: {exc}"

    async with bed(app) as b:
        first = await b.send("t/call")
        await b.settle()
        second = await b.send("t/call")
        await b.settle()
        [late] = await b.runs_for(second)
        assert late.status == "Completed"
        assert late.output.startswith("failed:") and "singleton" in late.output
        [early] = await b.runs_for(first)
        assert early.status == "Running"  # still waiting for its worker, which sleeps


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"throttle": 5}, "throttle takes a stepwell.Throttle"),
        ({"concurrency": True}, "concurrency takes an int or stepwell.Concurrency"),
        ({"concurrency": [3]}, "concurrency takes a stepwell.Concurrency"),
        ({"priority": ""}, "priority takes a CEL expression string"),
        ({"idempotency": 7}, "idempotency takes a CEL expression string"),
        ({"debounce": stepwell.Debounce("soon")}, "debounce.period"),
    ],
)
def test_wrong_option_types_are_refused_when_declared(
    options: dict[str, Any], message: str
) -> None:
    app = stepwell.App("t")
    with pytest.raises(ConfigError) as err:
        app.function("bad", trigger="t/go", **options)(lambda ctx: None)
    assert "'bad'" in str(err.value) or "debounce.period" in str(err.value)
    assert message in str(err.value)
    assert app.functions == []  # nothing half-declared
