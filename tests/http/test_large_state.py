"""State past the call-body limit goes by reference: the SDK fetches it from /v0/runs/..."""

from __future__ import annotations

import asyncio

from tests.http.official_app import build
from tests.support import free_port, uvicorn_app


async def test_a_memo_past_four_mebibytes_is_fetched_by_the_sdk(engine_at, monkeypatch) -> None:
    import stepwell.engine.drivers.http as http_driver

    trimmed: list[bool] = []
    original = http_driver.call_body

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        trimmed.append(bool(kwargs.get("use_api")))
        return original(*args, **kwargs)

    monkeypatch.setattr(http_driver, "call_body", recording)
    async with engine_at() as served:
        port = free_port()
        async with uvicorn_app(build(served.url), port):
            state = await served.syncer.sync(f"http://127.0.0.1:{port}/api/inngest")
            assert state.ok, state.error
            [event_id] = await served.engine.send_wire([{"name": "py/big"}])
            for _ in range(400):
                runs = await served.engine.store.read(lambda tx: tx.runs_for_event(event_id))
                if runs and runs[0].status in {"Completed", "Failed"}:
                    break
                await asyncio.sleep(0.05)
            assert (runs[0].status, runs[0].output) == ("Completed", 4_500_000)
            memo = await served.engine.store.read(lambda tx: tx.get_memo(runs[0].run_id))
            assert [m.step_id for m in memo] == ["blob-0", "blob-1", "blob-2"]
            assert any(trimmed), "no call went by reference"
