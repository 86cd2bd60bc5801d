"""Runs per minute per function: the folding is exact and the activity page draws it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx

from stepwell.engine.api.dashboard.charts import MINUTE, per_minute, svg
from tests.dashboard.dashboard_app import app
from tests.support import serve


def test_rows_fold_into_one_series_per_function_and_minute() -> None:
    first = 100 * MINUTE
    rows = [
        ("a", first, "started", 3),
        ("a", first, "Completed", 2),
        ("a", first + 2 * MINUTE, "Failed", 1),
        ("a", first - MINUTE, "started", 9),  # before the window
        ("a", first + 3 * MINUTE, "started", 9),  # after it
        ("b", first + MINUTE, "Cancelled", 4),
        ("b", first + MINUTE, "Running", 4),  # not a kind the chart draws
    ]
    series = per_minute(rows, first, 3)
    assert [s.function_id for s in series] == ["a", "b"]
    a, b = series
    assert a.counts == {"started": [3, 0, 0], "Completed": [2, 0, 0], "Failed": [0, 0, 1]}
    assert b.counts == {"Cancelled": [0, 4, 0]}
    drawn = svg(a, 3)
    assert drawn.count("<rect") == 3
    assert 'aria-label="a, last 3 minutes: 3 started, 2 completed, 1 failed, 0 cancelled"' in drawn
    heights = [float(h) for h in re.findall(r'height="([0-9.]+)"><title>', drawn)]
    assert max(heights) == heights[0]  # 3 started is the tallest bar


async def test_the_activity_page_counts_the_last_hour(tmp_path: Path) -> None:
    async with serve([app], tmp_path / "d.db") as url, httpx.AsyncClient(base_url=url) as client:
        for name in ("demo/pipeline", "demo/pipeline", "demo/charge"):
            await client.post("/e/dev", json={"name": name, "data": {"n": 1}})
        for _ in range(300):
            runs = (await client.get("/v1/runs")).json()["data"]
            ended = [r for r in runs if r["status"] in ("Completed", "Failed")]
            if len(ended) == 3:
                break
            await asyncio.sleep(0.02)
        page = (await client.get("/activity")).text
        assert "dash-pipeline, last 60 minutes: 2 started, 2 completed, 0 failed" in page
        assert "dash-charge, last 60 minutes: 1 started, 0 completed, 1 failed" in page
        row = re.search(r"dash-charge</a></td>(.*?)</tr>", page)
        assert row is not None and row.group(1).endswith("<td>100%</td>")
        functions = (await client.get("/functions")).text
        assert "Last hour: 1 started · 0 completed · 1 failed · 0 cancelled (100%" in functions
        assert "Last hour: 2 started · 2 completed · 0 failed · 0 cancelled (0%" in functions
        assert "Last hour: no runs." in functions  # dash-sleeper
