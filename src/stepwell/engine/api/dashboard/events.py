"""Events: the live list, one event's page (payload, runs it started, replay), the send form."""

from __future__ import annotations

from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from stepwell.engine.api.dashboard.html import (
    Form,
    button_form,
    engine_of,
    esc,
    fmt_time,
    json_block,
    link,
    page,
    redirect,
    status_badge,
    table,
    text_input,
)
from stepwell.engine.operations import replay_event
from stepwell.errors import StepwellError
from stepwell.store.records import EventRecord, RunRecord

PAGE_SIZE = 50


def event_rows(events: list[EventRecord]) -> str:
    if not events:
        return '<tr><td colspan="4" class="muted">No events yet.</td></tr>'
    return "".join(
        f'<tr data-event="{esc(e.event_id)}"><td class="mono">'
        f'<a href="/events/{esc(e.event_id)}">{esc(e.name)}</a></td>'
        f'<td class="mono">{esc(e.event_id)}</td><td>{esc(e.source)}</td>'
        f"<td>{fmt_time(e.received_at)}</td></tr>"
        for e in events
    )


async def _events(request: Request) -> list[EventRecord]:
    name = request.query_params.get("name") or None
    cursor = request.query_params.get("cursor") or None
    return await engine_of(request).store.read(
        lambda tx: tx.list_events(name, cursor, PAGE_SIZE + 1)
    )


async def events_fragment(request: Request) -> Response:
    events = await _events(request)
    return HTMLResponse(event_rows(events[:PAGE_SIZE]), headers={"Cache-Control": "no-store"})


async def events_page(request: Request) -> Response:
    events = await _events(request)
    name = request.query_params.get("name") or ""
    cursor = request.query_params.get("cursor")
    filters = (
        '<form method="get" action="/events" class="filters" role="search" '
        f'aria-label="Filter events"><div>{text_input("name", "Event name", name)}</div>'
        '<div><button type="submit">Filter</button></div></form>'
    )
    live = None if cursor else "/events/fragment?" + urlencode({"name": name} if name else {})
    body = filters + table(
        ("Name", "Event id", "Source", "Received"),
        event_rows(events[:PAGE_SIZE]),
        caption="Events, newest first",
        live=live,
    )
    if len(events) > PAGE_SIZE:
        body += f"<p>{link('/events', 'Older events →', name=name, cursor=events[PAGE_SIZE - 1].event_id)}</p>"
    return page(request, "Events", body, current="/events")


async def event_page(request: Request) -> Response:
    engine = engine_of(request)
    event_id = request.path_params["event_id"]
    event = await engine.store.read(lambda tx: tx.get_event(event_id))
    if event is None:
        return page(
            request, "Event not found", f"<p>No event {esc(event_id)}.</p>", status_code=404
        )
    runs, skips = await engine.store.read(
        lambda tx: (tx.runs_for_event(event_id), tx.skips_for_event(event_id))
    )
    body = (
        f'<div class="actions">{button_form(f"/events/{event.event_id}/replay", "Replay event")}'
        "</div>"
        f"<p>Received {fmt_time(event.received_at)} from {esc(event.source)}"
        + (f", id <code>{esc(event.dedupe_key)}</code>" if event.dedupe_key else "")
        + "</p><h2>Payload</h2>"
        + json_block(event.to_wire(), "event payload")
        + "<h2>Runs it started</h2>"
        + (_runs_table(runs) if runs else "")
        + _skipped(skips)
        + ("" if runs or skips else f"<p>{esc(_why_no_runs(request, event))}</p>")
    )
    return page(request, f"Event {event.name}", body)


def _runs_table(runs: list[RunRecord]) -> str:
    rows = "".join(
        f'<tr><td class="mono"><a href="/runs/{esc(r.run_id)}">{esc(r.run_id)}</a></td>'
        f"<td>{esc(r.function_id)}</td><td>{status_badge(r.status)}</td>"
        f"<td>{fmt_time(r.created_at)}</td></tr>"
        for r in runs
    )
    return table(
        ("Run", "Function", "Status", "Queued"), rows, caption="Runs started by this event"
    )


def _skipped(skips: list[tuple[str, str]]) -> str:
    """Functions whose trigger matched but whose flow control started no run, and why."""
    if not skips:
        return ""
    items = "".join(
        f"<li><code>{esc(function_id)}</code>: {esc(reason)}</li>" for function_id, reason in skips
    )
    return f"<h3>Functions it started no run of</h3><ul>{items}</ul>"


def _why_no_runs(request: Request, event: EventRecord) -> str:
    if event.name.startswith("inngest/"):
        return "None: a system event starts only functions triggered by it."
    candidates = engine_of(request).registry.candidates(event.name)
    if not candidates:
        return f"None: no registered function is triggered by {event.name!r}."
    return (
        "None: the functions triggered by this name have an `if` expression that this "
        "event did not match (or they were registered after it arrived)."
    )


async def replay(request: Request) -> Response:
    event_id = request.path_params["event_id"]
    try:
        new_id = await replay_event(engine_of(request), event_id)
    except StepwellError as exc:
        return redirect(f"/events/{event_id}", error=str(exc))
    return redirect(f"/events/{new_id}", notice=f"Replayed as a new event (from {event_id}).")


# -- send -----------------------------------------------------------------------------------------


async def send_form(
    request: Request,
    name: str = "",
    data: str = "{}",
    problem: tuple[str, str] | None = None,
    status: int = 200,
) -> Response:
    """The send-event form; ``problem`` is ``(field, message)`` to show beside the field."""

    def error_for(field: str) -> tuple[str, str]:
        if problem is None or problem[0] != field:
            return "", ""
        note = f'<p class="field-error" id="{field}-error" role="alert">{esc(problem[1])}</p>'
        return note, f' aria-invalid="true" aria-describedby="{field}-error"'

    name_error, name_attrs = error_for("name")
    data_error, data_attrs = error_for("data")
    body = f"""<form method="post" action="/send" class="stack" aria-label="Send an event">
<label for="event-name">Event name</label>
<input id="event-name" name="name" value="{esc(name)}" required placeholder="order/placed"
 autocomplete="off" spellcheck="false"{name_attrs}>
{name_error}
<label for="event-data">Data (a JSON object)</label>
<textarea id="event-data" name="data" rows="10" spellcheck="false"{data_attrs}>{esc(data)}</textarea>
{data_error}
<div><button type="submit">Send event</button></div>
</form>"""
    return page(request, "Send an event", body, status_code=status)


async def send(request: Request) -> Response:
    form = await Form.read(request)
    name = str(form.get("name") or "").strip()
    raw = str(form.get("data") or "").strip() or "{}"
    if not name:
        return await send_form(request, name, raw, ("name", "Give the event a name."), 400)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return await send_form(request, name, raw, ("data", f"Not valid JSON: {exc}"), 400)
    if not isinstance(data, dict):
        return await send_form(request, name, raw, ("data", "Data must be a JSON object {…}."), 400)
    try:
        ids = await engine_of(request).send_wire({"name": name, "data": data})
    except StepwellError as exc:
        return await send_form(request, name, raw, ("name", str(exc)), 400)
    return redirect(f"/events/{ids[0]}", notice="Event sent.")
