"""The step timeline is a pure function of a run, its memo and its pending work."""

from __future__ import annotations

import re

from stepwell.engine.api.dashboard.timeline import Bar, bars, render
from stepwell.store.records import MemoRecord, QueueItem, RunRecord, WaitRecord


def _run(**kw: object) -> RunRecord:
    fields: dict[str, object] = {
        "run_id": "r1",
        "function_id": "shop-process",
        "function_version": 1,
        "app_id": "shop",
        "status": "Running",
        "event_id": "e1",
        "event_ids": ("e1",),
        "created_at": 1_000,
        "started_at": 1_100,
    }
    fields.update(kw)
    return RunRecord(**fields)  # type: ignore[arg-type]


def _memo(key: str, seq: int, created: int, started: int | None, value: object) -> MemoRecord:
    return MemoRecord("r1", key, key, "run", value, seq, created, started)


def test_steps_are_drawn_from_their_start_to_their_result_in_completion_order() -> None:
    memo = [
        _memo("a", 1, 1_300, 1_200, {"data": 1}),
        _memo("nap", 2, 1_900, None, None),  # a sleep has no start: it starts where "a" ended
        _memo("b", 3, 2_000, 1_950, {"error": {"name": "E", "message": "no"}}),
    ]
    rows = bars(_run(ended_at=2_100, status="Failed"), memo, [], [], now=5_000)
    assert rows == [
        Bar("queued", "queued", 1_000, 1_100, "100 ms"),
        Bar("a", "step", 1_200, 1_300, "100 ms"),
        Bar("nap", "step", 1_300, 1_900, "600 ms"),
        Bar("b", "failed", 1_950, 2_000, "50 ms"),
    ]
    html = render(_run(ended_at=2_100), rows, now=5_000)
    # to scale: the run spans 1_100 ms from queued to ended
    left, width = re.findall(r'data-step="a".*?left:([0-9.]+)%;width:([0-9.]+)%', html)[0]
    assert (float(left), float(width)) == (round(200 / 11, 3), round(100 / 11, 3))


def test_pending_work_is_drawn_up_to_when_it_is_due() -> None:
    run = _run(attempt=2)
    memo = [_memo("a", 1, 1_300, 1_200, {"data": 1})]
    queue = [
        QueueItem(
            "sleep:r1:k1",
            "sleep",
            "r1",
            "shop-process",
            90_000,
            payload={"step_key": "k1", "step_id": "nap"},
        ),
        QueueItem("run:r1", "continue", "r1", "shop-process", 4_000),
        QueueItem("sleep:r1:a", "sleep", "r1", "shop-process", 9_000, payload={"step_key": "a"}),
    ]
    waits = [
        WaitRecord(
            "w1", "step", "r1", "shop-process", "order/paid", 50_000, step_key="k2", step_id="paid"
        ),
        WaitRecord("w2", "cancel", "r1", "shop-process", "order/cancelled", 50_000),
    ]
    rows = bars(run, memo, queue, waits, now=2_000)
    pending = [(r.label, r.start, r.end) for r in rows if r.kind == "pending"]
    assert pending == [
        ("nap (sleeping)", 1_300, 90_000),
        ("attempt 3 (a retry)", 1_300, 4_000),
        ("paid (waiting for order/paid)", 1_300, 50_000),
    ]
    html = render(run, rows, now=2_000)
    # the scale ends now; a sleep due in 88 s is clipped there, its due time written beside it
    left, width = re.findall(
        r'data-step="nap \(sleeping\)".*?left:([0-9.]+)%;width:([0-9.]+)%', html
    )[0]
    assert (float(left), float(width)) == (30.0, 70.0)
    assert "until <time" in html


def test_an_invocation_in_flight_is_drawn_up_to_now() -> None:
    queue = [
        QueueItem(
            "run:r1", "start", "r1", "shop-process", 1_000, lease_owner="n1", lease_expires_at=9_000
        )
    ]
    rows = bars(_run(), [], queue, [], now=3_000)
    assert rows[-1] == Bar("running (attempt 1)", "pending", 1_100, 3_000, "running now")
    assert bars(_run(started_at=None, status="Queued"), [], [], [], now=3_000) == []
    assert "has not started" in render(_run(), [], now=3_000)


def test_a_run_timeout_is_drawn_until_it_cancels_the_run() -> None:
    queue = [QueueItem("finish_timeout:r1", "finish_timeout", "r1", "shop-process", 7_000)]
    rows = bars(_run(), [], queue, [], now=2_000)
    assert rows[-1] == Bar(
        "timeout: cancelled if it does not finish by then", "pending", 1_100, 7_000, "until"
    )
