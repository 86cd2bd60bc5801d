"""An official Python SDK (`inngest` on PyPI) app built in-process, for the signing tests.

The full scenario table over both official SDKs lives in tests/official/test_scenarios.py."""

from __future__ import annotations

import fastapi
import inngest
import inngest.fast_api


def build(
    engine_url: str, *, signing_key: str | None = None, event_key: str | None = None
) -> fastapi.FastAPI:
    client = inngest.Inngest(
        app_id="py-app",
        is_production=signing_key is not None,
        api_base_url=engine_url,
        event_api_base_url=engine_url,
        signing_key=signing_key,
        event_key=event_key,
    )

    @client.create_function(fn_id="sequential", trigger=inngest.TriggerEvent(event="py/sequential"))
    async def sequential(ctx: inngest.Context) -> str:
        async def a() -> str:
            return "A"

        first = await ctx.step.run("a", a)

        async def b() -> str:
            return first + "B"

        return await ctx.step.run("b", b)

    @client.create_function(fn_id="big", trigger=inngest.TriggerEvent(event="py/big"))
    async def big(ctx: inngest.Context) -> int:
        # Three 1.5 MB step results: the memo outgrows one call body (4 MiB).
        sizes = []
        for n in range(3):

            async def blob(n: int = n) -> str:
                return str(n) * 1_500_000

            sizes.append(len(await ctx.step.run(f"blob-{n}", blob)))
        return sum(sizes)

    app = fastapi.FastAPI()
    inngest.fast_api.serve(app, client, [sequential, big])
    return app
