"""The examples a newcomer runs first behave as their docstrings say."""

from __future__ import annotations

from datetime import UTC, datetime

from stepwell.cli.loader import load_apps
from stepwell.store.records import RunFilter

EXAMPLES = "examples"


async def test_order_processing_fans_out_waits_for_the_label_and_notifies(harness) -> None:
    [shop] = load_apps(f"{EXAMPLES}/shop.py")
    async with harness(shop) as h:
        [placed] = await h.send("order/placed", {"order_id": "o-1", "email": "ada@example.com"})
        await h.settle()
        order = await h.run_for(placed)
        assert order.status == "Running"
        runs = await h.engine.store.read(lambda tx: tx.list_runs(RunFilter(limit=50)))
        assert {r.function_id for r in runs if r.status == "Completed"} == {
            "shop-send-email",
            "shop-reserve-inventory",
        }
        await h.send("shipping/label-created", {"order_id": "o-1", "tracking": "TRK-42"})
        await h.settle()
        order = await h.run(order.run_id)
        assert (order.status, order.output) == ("Completed", {"order_id": "o-1", "shipped": True})


async def test_order_processing_gives_up_on_the_label_after_seven_days(harness) -> None:
    [shop] = load_apps(f"{EXAMPLES}/shop.py")
    async with harness(shop) as h:
        [placed] = await h.send("order/placed", {"order_id": "o-2", "email": "bo@example.com"})
        await h.advance("7d")
        assert (await h.run_for(placed)).output == {"order_id": "o-2", "shipped": False}


async def test_an_order_placed_twice_is_processed_once(harness) -> None:
    [shop] = load_apps(f"{EXAMPLES}/shop.py")
    async with harness(shop) as h:
        order = {"order_id": "o-3", "email": "cy@example.com"}
        [first] = await h.send("order/placed", order)
        [again] = await h.send("order/placed", order)
        await h.settle()
        assert len(await h.runs_for(first)) == 1
        assert await h.runs_for(again) == []


async def test_onboarding_sleeps_between_emails_and_can_be_cancelled(harness) -> None:
    [onboarding] = load_apps(f"{EXAMPLES}/onboarding.py")
    async with harness(onboarding) as h:
        [kept] = await h.send("user/signed-up", {"user_id": "u-1", "email": "a@example.com"})
        [gone] = await h.send("user/signed-up", {"user_id": "u-2", "email": "b@example.com"})
        await h.advance("3d")
        await h.send("user/deleted", {"user_id": "u-2"})
        await h.advance("7d")
        assert (await h.run_for(kept)).output == {"user_id": "u-1", "onboarded": "yes"}
        assert (await h.run_for(gone)).status == "Cancelled"
        steps = [m.step_id for m in await h.memo((await h.run_for(kept)).run_id)]
        assert steps == ["welcome", "wait-3-days", "tip", "wait-a-week", "check-in"]


async def test_the_daily_report_runs_at_nine_in_paris_and_on_demand(harness) -> None:
    [reports] = load_apps(f"{EXAMPLES}/reports.py")
    start = int(datetime(2026, 3, 2, 7, 0, tzinfo=UTC).timestamp() * 1000)  # 08:00 Paris
    async with harness(reports, start_ms=start) as h:
        await h.advance("1h")
        runs = await h.engine.store.read(lambda tx: tx.list_runs(RunFilter(limit=50)))
        assert [(r.function_id, r.status) for r in runs] == [("reports-daily-report", "Completed")]
        [asked] = await h.send("reports/requested")
        await h.settle()
        output = (await h.run_for(asked)).output
        assert 10 <= output["orders"] <= 100
