"""The context logger writes each line once, however often the handler is replayed."""

from __future__ import annotations

import logging

import pytest

import stepwell


async def test_log_lines_are_not_repeated_on_replay(
    harness, caplog: pytest.LogCaptureFixture
) -> None:
    app = stepwell.App("log")

    @app.function("chatty", trigger="log/go")
    async def chatty(ctx: stepwell.Context) -> None:
        ctx.logger.info("starting")
        await ctx.step.run("a", lambda: 1)
        ctx.logger.info("after a")
        await ctx.step.sleep("nap", "1m")
        ctx.logger.info("after nap")
        await ctx.step.sleep("nap-2", "1m")
        ctx.logger.info("done")

    caplog.set_level(logging.INFO, logger="stepwell.app.log")
    async with harness(app) as h:
        await h.send("log/go")
        await h.advance("1m")
        await h.advance("1m")
    lines = [r.getMessage() for r in caplog.records if r.name == "stepwell.app.log"]
    assert lines == ["starting", "after a", "after nap", "done"]
