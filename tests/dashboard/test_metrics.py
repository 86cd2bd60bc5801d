"""``GET /metrics``: Prometheus text with what the engine did and what the store holds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from stepwell.engine.engine import Engine
from tests.dashboard.dashboard_app import app
from tests.support import engine_server, free_port, serve

KEY = "signkey-prod-" + "cd" * 32


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _until_ended(client: httpx.AsyncClient, event_id: str) -> str:
    for _ in range(500):
        runs = (await client.get(f"/v1/events/{event_id}/runs")).json()["data"]
        if runs and runs[0]["status"] in ("Completed", "Failed"):
            return str(runs[0]["status"])
        await asyncio.sleep(0.02)
    raise AssertionError(f"the run of {event_id} never ended")


async def test_metrics_count_events_runs_steps_retries_and_read_the_queue(tmp_path: Path) -> None:
    async with serve([app], tmp_path / "d.db") as url, httpx.AsyncClient(base_url=url) as client:
        before = _samples((await client.get("/metrics")).text)
        assert before[("stepwell_runs", (("status", "Running"),))] == 0
        sent = {}
        for name in ("demo/pipeline", "demo/charge", "demo/flaky"):
            response = await client.post("/e/dev", json={"name": name, "data": {"n": 2}})
            sent[name] = response.json()["ids"][0]
        await client.post("/e/dev", json={"name": "demo/sleep"})
        assert await _until_ended(client, sent["demo/pipeline"]) == "Completed"
        assert await _until_ended(client, sent["demo/charge"]) == "Failed"
        assert await _until_ended(client, sent["demo/flaky"]) == "Completed"
        for _ in range(200):
            response = await client.get("/metrics")
            got = _samples(response.text)
            if got[("stepwell_runs", (("status", "Running"),))] == 1:
                break
            await asyncio.sleep(0.02)
        assert response.headers["content-type"].startswith("text/plain")
        assert got[("stepwell_events_ingested_total", (("source", "api"),))] == 4
        # each ended run emits inngest/function.* events
        assert got[("stepwell_events_ingested_total", (("source", "system"),))] >= 3
        started = ("stepwell_runs_started_total", (("function_id", "dash-pipeline"),))
        assert got[started] == 1
        assert got[("stepwell_runs_ended_total", (("status", "Completed"),))] == 2
        assert got[("stepwell_runs_ended_total", (("status", "Failed"),))] == 1
        assert got[("stepwell_runs", (("status", "Completed"),))] == 2
        assert got[("stepwell_runs", (("status", "Failed"),))] == 1
        assert got[("stepwell_retries_total", ())] == 1
        steps = got[("stepwell_step_duration_seconds_count", (("kind", "run"),))]
        assert steps >= 4  # fetch, double, explode, try, before
        assert got[("stepwell_queue_depth", ())] == 1  # the sleeper's timer, due in an hour
        assert got[("stepwell_queue_lag_seconds", ())] == 0


async def test_http_driver_errors_are_counted_and_production_mode_needs_a_token(
    tmp_path: Path,
) -> None:
    async with engine_server(tmp_path / "e.db", signing_key=KEY, event_keys=["ek"]) as served:
        engine: Engine = served.engine
        url = f"http://127.0.0.1:{free_port()}/api/inngest"  # nothing listens there
        await engine.sync_app(
            {
                "appName": "gone",
                "url": url,
                "functions": [
                    {
                        "id": "gone-fn",
                        "triggers": [{"event": "gone/go"}],
                        "steps": {
                            "step": {
                                "id": "step",
                                "runtime": {"type": "http", "url": f"{url}?fnId=gone-fn"},
                                "retries": {"attempts": 1},
                            }
                        },
                    }
                ],
            }
        )
        await engine.send_wire([{"name": "gone/go"}])
        async with httpx.AsyncClient(base_url=served.url) as client:
            assert (await client.get("/metrics")).status_code == 401
            headers = {"Authorization": f"Bearer {KEY}"}
            for _ in range(300):
                got = _samples((await client.get("/metrics", headers=headers)).text)
                if got.get(("stepwell_runs_ended_total", (("status", "Failed"),))) == 1:
                    break
                await asyncio.sleep(0.02)
        errors = got[("stepwell_http_driver_errors_total", (("function_id", "gone-fn"),))]
        assert errors == 2  # two attempts, neither reached the app
        assert got[("stepwell_retries_total", ())] == 1
