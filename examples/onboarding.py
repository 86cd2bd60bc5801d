"""Signup onboarding: a welcome email now, a tip after 3 days, a check-in after a week.

    stepwell send user/signed-up --data '{"user_id": "u-1", "email": "ada@example.com"}'

Cancelled if the user deletes their account meanwhile:

    stepwell send user/deleted --data '{"user_id": "u-1"}'
"""

from __future__ import annotations

import stepwell

app = stepwell.App("onboarding")


def send_mail(to: str, template: str) -> dict[str, str]:
    return {"to": to, "template": template, "status": "queued"}


@app.function(
    "onboard-user",
    trigger="user/signed-up",
    cancel_on=stepwell.CancelOn("user/deleted", match="data.user_id"),
)
async def onboard_user(ctx: stepwell.Context) -> dict[str, str]:
    email = ctx.event.data["email"]
    await ctx.step.run("welcome", send_mail, email, "welcome")
    await ctx.step.sleep("wait-3-days", "3d")
    await ctx.step.run("tip", send_mail, email, "tip-of-the-week")
    await ctx.step.sleep("wait-a-week", "7d")
    await ctx.step.run("check-in", send_mail, email, "how-is-it-going")
    return {"user_id": ctx.event.data["user_id"], "onboarded": "yes"}
