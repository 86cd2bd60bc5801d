"""A run's step timeline, drawn to scale: a pure function of the run, its memo and pending work.

The scale runs from the moment the run was queued to its end (or now). Each step is a bar from
when it started to when its memo row was written; a step without a start time (a sleep, a wait,
an invoke) starts where the previous step ended. Pending work (a sleep's timer, a wait, an invoke
timeout) is drawn hatched from the last activity to its due time, clipped at the scale's end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stepwell.engine.api.dashboard.html import esc, fmt_ms, fmt_time
from stepwell.store.records import MemoRecord, QueueItem, RunRecord, WaitRecord


@dataclass(frozen=True, slots=True)
class Bar:
    """One row of the timeline.

    Attributes:
        label: what the row is (a step id, "queued", "sleeping", ...).
        kind: ``queued``, ``step``, ``failed`` or ``pending``.
        start: epoch ms.
        end: epoch ms (the due time for pending rows).
        note: a short text after the bar (duration, attempts, due time).
    """

    label: str
    kind: str
    start: int
    end: int
    note: str


def bars(
    run: RunRecord,
    memo: Sequence[MemoRecord],
    queue: Sequence[QueueItem],
    waits: Sequence[WaitRecord],
    now: int,
) -> list[Bar]:
    """The timeline's rows, in order: queued, each step by completion, then pending work."""
    rows: list[Bar] = []
    first_start = run.started_at or (memo[0].started_at if memo else None)
    if first_start is not None:
        rows.append(
            Bar(
                "queued",
                "queued",
                run.created_at,
                first_start,
                fmt_ms(first_start - run.created_at),
            )
        )
    last = first_start or run.created_at
    for m in memo:
        start = m.started_at if m.started_at is not None else last
        start = min(start, m.created_at)
        failed = isinstance(m.value, dict) and "error" in m.value and "data" not in m.value
        note = fmt_ms(m.created_at - start)
        if m.attempts > 1:
            note += f", {m.attempts} attempts"
        rows.append(Bar(m.step_id, "failed" if failed else "step", start, m.created_at, note))
        last = max(last, m.created_at)
    rows += _pending(run, memo, queue, waits, last, now)
    return rows


def _pending(
    run: RunRecord,
    memo: Sequence[MemoRecord],
    queue: Sequence[QueueItem],
    waits: Sequence[WaitRecord],
    last: int,
    now: int,
) -> list[Bar]:
    """Rows for work not done yet: the invocation (running, or a retry waiting for its time),
    timers of sleeps and invokes, waits for events."""
    rows: list[Bar] = []
    memoized = {m.step_key for m in memo}
    for item in queue:
        if item.kind in ("start", "continue"):
            if item.lease_owner is not None and (item.lease_expires_at or 0) > now:
                rows.append(
                    Bar(f"running (attempt {run.attempt + 1})", "pending", last, now, "running now")
                )
            elif item.available_at > now:
                label = f"attempt {run.attempt + 1} (a retry)" if run.attempt else "due to start"
                rows.append(Bar(label, "pending", last, item.available_at, "until"))
            continue
        if item.kind in ("start_timeout", "finish_timeout"):
            what = "start" if item.kind == "start_timeout" else "finish"
            label = f"timeout: cancelled if it does not {what} by then"
            rows.append(Bar(label, "pending", last, item.available_at, "until"))
            continue
        if item.kind not in ("sleep", "invoke_timeout"):
            continue  # a wait's timeout is drawn with its wait below
        key = str(item.payload.get("step_key") or item.item_id.split(":", 2)[-1])
        if key in memoized:
            continue
        what = "sleeping" if item.kind == "sleep" else "invoked, waiting"
        step_id = str(item.payload.get("step_id") or key)
        rows.append(Bar(f"{step_id} ({what})", "pending", last, item.available_at, "until"))
    for wait in waits:
        if wait.kind == "step" and wait.step_key not in memoized:
            label = f"{wait.step_id or wait.step_key} (waiting for {wait.event_name})"
            rows.append(Bar(label, "pending", last, wait.expires_at, "until"))
    return rows


def render(run: RunRecord, rows: Sequence[Bar], now: int) -> str:
    """The timeline as HTML: positioned bars with text alternatives for screen readers."""
    if not rows:
        return '<p class="muted">No steps yet: the run has not started.</p>'
    t0 = run.created_at
    t1 = max(run.ended_at or now, *(r.end for r in rows if r.kind != "pending"), t0 + 1)
    span = t1 - t0
    lines = []
    for r in rows:
        left = max(0.0, min(100.0, (r.start - t0) * 100 / span))
        right = max(left, min(100.0, (r.end - t0) * 100 / span))
        note = f"until {fmt_time(r.end)}" if r.note == "until" else esc(r.note)
        described = f"{r.label}: {r.kind}, from {r.start - t0} ms to {r.end - t0} ms"
        lines.append(
            f'<div class="tl-row" role="listitem" data-step="{esc(r.label)}">'
            f'<span class="tl-name mono" title="{esc(r.label)}">{esc(r.label)}</span>'
            f'<span class="tl-track" role="img" aria-label="{esc(described)}">'
            f'<span class="tl-bar {esc(r.kind)}" style="left:{left:.3f}%;width:{right - left:.3f}%">'
            "</span></span>"
            f'<span class="tl-dur">{note}</span></div>'
        )
    axis = (
        f'<div class="tl-axis" aria-hidden="true"><span>0</span><span>{esc(fmt_ms(span // 2))}'
        f"</span><span>{esc(fmt_ms(span))}</span></div>"
    )
    return (
        f'<div class="timeline" role="list" aria-label="Step timeline">{"".join(lines)}{axis}</div>'
    )
