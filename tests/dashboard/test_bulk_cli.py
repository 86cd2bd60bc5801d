"""`stepwell runs cancel|replay` with a filter, against a real engine on a loopback port."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from stepwell.cli.main import main
from stepwell.engine import bulk
from tests.dashboard.dashboard_app import app
from tests.support import engine_server, serve


async def _cli(*args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, main, list(args))
    return result.exit_code, result.output


async def _statuses(client: httpx.AsyncClient, function_id: str) -> list[str]:
    runs = (await client.get("/v1/runs", params={"function_id": function_id})).json()["data"]
    return sorted(r["status"] for r in runs)


async def test_runs_cancel_and_replay_act_on_every_run_matching_the_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "PAGE", 3)  # selections span several pages
    async with serve([app], tmp_path / "d.db") as url, httpx.AsyncClient(base_url=url) as client:
        for i in range(4):
            await client.post("/e/dev", json={"name": "demo/sleep", "data": {"i": i}})
        await client.post("/e/dev", json={"name": "demo/pipeline", "data": {"n": 1}})
        for _ in range(300):
            if await _statuses(client, "dash-sleeper") == ["Running"] * 4:
                break
            await asyncio.sleep(0.02)
        assert await _statuses(client, "dash-pipeline") in (["Completed"], ["Running"], ["Queued"])

        code, out = await _cli("runs", "cancel", "--url", url)
        assert code == 2 and "--function or --app" in out
        code, out = await _cli("runs", "cancel", "RUN", "--function", "x", "--url", url)
        assert code == 2 and "not both" in out
        code, out = await _cli("runs", "cancel", "--function", "dash-sleeper", "--since", "soon")
        assert code == 2 and "--since" in out

        code, out = await _cli(
            "runs", "cancel", "--function", "dash-sleeper", "--since", "1h", "--if",
            "event.data.i >= 2", "--url", url,
        )  # fmt: skip
        assert code == 0, out
        assert "2 run(s) cancelled, 0 skipped" in out
        assert await _statuses(client, "dash-sleeper") == ["Cancelled"] * 2 + ["Running"] * 2

        code, out = await _cli(
            "runs", "cancel", "--app", "dash", "--status", "Running", "--url", url
        )  # fmt: skip
        assert code == 0 and "2 run(s) cancelled" in out, out

        code, out = await _cli(
            "runs", "replay", "--function", "dash-sleeper", "--until", "0s", "--url", url
        )  # fmt: skip
        assert code == 0 and "4 run(s) replayed" in out, out
        statuses = await _statuses(client, "dash-sleeper")
        assert statuses.count("Cancelled") == 4 and len(statuses) == 8


async def test_bulk_commands_take_the_signing_key_in_production_mode(tmp_path: Path) -> None:
    key = "signkey-prod-" + "ab" * 32
    async with engine_server(tmp_path / "p.db", signing_key=key, event_keys=["ek"]) as served:
        args = ["runs", "cancel", "--function", "x-y", "--url", served.url]
        code, out = await _cli(*args)
        assert code == 1 and "401" in out
        code, out = await _cli(*args, "--token", key)
        assert code == 0 and "0 run(s) cancelled" in out, out
