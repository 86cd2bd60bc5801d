"""Runs per minute per function, drawn as inline SVG on the server: the activity page.

:func:`per_minute` folds the store's ``(function_id, minute, kind, count)`` rows into one series
per function; :func:`svg` draws one series as grouped bars (started, completed, failed,
cancelled) with a text alternative, so the numbers are there for screen readers and in the
table below each chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from stepwell.engine.api.dashboard.html import engine_of, esc, page, table

KINDS = ("started", "Completed", "Failed", "Cancelled")
MINUTE = 60_000
WINDOW_MINUTES = 60


@dataclass(slots=True)
class Series:
    """Counts per minute for one function, oldest minute first."""

    function_id: str
    counts: dict[str, list[int]] = field(default_factory=dict)

    def total(self, kind: str) -> int:
        return sum(self.counts.get(kind, ()))


def per_minute(
    rows: Sequence[tuple[str, int, str, int]], first_minute: int, minutes: int
) -> list[Series]:
    """One series per function over ``minutes`` minutes starting at ``first_minute``."""
    series: dict[str, Series] = {}
    for function_id, minute, kind, count in rows:
        slot = (minute - first_minute) // MINUTE
        if kind not in KINDS or not 0 <= slot < minutes:
            continue
        s = series.setdefault(function_id, Series(function_id))
        s.counts.setdefault(kind, [0] * minutes)[slot] += count
    return [series[f] for f in sorted(series)]


def svg(s: Series, minutes: int, *, width: int = 720, height: int = 120) -> str:
    """Grouped bars per minute; the tallest bar fills the height."""
    top = max([1, *(c for values in s.counts.values() for c in values)])
    pad, base = 28, height - 16
    slot = (width - pad) / minutes
    bar = max(slot / (len(KINDS) + 1), 0.5)
    shapes = []
    for m in range(minutes):
        for i, kind in enumerate(KINDS):
            n = s.counts.get(kind, [0] * minutes)[m]
            if n == 0:
                continue
            h = (base - 4) * n / top
            x = pad + m * slot + i * bar
            shapes.append(
                f'<rect class="{kind}" x="{x:.1f}" y="{base - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}"><title>{n} {kind.lower()}, minute {m + 1 - minutes}</title>'
                "</rect>"
            )
    summary = ", ".join(f"{s.total(k)} {k.lower()}" for k in KINDS)
    label = f"{s.function_id}, last {minutes} minutes: {summary}"
    axis = (
        f'<line class="axis" x1="{pad}" y1="{base}" x2="{width}" y2="{base}"/>'
        f'<text x="0" y="12">{top}</text><text x="0" y="{base}">0</text>'
        f'<text x="{pad}" y="{height - 2}">-{minutes} min</text>'
        f'<text x="{width - 30}" y="{height - 2}">now</text>'
    )
    return (
        f'<svg class="chart" role="img" aria-label="{esc(label)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}">{axis}{"".join(shapes)}</svg>'
    )


def _legend() -> str:
    items = "".join(
        f'<li><svg width="12" height="12" class="chart" aria-hidden="true"><rect class="{k}" '
        f'width="12" height="12"/></svg> {esc(k.lower())}</li>'
        for k in KINDS
    )
    return f'<ul class="legend" aria-label="Legend">{items}</ul>'


async def activity_page(request: Request) -> Response:
    engine = engine_of(request)
    now = engine.clock.now_ms()
    first = (now // MINUTE - WINDOW_MINUTES + 1) * MINUTE
    end = first + WINDOW_MINUTES * MINUTE
    rows = await engine.store.read(lambda tx: tx.count_runs_per_minute(first, end))
    depth = await engine.store.read(lambda tx: tx.queue_depth())
    series = per_minute(rows, first, WINDOW_MINUTES)
    body = f"<p>Queue: {depth} item{'s' if depth != 1 else ''} (invocations and timers).</p>"
    if not series:
        body += '<p class="muted">No runs in the last hour.</p>'
    else:
        body += _legend()
        summary_rows = "".join(
            f'<tr><td class="mono"><a href="/?function={esc(s.function_id)}&amp;range=1h">'
            f"{esc(s.function_id)}</a></td>"
            + "".join(f"<td>{s.total(k)}</td>" for k in KINDS)
            + f"<td>{failure_rate(s)}</td></tr>"
            for s in series
        )
        body += table(
            ("Function", "Started", "Completed", "Failed", "Cancelled", "Failed of ended"),
            summary_rows,
            caption="Runs in the last hour",
        )
        for s in series:
            body += f'<h2 class="mono">{esc(s.function_id)}</h2>{svg(s, WINDOW_MINUTES)}'
    return page(request, "Activity", body, current="/activity")


def failure_rate(s: Series) -> str:
    """The share of ended runs that failed, as a percentage ("—" when none ended)."""
    ended = s.total("Completed") + s.total("Failed") + s.total("Cancelled")
    return "—" if ended == 0 else f"{100 * s.total('Failed') / ended:.0f}%"
