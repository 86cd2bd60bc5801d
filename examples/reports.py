"""A daily report on a cron schedule in a time zone: 09:00 Paris time, summer and winter."""

from __future__ import annotations

import random

import stepwell

app = stepwell.App("reports")


def count_orders() -> int:
    return random.randint(10, 100)


@app.function("daily-report", trigger=stepwell.Cron("TZ=Europe/Paris 0 9 * * *"))
async def daily_report(ctx: stepwell.Context) -> dict[str, int]:
    orders = await ctx.step.run("count-orders", count_orders)
    await ctx.step.run("publish", lambda: ctx.logger.info("yesterday: %d orders", orders))
    return {"orders": orders}


@app.function("report-on-demand", trigger="reports/requested")
async def report_on_demand(ctx: stepwell.Context) -> dict[str, int]:
    return await ctx.step.invoke("run-report", daily_report, timeout="5m")
