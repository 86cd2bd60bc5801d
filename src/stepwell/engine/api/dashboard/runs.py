"""Runs: the list, filtered, searched, paged and live, and its bulk actions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from stepwell.engine.api.dashboard.html import (
    engine_of,
    esc,
    fmt_ms,
    fmt_time,
    link,
    page,
    query_without,
    select,
    status_badge,
    table,
    text_input,
)
from stepwell.engine.bulk import RunSelection, scan_runs
from stepwell.engine.engine import Engine
from stepwell.errors import StepwellError
from stepwell.store.records import RunFilter, RunRecord

STATUSES = ("Queued", "Running", "Completed", "Failed", "Cancelled")
RANGES = {"15m": 15 * 60_000, "1h": 3_600_000, "24h": 86_400_000, "7d": 7 * 86_400_000}
PAGE_SIZE = 50
SCAN_BUDGET = 5000
HEADERS = ("Run", "Function", "Status", "Trigger", "Queued", "Duration")


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
