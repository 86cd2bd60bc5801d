"""Failed attempts that are retried are recorded with their errors, on both stores."""

from __future__ import annotations

import stepwell
from tests.flow.conftest import BedFactory


async def test_each_retried_attempt_keeps_its_error(bed: BedFactory) -> None:
    app = stepwell.App("t")
    calls = {"step": 0, "handler": 0}

    def flaky() -> str:
        calls["step"] += 1
        if calls["step"] < 3:
            raise RuntimeError(f"boom {calls['step']}")
        return "ok"

    @app.function("flaky", trigger="t/go", retries=3)
    async def flaky_fn(ctx: stepwell.Context) -> str:
        value = await ctx.step.run("call-api", flaky)
        calls["handler"] += 1
        if calls["handler"] == 1:
            raise ValueError("handler hiccup")
        return value

    async with bed(app) as b:
        event = await b.send("t/go")
        for _ in range(4):
            await b.advance(10 * 60 * 1000)
        [run] = await b.runs_for(event)
        assert (run.status, run.output) == ("Completed", "ok")
        failed = await b.engine.store.read(lambda tx: tx.list_attempt_errors(run.run_id))
        assert [(f.step_id, f.attempt, f.error["message"]) for f in failed] == [
            ("call-api", 0, "boom 1"),
            ("call-api", 1, "boom 2"),
            (None, 0, "handler hiccup"),
        ]
        assert failed[0].step_key != "" and failed[2].step_key == ""
