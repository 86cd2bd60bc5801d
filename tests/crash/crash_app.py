"""The app the crash-safety suite serves over HTTP, from a uvicorn process of its own.

Run as ``python -m tests.crash.crash_app``, configured by the environment:

* ``CRASH_PORT``: the port to serve on (path ``/api/stepwell``).
* ``CRASH_LOG``: every step body execution appends ``<run_id> <step> <token>`` to this file,
  where ``token`` is unique to that execution and is part of the step's result. The checker
  compares the memo and the runs' outputs with it: a result recorded twice, or lost and
  recomputed, shows as tokens that disagree.
* ``CRASH_NODES``: the engine nodes' base URLs, comma-separated; ``send_event`` tries them in
  turn, since any of them may be down at any moment.
* ``CRASH_SIGNING_KEY``, ``CRASH_EVENT_KEY``: the keys the nodes were started with.

Events sent by steps carry ids derived from the run's input, so a step that runs again after a
crash sends duplicates that the engine's de-duplication drops: "make side effects idempotent".
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

import stepwell
from stepwell.sdk import serve

app = stepwell.App("crash")
RETRIES = 20

# Order of the steps each function memoizes; the checker reads these.
STEPS = {
    "order": ["a", "b", "nap", "shipped", "fan-out", "quote", "total"],
    "item": ["pack"],
    "quote": ["price"],
    "work": ["w0", "w1", "w2"],
    "tick": ["tock"],
    "audit": [],  # starts no run (see audit below)
}
ITEMS_PER_ORDER = 2


def record(run_id: str, step: str, value: Any) -> dict[str, Any]:
    """The side effect of a step body: one log line, with a token unique to this execution."""
    token = uuid.uuid4().hex[:12]
    # One short O_APPEND write is atomic: a killed process leaves whole lines.
    fd = os.open(os.environ["CRASH_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{run_id} {step} {token}\n".encode())
    finally:
        os.close(fd)
    return {"v": value, "t": token}


@app.function("quote", retries=RETRIES)
async def quote(ctx: stepwell.Context) -> dict[str, Any]:
    n = ctx.event.data["n"]
    price = await ctx.step.run("price", record, ctx.run_id, "price", 10 * n)
    return {"price": price["v"], "t": price["t"]}


@app.function("order", trigger="crash/order", retries=RETRIES)
async def order(ctx: stepwell.Context) -> dict[str, Any]:
    n = ctx.event.data["n"]
    a = await ctx.step.run("a", record, ctx.run_id, "a", n)
    # b's result carries a's token: if a's result were lost and a ran again, they would differ.
    b = await ctx.step.run("b", record, ctx.run_id, "b", a["t"])
    await ctx.step.sleep("nap", "1s")
    shipped = await ctx.step.wait_for_event(
        "shipped", event="crash/shipped", match="data.n", timeout="10m"
    )
    items = [
        stepwell.Event("crash/item", {"n": n, "i": i}, id=f"item-{n}-{i}")
        for i in range(ITEMS_PER_ORDER)
    ]
    await ctx.step.send_event("fan-out", items)
    price = await ctx.step.invoke("quote", quote, {"n": n})
    total = await ctx.step.run("total", record, ctx.run_id, "total", a["v"] + price["price"])
    return {
        "n": n,
        "tracking": shipped.data["tracking"] if shipped else None,
        "total": total["v"],
        "tokens": {
            "a": a["t"],
            "b": b["t"],
            "b_saw": b["v"],
            "price": price["t"],
            "total": total["t"],
        },
    }


@app.function(
    "audit",
    trigger=stepwell.Trigger(
        "inngest/function.finished", if_exp="event.data.function_id == 'crash-nothing'"
    ),
)
async def audit(ctx: stepwell.Context) -> None:
    """Listens to every run's end, so that each stores its ``inngest/function.finished`` (the
    test counts them: one per run); its ``if`` holds for no run, so it starts none."""


@app.function("item", trigger="crash/item", retries=RETRIES)
async def item(ctx: stepwell.Context) -> dict[str, Any]:
    data = ctx.event.data
    pack = await ctx.step.run("pack", record, ctx.run_id, "pack", f"{data['n']}.{data['i']}")
    return {"packed": pack["v"], "tokens": {"pack": pack["t"]}}


@app.function("work", trigger="crash/work", retries=RETRIES)
async def work(ctx: stepwell.Context) -> dict[str, Any]:
    n = ctx.event.data["n"]
    tokens: dict[str, str] = {}
    total = 0
    for i in range(3):
        step = await ctx.step.run(f"w{i}", record, ctx.run_id, f"w{i}", n + i)
        tokens[f"w{i}"] = step["t"]
        total += step["v"]
    return {"total": total, "tokens": tokens}


@app.function("tick", trigger=stepwell.Cron("* * * * *"), retries=RETRIES)
async def tick(ctx: stepwell.Context) -> dict[str, Any]:
    tock = await ctx.step.run("tock", record, ctx.run_id, "tock", None)
    return {"tokens": {"tock": tock["t"]}}


class AnyNodeSender:
    """Sends events to the first node that answers, trying every node until a deadline."""

    def __init__(self, urls: Sequence[str], event_key: str, deadline_s: float = 30) -> None:
        self.urls = list(urls)
        self.event_key = event_key
        self.deadline_s = deadline_s

    async def send_wire(self, events: Sequence[Mapping[str, Any]]) -> list[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline_s
        attempt = 0
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                url = self.urls[attempt % len(self.urls)]
                attempt += 1
                try:
                    response = await client.post(f"{url}/e/{self.event_key}", json=list(events))
                    if response.status_code == 200:
                        return [str(i) for i in response.json()["ids"]]
                except httpx.HTTPError:
                    pass
                if loop.time() > deadline:
                    raise RuntimeError(f"no node accepted the events after {attempt} attempts")
                await asyncio.sleep(0.1)


def main() -> None:
    import uvicorn

    event_key = os.environ["CRASH_EVENT_KEY"]
    app.attach(AnyNodeSender(os.environ["CRASH_NODES"].split(","), event_key))
    web = serve.serve_asgi(
        app, mode="cloud", signing_key=os.environ["CRASH_SIGNING_KEY"], event_key=event_key
    )
    uvicorn.run(web, host="127.0.0.1", port=int(os.environ["CRASH_PORT"]), log_level="warning")


if __name__ == "__main__":
    main()
