"""Runs: the filtered, live list and one run's page with its timeline, steps and actions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from stepwell.engine.api.dashboard import timeline
from stepwell.engine.api.dashboard.html import (
    Form,
    button_form,
    definition_list,
    esc,
    fmt_ms,
    fmt_time,
    json_block,
    json_text,
    link,
    page,
    query_without,
    select,
    status_badge,
    table,
    text_input,
)
from stepwell.engine.engine import Engine
from stepwell.engine.operations import RunSelection, rerun_from_step, scan_runs
from stepwell.errors import StepwellError
from stepwell.store.records import FINAL_STATUSES, MemoRecord, RunFilter, RunRecord

STATUSES = ("Queued", "Running", "Completed", "Failed", "Cancelled")
RANGES = {"15m": 15 * 60_000, "1h": 3_600_000, "24h": 86_400_000, "7d": 7 * 86_400_000}
PAGE_SIZE = 50
SCAN_BUDGET = 5000
HEADERS = ("Run", "Function", "Status", "Trigger", "Queued", "Duration")


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


@dataclass(frozen=True, slots=True)
class RunQuery:
    """The runs list's filters, read from the query string."""

    function_id: str | None
    status: str | None
    event_name: str | None
    since: int | None
    until: int | None
    search: str | None
    cursor: str | None
    condition: str | None = None

    @classmethod
    def parse(cls, request: Request, now: int) -> RunQuery:
        q = request.query_params

        def opt(name: str) -> str | None:
            value = q.get(name, "").strip()
            return value or None

        since = _int(opt("since"))
        if (window := RANGES.get(q.get("range", ""))) is not None:
            since = now - window
        status = opt("status")
        return cls(
            function_id=opt("function"),
            status=status if status in STATUSES else None,
            event_name=opt("event"),
            since=since,
            until=_int(opt("until")),
            search=opt("q"),
            cursor=opt("cursor"),
            condition=opt("if"),
        )

    def selection(self) -> RunSelection:
        """The same filters as a bulk operation's selection."""
        return RunSelection(
            function_id=self.function_id,
            status=self.status,
            started_after=self.since,
            started_before=self.until,
            if_exp=self.condition,
            event_name=self.event_name,
        )

    def filter(self, limit: int = PAGE_SIZE) -> RunFilter:
        return RunFilter(
            function_id=self.function_id,
            status=self.status,
            since=self.since,
            until=self.until,
            cursor=self.cursor,
            limit=limit,
        )


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


@dataclass(frozen=True, slots=True)
class RunsPage:
    """One page of the runs list: the runs, where the next page starts, and a note to show."""

    runs: list[RunRecord]
    next_cursor: str | None = None
    note: str = ""


async def find_runs(engine: Engine, query: RunQuery) -> RunsPage:
    """The page of runs the query asks for."""
    flt = query.filter(PAGE_SIZE + 1)
    if query.search:
        term = query.search
        run = await engine.store.read(lambda tx: tx.get_run(term))
        if run is not None:
            return RunsPage([run])
        flt = replace(flt, event_id=term)
        runs = await engine.store.read(lambda tx: tx.list_runs(flt))
    elif query.condition:
        return await _scan(engine, query)
    elif query.event_name:
        name = query.event_name
        runs = await engine.store.read(lambda tx: tx.list_runs_for_event_name(name, flt))
    else:
        runs = await engine.store.read(lambda tx: tx.list_runs(flt))
    more = len(runs) > PAGE_SIZE
    return RunsPage(runs[:PAGE_SIZE], runs[PAGE_SIZE - 1].run_id if more else None)


async def _scan(engine: Engine, query: RunQuery) -> RunsPage:
    """A page of runs whose trigger event passes the CEL condition: evaluated run by run, so
    at most :data:`SCAN_BUDGET` runs are examined per page."""
    try:
        runs, resume = await scan_runs(
            engine, query.selection(), cursor=query.cursor, want=PAGE_SIZE, budget=SCAN_BUDGET
        )
    except StepwellError as exc:
        return RunsPage([], None, f"The condition does not compile: {exc}")
    note = ""
    if resume is not None and len(runs) < PAGE_SIZE:
        note = f"Looked at {SCAN_BUDGET} runs for this page; older runs may match too."
    return RunsPage(runs, resume, note)


def run_rows(runs: list[RunRecord], names: dict[str, str], now: int) -> str:
    """``<tr>`` rows for runs; ``names`` maps event ids to event names."""
    if not runs:
        return '<tr><td colspan="6" class="muted">No runs match.</td></tr>'
    out = []
    for r in runs:
        end = r.ended_at if r.ended_at is not None else (now if r.started_at else None)
        duration = fmt_ms(end - (r.started_at or r.created_at)) if end is not None else "—"
        out.append(
            f'<tr data-run="{esc(r.run_id)}"><td class="mono"><a href="/runs/{esc(r.run_id)}">'
            f"{esc(r.run_id)}</a></td><td>{esc(r.function_id)}</td>"
            f"<td>{status_badge(r.status)}</td>"
            f'<td class="mono">{esc(names.get(r.event_id, ""))}</td>'
            f"<td>{fmt_time(r.created_at)}</td><td>{esc(duration)}</td></tr>"
        )
    return "".join(out)


async def _rows_and_next(request: Request) -> tuple[str, RunsPage, RunQuery]:
    engine = engine_of(request)
    now = engine.clock.now_ms()
    query = RunQuery.parse(request, now)
    found = await find_runs(engine, query)
    event_ids = list(dict.fromkeys(r.event_id for r in found.runs))
    events = await engine.store.read(lambda tx: tx.get_events(event_ids))
    names = {e.event_id: e.name for e in events}
    return run_rows(found.runs, names, now), found, query


async def runs_fragment(request: Request) -> Response:
    """The first page's rows, polled by the list to show new runs live."""
    rows, _, _ = await _rows_and_next(request)
    return HTMLResponse(rows, headers={"Cache-Control": "no-store"})


async def runs_page(request: Request) -> Response:
    engine = engine_of(request)
    rows, found, query = await _rows_and_next(request)
    next_cursor = found.next_cursor
    functions = [("", "All functions")] + [
        (s.function_id, s.function_id) for s in sorted(engine.registry.all(), key=_fid)
    ]
    ranges = [("", "Any time"), ("15m", "Last 15 minutes"), ("1h", "Last hour")]
    ranges += [("24h", "Last 24 hours"), ("7d", "Last 7 days")]
    q = request.query_params
    filters = f"""<form method="get" action="/" class="filters" role="search" aria-label="Filter runs">
<div>{select("function", "Function", functions, query.function_id)}</div>
<div>{select("status", "Status", [("", "Any status")] + [(s, s) for s in STATUSES], query.status)}</div>
<div>{select("range", "Queued", ranges, q.get("range"))}</div>
<div>{text_input("event", "Event name", query.event_name, placeholder="order/placed")}</div>
<div>{text_input("if", "Trigger event matches (CEL)", query.condition, spellcheck="false", placeholder='event.data.order_id == "o-1"')}</div>
<div>{text_input("q", "Run id or event id", query.search, spellcheck="false")}</div>
<div><button type="submit">Filter</button></div>
</form>"""
    live = None
    if query.cursor is None:
        live = "/runs/fragment?" + urlencode(query_without(request, "cursor", "notice", "error"))
    body = filters
    if found.note:
        body += f'<p class="notice" role="status">{esc(found.note)}</p>'
    body += table(HEADERS, rows, caption="Runs, newest first", live=live)
    if next_cursor:
        params = query_without(request, "notice", "error", cursor=next_cursor)
        body += f"<p>{link('/', 'Older runs →', **params)}</p>"
    if query.cursor:
        body += f"<p>{link('/', '← Newest runs', **query_without(request, 'cursor', 'notice', 'error'))}</p>"
    body += _bulk_forms(query, request)
    return page(request, "Runs", body, current="/")


def _fid(spec: Any) -> str:
    return str(spec.function_id)


def _bulk_forms(query: RunQuery, request: Request) -> str:
    if query.search:
        return (
            '<h2>Bulk actions</h2><p class="muted">Clear the search to cancel or replay every '
            "run matching the filters.</p>"
        )
    if not (
        query.function_id or query.status or query.since or query.event_name or query.condition
    ):
        return (
            '<h2>Bulk actions</h2><p class="muted">Filter by function, status or time to cancel '
            "or replay every matching run at once.</p>"
        )
    hidden = "".join(
        f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
        for k, v in (
            ("function_id", query.function_id),
            ("status", query.status),
            ("started_after", query.since),
            ("started_before", query.until),
            ("event_name", query.event_name),
            ("if", query.condition),
        )
        if v is not None
    )
    summary = ", ".join(
        f"{k} {v}"
        for k, v in (
            ("function", query.function_id),
            ("status", query.status),
            ("event", query.event_name),
            ("trigger event matching", query.condition),
        )
        if v is not None
    )
    if query.since:
        summary += f"{', ' if summary else ''}queued since {fmt_time(query.since)}"
    forms = "".join(
        f'<form method="post" action="/bulk" class="inline" data-confirm="{esc(ask)}">{hidden}'
        f'<input type="hidden" name="kind" value="{kind}">'
        f'<button type="submit" class="{css}">{esc(text)}</button></form> '
        for kind, text, css, ask in (
            ("cancel", "Cancel all matching runs", "danger", "Cancel every matching run?"),
            ("replay", "Replay all matching runs", "secondary", "Start a new run for each?"),
        )
    )
    return f'<h2>Bulk actions</h2><p>Every run matching: {summary}.</p><div class="actions">{forms}</div>'


# -- one run ---------------------------------------------------------------------------------------


async def _load_run(request: Request) -> tuple[Any, ...]:
    """The run, its memo, queue items, waits and trigger events; ``(None,)`` if unknown."""
    run_id = request.path_params["run_id"]

    def load(tx: Any) -> tuple[Any, ...]:
        run = tx.get_run(run_id)
        if run is None:
            return (None,)
        return (
            run,
            tx.get_memo(run_id),
            tx.list_run_queue_items(run_id),
            tx.list_run_waits(run_id),
            tx.get_events(list(run.event_ids)),
        )

    return await engine_of(request).store.read(load)


def _run_state(run: RunRecord, memo: list[MemoRecord], queue: Any, waits: Any, now: int) -> str:
    """The part of a run's page that changes while it runs: summary, actions, timeline, outcome."""
    final = ' <span data-final="1" hidden></span>' if run.status in FINAL_STATUSES else ""
    rows = timeline.bars(run, memo, queue, waits, now)
    return (
        _run_summary(run)
        + final
        + _run_actions(run)
        + "<h2>Timeline</h2>"
        + timeline.render(run, rows, now)
        + _outcome(run)
    )


async def run_fragment(request: Request) -> Response:
    """What the run's page polls while the run has not ended."""
    loaded = await _load_run(request)
    if loaded[0] is None:
        return HTMLResponse("", status_code=404)
    run, memo, queue, waits, _ = loaded
    state = _run_state(run, memo, queue, waits, engine_of(request).clock.now_ms())
    return HTMLResponse(state, headers={"Cache-Control": "no-store"})


async def run_page(request: Request) -> Response:
    loaded = await _load_run(request)
    if loaded[0] is None:
        run_id = request.path_params["run_id"]
        return page(request, "Run not found", f"<p>No run {esc(run_id)}.</p>", status_code=404)
    run, memo, queue, waits, events = loaded
    state = _run_state(run, memo, queue, waits, engine_of(request).clock.now_ms())
    if run.status not in FINAL_STATUSES:
        # polled while the run is active; the page reloads once when it ends
        live = f"/runs/{run.run_id}/fragment"
        state = f'<div data-live="{esc(live)}" data-reload-when-final="1">{state}</div>'
    body = state + "<h2>Steps</h2>" + _steps(run, memo)
    body += "<h2>Trigger events</h2>" + "".join(
        f'<h3 class="mono">{link(f"/events/{e.event_id}", e.name)} '
        f'<span class="muted">{esc(e.event_id)}</span></h3>'
        + json_block(e.to_wire(), f"event {e.name}")
        for e in events
    )
    return page(request, f"Run {run.run_id}", body)


def _run_summary(run: RunRecord) -> str:
    items = {
        "Function": esc(run.function_id),
        "Status": status_badge(run.status),
        "Queued": fmt_time(run.created_at),
        "Started": fmt_time(run.started_at),
        "Ended": fmt_time(run.ended_at),
        "Attempt": esc(run.attempt),
    }
    if run.cancel_reason:
        items["Cancelled because"] = esc(run.cancel_reason)
    if run.parent_run_id:
        items["Invoked by"] = link(f"/runs/{run.parent_run_id}", run.parent_run_id)
    return definition_list(items)


def _run_actions(run: RunRecord) -> str:
    buttons = []
    if run.status not in FINAL_STATUSES:
        buttons.append(
            button_form(
                f"/runs/{run.run_id}/cancel", "Cancel run", danger=True, confirm="Cancel this run?"
            )
        )
    buttons.append(button_form(f"/runs/{run.run_id}/rerun", "Rerun"))
    return f'<div class="actions" aria-label="Run actions">{"".join(buttons)}</div>'


def _outcome(run: RunRecord) -> str:
    if run.status == "Completed":
        return "<h2>Output</h2>" + json_block(run.output, "run output")
    if run.error is not None:
        return "<h2>Error</h2>" + _error_block(run.error)
    return ""


def _error_block(error: Any) -> str:
    if not isinstance(error, dict):
        return json_block(error, "error")
    head = f"<p><strong>{esc(error.get('name', 'Error'))}</strong>: {esc(error.get('message', ''))}</p>"
    stack = error.get("stack")
    if stack:
        head += f'<pre class="json" tabindex="0" aria-label="stack trace">{esc(stack)}</pre>'
    return head


def _steps(run: RunRecord, memo: list[MemoRecord]) -> str:
    if not memo:
        return '<p class="muted">No step has completed yet.</p>'
    out = []
    for i, m in enumerate(memo):
        value = m.value
        if isinstance(value, dict) and "error" in value and "data" not in value:
            shown = "<p>Error</p>" + _error_block(value["error"])
        elif isinstance(value, dict) and "data" in value:
            shown = json_block(value["data"], f"output of {m.step_id}")
        else:
            shown = json_block(value, f"result of {m.step_id}")
        took = fmt_ms(m.created_at - m.started_at) if m.started_at is not None else "—"
        out.append(
            f'<section class="step" data-step-id="{esc(m.step_id)}" aria-label="step {esc(m.step_id)}">'
            f'<h3 class="mono">{esc(m.step_id)} <span class="muted">({esc(m.kind)}, {esc(took)}, '
            f"{m.attempts} attempt{'s' if m.attempts != 1 else ''})</span></h3>{shown}"
            + _rerun_from(run, m, memo[:i])
            + "</section>"
        )
    return "".join(out)


def _rerun_with_output(run: RunRecord, step: MemoRecord) -> str:
    if not (isinstance(step.value, dict) and "data" in step.value):
        return ""
    ident = f"own-{step.step_key[:16]}"
    return (
        "<details><summary>Rerun with another output for this step</summary>"
        f'<form method="post" action="/runs/{esc(run.run_id)}/rerun" class="stack">'
        f'<input type="hidden" name="step_key" value="{esc(step.step_key)}">'
        "<p>A new run takes this output for the step instead of running it, and runs the steps "
        "after it again.</p>"
        f'<label for="{esc(ident)}">Output of <code>{esc(step.step_id)}</code> (JSON)</label>'
        f'<textarea id="{esc(ident)}" name="output:{esc(step.step_key)}" rows="3" '
        f'data-own-output="{esc(step.step_id)}">{esc(json_text(step.value["data"]))}</textarea>'
        f'<div><button type="submit">Rerun after {esc(step.step_id)}</button></div>'
        "</form></details>"
    )


def _rerun_from(run: RunRecord, step: MemoRecord, earlier: list[MemoRecord]) -> str:
    fields = []
    for m in earlier:
        if not (isinstance(m.value, dict) and "data" in m.value):
            continue
        name = f"output:{m.step_key}"
        ident = f"edit-{step.step_key[:10]}-{m.step_key[:10]}"
        fields.append(
            f'<label for="{esc(ident)}">Output of step <code>{esc(m.step_id)}</code> (JSON)</label>'
            f'<textarea id="{esc(ident)}" name="{esc(name)}" rows="3" '
            f'data-edit-step="{esc(m.step_id)}">{esc(json_text(m.value["data"]))}</textarea>'
        )
    edits = "".join(fields) or '<p class="muted">No earlier step outputs to edit.</p>'
    return _rerun_with_output(run, step) + (
        f"<details><summary>Rerun from this step</summary>"
        f'<form method="post" action="/runs/{esc(run.run_id)}/rerun" class="stack">'
        f'<input type="hidden" name="step_key" value="{esc(step.step_key)}">'
        "<p>A new run replays the steps before this one from their recorded outputs (edit them "
        "to change what this step receives) and runs this step and the rest again.</p>"
        f'{edits}<div><button type="submit">Rerun from {esc(step.step_id)}</button></div>'
        "</form></details>"
    )


async def cancel_run(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    try:
        done = await engine_of(request).cancel(run_id, "cancelled from the dashboard")
    except StepwellError as exc:
        return _back(f"/runs/{run_id}", error=str(exc))
    return _back(
        f"/runs/{run_id}", notice="Run cancelled." if done else "The run had already ended."
    )


async def rerun_run(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    form = await Form.read(request)
    step_key = str(form.get("step_key") or "") or None
    outputs: dict[str, Any] = {}
    for name, value in form.items():
        if not name.startswith("output:"):
            continue
        try:
            outputs[name.removeprefix("output:")] = orjson.loads(str(value))
        except orjson.JSONDecodeError as exc:
            return _back(f"/runs/{run_id}", error=f"Not valid JSON for an edited output: {exc}")
    try:
        run = await rerun_from_step(engine_of(request), run_id, step_key, outputs)
    except StepwellError as exc:
        return _back(f"/runs/{run_id}", error=str(exc))
    what = "from a step" if step_key else ""
    return _back(
        f"/runs/{run.run_id}", notice=f"Rerun {what} of {run_id} started.".replace("  ", " ")
    )


def _back(path: str, **message: str) -> Response:
    return RedirectResponse(f"{path}?{urlencode(message)}", status_code=303)
