"""Triggers, wildcards, CEL filters, cancel_on, cron, event dedupe, future ts, typed events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import stepwell
from stepwell.errors import ConfigError, EventError, EventValidationError


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


async def test_wildcard_triggers_and_if_expressions_select_runs(harness) -> None:
    app = stepwell.App("t")

    @app.function("all-users", trigger="user/*")
    async def all_users(ctx: stepwell.Context) -> str:
        return ctx.event.name

    @app.function(
        "pro-only", trigger=stepwell.Trigger("user/signed-up", if_exp="event.data.plan == 'pro'")
    )
    async def pro_only(ctx: stepwell.Context) -> str:
        return "pro"

    async with harness(app) as h:
        [free] = await h.send("user/signed-up", {"plan": "free"})
        [pro] = await h.send("user/signed-up", {"plan": "pro"})
        [other] = await h.send("billing/paid")
        await h.settle()
        assert sorted(r.function_id for r in await h.runs_for(free)) == ["t-all-users"]
        assert sorted(r.function_id for r in await h.runs_for(pro)) == ["t-all-users", "t-pro-only"]
        assert await h.runs_for(other) == []


async def test_cancel_on_cancels_the_matching_run_only(harness) -> None:
    app = stepwell.App("t")
    cancelled: list[str] = []

    @app.function(
        "onboard",
        trigger="user/signed-up",
        cancel_on=stepwell.CancelOn("user/deleted", match="data.user_id"),
    )
    async def onboard(ctx: stepwell.Context) -> str:
        await ctx.step.sleep("wait", "3d")
        return "done"

    @app.function("on-cancel", trigger="inngest/function.cancelled")
    async def on_cancel(ctx: stepwell.Context) -> None:
        cancelled.append(ctx.event.data["run_id"])

    async with harness(app) as h:
        [a] = await h.send("user/signed-up", {"user_id": "a"})
        [b] = await h.send("user/signed-up", {"user_id": "b"})
        await h.settle()
        await h.send("user/deleted", {"user_id": "a"})
        await h.advance("3d")
        run_a, run_b = await h.run_for(a), await h.run_for(b)
        assert run_a.status == "Cancelled"
        assert "user/deleted" in (run_a.cancel_reason or "")
        assert run_b.status == "Completed"
        assert cancelled == [run_a.run_id]


async def test_cancelling_a_sleeping_run_stops_it_for_good(harness) -> None:
    app = stepwell.App("t")
    calls: list[str] = []

    @app.function("sleepy", trigger="t/go")
    async def sleepy(ctx: stepwell.Context) -> None:
        await ctx.step.sleep("nap", "1h")
        await ctx.step.run("after", lambda: calls.append("after"))

    async with harness(app) as h:
        [event_id] = await h.send("t/go")
        await h.settle()
        run = await h.run_for(event_id)
        assert await h.engine.cancel(run.run_id) is True
        assert await h.engine.cancel(run.run_id) is False
        await h.advance("2h")
        assert (await h.run(run.run_id)).status == "Cancelled"
        assert calls == []


async def test_cron_fires_at_nine_in_paris_once_per_tick(harness) -> None:
    app = stepwell.App("t")

    @app.function("report", trigger=stepwell.Cron("TZ=Europe/Paris 0 9 * * *"))
    async def report(ctx: stepwell.Context) -> str:
        return ctx.event.name

    start = _ms(datetime(2026, 7, 1, 6, 0, tzinfo=UTC))  # 08:00 in Paris (UTC+2 in summer)
    async with harness(app, start_ms=start) as h:
        await h.advance("59m")
        runs = await h.engine.store.read(lambda tx: tx.list_runs(_all()))
        assert runs == []
        await h.advance("1m")  # 07:00 UTC = 09:00 Paris
        await h.engine.tick()
        await h.settle()
        runs = await h.engine.store.read(lambda tx: tx.list_runs(_all()))
        assert [(r.function_id, r.status, r.output) for r in runs] == [
            ("t-report", "Completed", "inngest/scheduled.timer")
        ]
        claimed_again = await h.engine.store.run(
            lambda tx: tx.claim_cron_tick("t-report", h.clock.now_ms())
        )
        assert claimed_again is False


async def test_cron_in_winter_follows_the_time_zone(harness) -> None:
    app = stepwell.App("t")

    @app.function("report", trigger=stepwell.Cron("TZ=Europe/Paris 0 9 * * *"))
    async def report(ctx: stepwell.Context) -> int:
        return ctx.event.ts

    start = _ms(datetime(2026, 12, 1, 7, 30, tzinfo=UTC))
    async with harness(app, start_ms=start) as h:
        await h.advance("30m")  # 08:00 UTC = 09:00 Paris (UTC+1 in winter)
        runs = await h.engine.store.read(lambda tx: tx.list_runs(_all()))
        assert [r.output for r in runs] == [_ms(datetime(2026, 12, 1, 8, 0, tzinfo=UTC))]


async def test_an_event_id_dedupes_for_24_hours(harness) -> None:
    app = stepwell.App("t")

    @app.function("pay", trigger="payment/made")
    async def pay(ctx: stepwell.Context) -> None:
        return None

    async with harness(app) as h:
        [first] = await h.send("payment/made", {"n": 1}, id="pay-1")
        [again] = await h.send("payment/made", {"n": 2}, id="pay-1")
        assert again == first
        await h.settle()
        assert len(await h.runs_for(first)) == 1
        await h.advance("24h")
        [later] = await h.send("payment/made", {"n": 3}, id="pay-1")
        assert later != first
        await h.settle()
        assert len(await h.runs_for(later)) == 1


async def test_an_event_with_a_future_ts_delays_its_run(harness) -> None:
    app = stepwell.App("t")

    @app.function("later", trigger="t/later")
    async def later(ctx: stepwell.Context) -> str:
        return "ran"

    async with harness(app) as h:
        due = h.clock.now_ms() + 3_600_000
        [event_id] = await h.send("t/later", ts=due)
        await h.advance("59m")
        assert (await h.run_for(event_id)).status == "Queued"
        await h.advance("1m")
        assert (await h.run_for(event_id)).output == "ran"


class OrderPlaced(stepwell.EventModel, name="order/placed"):
    order_id: str
    total: float


async def test_typed_events_are_validated_at_send_and_at_run_time(harness) -> None:
    app = stepwell.App("t")

    @app.function("typed", trigger=OrderPlaced)
    async def typed(ctx: stepwell.Context) -> float:
        assert isinstance(ctx.data, OrderPlaced)
        return ctx.data.total * 2

    with pytest.raises(Exception, match="total"):
        OrderPlaced(order_id="o", total="lots")  # type: ignore[arg-type]

    async with harness(app) as h:
        [good] = await app.send(OrderPlaced(order_id="o-1", total=2.5))
        [bad] = await h.send("order/placed", {"order_id": "o-2"})  # untyped sender, no total
        await h.settle()
        assert (await h.run_for(good)).output == 5.0
        run = await h.run_for(bad)
        assert run.status == "Failed"
        assert "OrderPlaced" in run.error["message"]
        assert "total" in run.error["message"]
        assert issubclass(EventValidationError, EventError)


@pytest.mark.parametrize(
    ("trigger", "fragment"),
    [
        (stepwell.Cron("0 25 * * *"), "triggers[0].cron"),
        (stepwell.Cron("TZ=Mars/Olympus 0 9 * * *"), "triggers[0].cron"),
        (stepwell.Trigger("a/b", if_exp="event.data.x ==="), "triggers[0].expression"),
    ],
)
async def test_invalid_triggers_are_refused_at_registration(harness, trigger, fragment) -> None:
    app = stepwell.App("t")

    @app.function("broken", trigger=trigger)
    async def broken(ctx: stepwell.Context) -> None:
        return None

    with pytest.raises(ConfigError) as info:
        async with harness(app):
            pass
    assert "t-broken" in str(info.value)
    assert fragment in str(info.value)


def test_invalid_options_are_refused_when_declared() -> None:
    app = stepwell.App("t")
    with pytest.raises(ConfigError, match="retries"):
        app.function("f", trigger="a/b", retries=99)
    with pytest.raises(ConfigError, match="trigger"):
        app.function("f", trigger=42)
    with pytest.raises(ConfigError, match="must be a function"):
        app.function("f", trigger="a/b")("not a function")  # type: ignore[arg-type]


async def test_invalid_events_are_refused_and_store_nothing(harness) -> None:
    app = stepwell.App("t")
    async with harness(app) as h:
        for bad in (
            [{"data": {}}],
            [{"name": ""}],
            [{"name": "a", "data": [1]}],
            [{"name": "a", "ts": "x"}],
            [],
        ):
            with pytest.raises(EventError):
                await h.engine.send_wire(bad)
        with pytest.raises(EventError):
            await h.engine.send_wire([{"name": "ok"}, {"name": 5}])
        events = await h.engine.store.read(lambda tx: tx.list_events())
        assert events == []


def _all():
    from stepwell.store.records import RunFilter

    return RunFilter(limit=500)
