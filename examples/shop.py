"""Order processing: fan-out with send_event, a 7-day wait for a shipping label, then notify.

Flow control keeps the mail provider happy (at most 10 emails a second, never two at once for
one address) and processes an order once however often it is placed.

Try it with the dev server running (`make dev`):

    stepwell send order/placed --data '{"order_id": "o-1", "email": "ada@example.com"}'
    stepwell send shipping/label-created --data '{"order_id": "o-1", "tracking": "TRK-42"}'
    stepwell runs list
"""

from __future__ import annotations

import stepwell

app = stepwell.App("shop")


class OrderPlaced(stepwell.EventModel, name="order/placed"):
    order_id: str
    email: str
    items: list[str] = []


def load_order(order_id: str, email: str, items: list[str]) -> dict[str, object]:
    # A real app would read its database here; step results must be JSON.
    return {"id": order_id, "email": email, "items": items or ["notebook"]}


async def notify_shipped(order: dict[str, object], tracking: str) -> str:
    return f"told {order['email']} that {order['id']} ships with {tracking}"


@app.function("process-order", trigger=OrderPlaced, retries=5, idempotency="event.data.order_id")
async def process_order(ctx: stepwell.Context) -> dict[str, object]:
    placed = ctx.data
    assert isinstance(placed, OrderPlaced)
    order = await ctx.step.run(
        "load-order", load_order, placed.order_id, placed.email, placed.items
    )
    await ctx.step.send_event(
        "notify",
        [
            stepwell.Event("email/send", {"to": order["email"], "template": "order-confirm"}),
            stepwell.Event("inventory/reserve", {"order_id": order["id"], "items": order["items"]}),
        ],
    )
    label = await ctx.step.wait_for_event(
        "wait-for-shipment", event="shipping/label-created", match="data.order_id", timeout="7d"
    )
    if label is not None:
        await ctx.step.run("notify-shipped", notify_shipped, order, label.data["tracking"])
    return {"order_id": order["id"], "shipped": label is not None}


@app.function(
    "send-email",
    trigger="email/send",
    throttle=stepwell.Throttle(limit=10, period="1s"),
    concurrency=stepwell.Concurrency(1, key="event.data.to"),
)
async def send_email(ctx: stepwell.Context) -> str:
    def deliver() -> str:
        ctx.logger.info("sending %s to %s", ctx.event.data["template"], ctx.event.data["to"])
        return "sent"

    return await ctx.step.run("deliver", deliver)


@app.function("reserve-inventory", trigger="inventory/reserve")
async def reserve_inventory(ctx: stepwell.Context) -> dict[str, object]:
    reserved = []
    for item in ctx.event.data["items"]:
        # The same step id in a loop is fine: repeats get a counter suffix.
        reserved.append(await ctx.step.run("reserve", lambda item=item: {"item": item, "ok": True}))
    return {"reserved": reserved}
