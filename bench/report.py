"""What a run of ``python -m bench`` found, as tables, ratios, a chart and docs/benchmarks.md.

Everything here reads the results object the runner writes to ``bench/results.json``, so a
report can be made again from that file alone (``python -m bench --report-only``).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PEER_NAMES = {"celery": "Celery", "dbos": "DBOS", "restate": "Restate"}
PART_NAMES = {
    "embedded": "stepwell W1–W4",
    "w5": "stepwell W5",
    "w6": "stepwell W6",
    "w7": "stepwell W7",
    "postgres": "stepwell on PostgreSQL",
    "http": "stepwell over HTTP",
    **PEER_NAMES,
}
NOT_APPLICABLE = {
    ("celery", "w5"): "n/a: no durable sleep",
    ("celery", "w7"): "n/a: no durable wait",
    **{(peer, "w6"): "n/a: no event API" for peer in PEER_NAMES},
}
"""What a peer's cell says for a workload it has no equivalent for."""
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"


@dataclass(frozen=True, slots=True)
class Metric:
    """One row of a table: a figure read from each system's results."""

    label: str
    path: tuple[str, ...]
    """Keys leading to the figure in a system's results, e.g. ``("w1", "ms_per_step_median")``."""
    higher_is_better: bool
    digits: int
    goal: str
    """The issue's goal for stepwell, as written in the table."""
    samples: Callable[[dict[str, Any]], str] | None = None
    """How many samples stand behind the figure, from the same system's results."""
    same_n: bool = False
    """The figure grows with the workload's size (RSS, database size): a ratio is given only
    against peers measured with as many runs."""
    compare: bool = True
    """False for a figure that is a size, not a result: no ratio."""

    def value(self, system: dict[str, Any]) -> float | None:
        node: Any = system
        for key in self.path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return float(node) if isinstance(node, int | float) else None

    def cell(self, system: dict[str, Any]) -> str:
        value = self.value(system)
        if value is None:
            return "—"
        text = f"{value:,.{self.digits}f}"
        if self.samples is not None:
            text += f" (n={self.samples(system)})"
        return text


def _n(*path: str) -> Callable[[dict[str, Any]], str]:
    def count(system: dict[str, Any]) -> str:
        node: Any = system
        for key in path:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        return f"{node:,}" if isinstance(node, int) else "?"

    return count


PEER_METRICS = (
    Metric(
        "W1 ms per step (10 sequential steps)",
        ("w1", "ms_per_step_median"),
        False,
        2,
        "≤ 0.25",
        _n("w1", "samples"),
    ),
    Metric(
        "W2 steps/s (runs of 3 steps)", ("w2", "steps_per_s"), True, 0, "≥ 3,000", _n("w2", "runs")
    ),
    Metric("W3 start latency p50, ms", ("w3", "p50_ms"), False, 2, "≤ 1", _n("w3", "samples")),
    Metric("W3 start latency p99, ms", ("w3", "p99_ms"), False, 2, "≤ 5", _n("w3", "samples")),
    Metric(
        "W4 fan-out, children/s", ("w4", "children_per_s"), True, 0, "≥ 2,500", _n("w4", "children")
    ),
)
STEPWELL_METRICS = (
    Metric(
        "W5 RSS while sleeping, MB",
        ("w5", "rss_mb"),
        False,
        0,
        "≤ 300 (100k runs)",
        _n("w5", "runs"),
        same_n=True,
    ),
    Metric(
        "W5 database size while sleeping, MB",
        ("w5", "db_mb"),
        False,
        0,
        "—",
        _n("w5", "runs"),
        same_n=True,
    ),
    Metric("W5 wake lateness p50, ms", ("w5", "late_p50_ms"), False, 1, "—", _n("w5", "samples")),
    Metric(
        "W5 wake lateness p99, ms", ("w5", "late_p99_ms"), False, 1, "≤ 100", _n("w5", "samples")
    ),
    Metric("W6 ingest, events/s", ("w6", "events_per_s"), True, 0, "≥ 10,000", _n("w6", "events")),
    Metric("W7 waiting runs", ("w7", "waits"), True, 0, "100,000 (full mode)", compare=False),
    Metric("W7 resumed runs/s", ("w7", "resumed_per_s"), True, 0, "—", _n("w7", "matches")),
    Metric(
        "W7 ingest with no waits, events/s",
        ("w7", "ingest_per_s_no_waits"),
        True,
        0,
        "—",
        _n("w7", "ingest_events_no_waits"),
    ),
    Metric(
        "W7 ingest while a tenth of the W7 runs wait, events/s",
        ("w7", "ingest_per_s_tenth"),
        True,
        0,
        "—",
        _n("w7", "ingest_events_tenth"),
    ),
    Metric(
        "W7 ingest while all W7 runs wait, events/s",
        ("w7", "ingest_per_s_waiting"),
        True,
        0,
        "no worse than with a tenth waiting",
        _n("w7", "ingest_events"),
    ),
    Metric(
        "W7 RSS while waiting, MB",
        ("w7", "rss_mb"),
        False,
        0,
        "—",
        _n("w7", "waits"),
        same_n=True,
    ),
)


def systems(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Stepwell embedded (W1–W7 gathered from its parts) and each peer, by name."""
    parts = results["parts"]
    stepwell = dict(parts.get("embedded", {}))
    for workload in ("w5", "w6", "w7"):
        if workload in parts and "unavailable" not in parts[workload]:
            stepwell[workload] = parts[workload]
    found = {"stepwell": stepwell}
    found.update({name: parts[name] for name in PEER_NAMES if name in parts})
    return found


def ratio(metric: Metric, found: dict[str, dict[str, Any]]) -> tuple[float, str] | None:
    """Stepwell's figure ÷ the best peer's, and that peer's name; None without both."""
    mine = metric.value(found["stepwell"])
    if not metric.compare:
        return None
    peers = {
        name: metric.value(r)
        for name, r in found.items()
        if name != "stepwell"
        and not (
            metric.same_n
            and metric.samples is not None
            and metric.samples(r) != metric.samples(found["stepwell"])
        )
    }
    ran = {name: v for name, v in peers.items() if v}
    if mine is None or not ran:
        return None
    pick = max if metric.higher_is_better else min
    best = pick(ran, key=lambda name: ran[name])
    return mine / ran[best], PEER_NAMES[best]


def peer_rows(results: dict[str, Any]) -> list[list[str]]:
    """The headline table: stepwell embedded, each peer, the ratio and the goal."""
    found = systems(results)
    names = ["stepwell", *(n for n in PEER_NAMES if n in found)]
    header = ["workload", "stepwell embedded", *(_peer_label(found, n) for n in names[1:])]
    rows = [[*header, "stepwell ÷ best peer", "goal"]]
    for metric in (*PEER_METRICS, *STEPWELL_METRICS):
        r = ratio(metric, found)
        ratio_cell = "—" if r is None else f"{r[0]:.2f} (vs {r[1]})"
        cells = [_cell(metric, name, found[name]) for name in names]
        rows.append([metric.label, *cells, ratio_cell, metric.goal])
    return rows


def _cell(metric: Metric, name: str, system: dict[str, Any]) -> str:
    workload = metric.path[0]
    if metric.value(system) is None:
        reason = system.get(workload, {}).get("unavailable") if name != "stepwell" else None
        if reason:
            return "could not run"
        return NOT_APPLICABLE.get((name, workload), "—")
    return metric.cell(system)


def _peer_label(found: dict[str, dict[str, Any]], name: str) -> str:
    label = PEER_NAMES[name]
    if name == "celery":
        label += " (not durable)"
    if "unavailable" in found[name]:
        label += " (could not run)"
    return label


def mode_rows(results: dict[str, Any]) -> list[list[str]]:
    """Stepwell in each mode: W1 (and W2 where it was measured) beside the goal."""
    parts = results["parts"]
    w1 = PEER_METRICS[0]
    w2 = PEER_METRICS[1]
    rows = [["stepwell mode", "W1 ms per step", "W2 steps/s", "goal (W1; W2)"]]
    embedded = parts.get("embedded", {})
    rows.append(["embedded (SQLite)", w1.cell(embedded), w2.cell(embedded), "≤ 0.25; ≥ 3,000"])
    postgres = parts.get("postgres", {})
    if "unavailable" in postgres:
        rows.append(["PostgreSQL, 1 node", "could not run", "", "≤ 1.0; ≥ 1,500"])
    elif postgres:
        rows.append(["PostgreSQL, 1 node", w1.cell(postgres), w2.cell(postgres), "≤ 1.0; ≥ 1,500"])
        two = postgres.get("two_nodes", {})
        rows.append(["PostgreSQL, 2 nodes", w1.cell(two), w2.cell(two), "—"])
    for mode, result in parts.get("http", {}).get("w1_modes", {}).items():
        if mode.startswith("in-process"):
            continue
        cell = "could not run" if "unavailable" in result else w1.cell({"w1": result})
        alone = result.get("app_ms_per_step_median")
        if alone is not None:
            cell += f" (the app alone: {alone:.2f})"
        rows.append([f"over HTTP: {mode}", cell, "—", "≤ 3"])
    return rows


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "| " + " | ".join("---" for _ in rows[0]) + " |")
    return "\n".join(lines)


def unavailable(results: dict[str, Any]) -> list[str]:
    """One line per part, peer or HTTP mode that could not run, with the reason."""
    lines = [
        f"{name}: {part['unavailable']}"
        for name, part in results["parts"].items()
        if "unavailable" in part
    ]
    for name in PEER_NAMES:
        for workload in ("w5", "w7"):
            found = results["parts"].get(name, {}).get(workload, {})
            if isinstance(found, dict) and "unavailable" in found:
                lines.append(f"{name} {workload.upper()}: {found['unavailable']}")
    for mode, result in results["parts"].get("http", {}).get("w1_modes", {}).items():
        if "unavailable" in result:
            lines.append(f"W1 over HTTP, {mode}: {result['unavailable']}")
    return lines


# -- the chart ------------------------------------------------------------------------------------


def chart(results: dict[str, Any], path: Path) -> None:
    """A PNG of W1–W4 per system and W1 per stepwell mode, each on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = systems(results)
    names = [n for n in ("stepwell", *PEER_NAMES) if n in found and "unavailable" not in found[n]]
    labels = [PEER_NAMES.get(n, "stepwell") for n in names]
    panels = [
        (PEER_METRICS[0], "W1: ms per step (lower is better)"),
        (PEER_METRICS[1], "W2: steps/s (higher is better)"),
        (PEER_METRICS[2], "W3: start latency p50, ms (lower is better)"),
        (PEER_METRICS[4], "W4: fan-out children/s (higher is better)"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    for ax, (metric, title) in zip(axes.flat, panels, strict=False):
        values = [metric.value(found[n]) or 0.0 for n in names]
        _bars(ax, labels, values, title)
    modes = mode_rows(results)[1:]
    mode_values = [_float(row[1]) for row in modes]
    _bars(
        axes.flat[4],
        [row[0].removeprefix("over HTTP: ") for row in modes],
        mode_values,
        "W1 ms per step, stepwell by mode",
    )
    w7 = found["stepwell"].get("w7", {})
    w7_labels = ["no waits", f"{w7.get('tenth', 0):,} waiting", f"{w7.get('waits', 0):,} waiting"]
    w7_values = [
        w7.get("ingest_per_s_no_waits", 0.0),
        w7.get("ingest_per_s_tenth", 0.0),
        w7.get("ingest_per_s_waiting", 0.0),
    ]
    _bars(axes.flat[5], w7_labels, w7_values, "W7: stepwell ingest, events/s", log=False)
    fig.suptitle(f"python -m bench --{results['mode']}, {results['started_at']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _bars(ax: Any, labels: list[str], values: list[float], title: str, log: bool = True) -> None:
    peers = set(PEER_NAMES.values())
    colors = ["#8a8f98" if label in peers else "#2a7f62" for label in labels]
    ax.barh(labels, values, color=colors)
    if log:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_title(title, fontsize=10)
    ax.invert_yaxis()
    for y, value in enumerate(values):
        if value:
            ax.text(
                value,
                y,
                f" {value:,.2f}" if value < 10 else f" {value:,.0f}",
                va="center",
                fontsize=8,
            )
    ax.tick_params(labelsize=8)


def _float(cell: str) -> float:
    found = re.match(r"[\d,.]+", cell)
    return float(found[0].replace(",", "")) if found else 0.0


# -- docs/benchmarks.md -----------------------------------------------------------------------------


def markdown(results: dict[str, Any], chart_path: str) -> str:
    """The generated block of docs/benchmarks.md, between ``BEGIN`` and ``END``."""
    machine = results["machine"]
    versions = ", ".join(f"{name} {version}" for name, version in results["versions"].items())
    lines = [
        BEGIN,
        _wrap(
            f"One run of `{results['command']}` ({results['seconds']:.0f} s, "
            f"{results['started_at']}). Machine: {machine['cpus']} cores, {machine['platform']}, "
            f"Python {machine['python']}, SQLite {machine['sqlite']}. Versions: {versions}."
        ),
        "",
        "### stepwell beside its peers",
        "",
        markdown_table(peer_rows(results)),
        "",
        _wrap(
            "Ratios: for times (ms, MB), stepwell's figure over the lowest peer's (below 1 is "
            "better); for rates (/s), stepwell's over the highest peer's (above 1 is better). `n` "
            "is the number of samples (runs, events, children) behind each figure. RSS and "
            "database size grow with the number of runs, so they get a ratio only against a "
            "peer measured with as many. W5 and W7 run on DBOS and Restate with fewer runs than "
            "on stepwell in quick mode (n), W5's peer runs sleeping "
            f"{_peer_sleep(results)}; Celery has no durable sleep or wait, and W6 is stepwell's "
            "event API, which no peer has (see the workloads below)."
        ),
        "",
        f"![W1–W4 per system, W1 per stepwell mode, W7 ingest]({chart_path})",
        "",
        "### stepwell in each mode",
        "",
        markdown_table(mode_rows(results)),
        "",
        "### Durability and settings, as measured",
        "",
    ]
    settings: dict[str, list[str]] = {}
    for name, part in results["parts"].items():
        if "settings" in part:
            settings.setdefault(part["settings"], []).append(PART_NAMES.get(name, name))
    lines += [_wrap(f"- **{', '.join(names)}**: {text}", "  ") for text, names in settings.items()]
    speeds = probe_rows(results)
    if len(speeds) > 1:
        lines += [
            "",
            "### The machine's speed before each part",
            "",
            _wrap(
                "A fixed probe run just before each part (`bench/probe.py`): pure-Python work, "
                "and a one-row SQLite commit with `synchronous=FULL`. Higher is slower; this "
                "machine's speed drifts, so a part that ran in a slow phase shows it here."
            ),
            "",
            markdown_table(speeds),
        ]
    missing = unavailable(results)
    if missing:
        lines += ["", "### Could not run here", ""]
        lines += [_wrap(f"- {line}", "  ") for line in missing]
    lines.append(END)
    return "\n".join(lines)


def probe_rows(results: dict[str, Any]) -> list[list[str]]:
    """Per part that was probed: the CPU and commit probes' times before it ran."""
    rows = [["part", "CPU probe, ms", "commit probe, ms"]]
    for name, part in results["parts"].items():
        speed = part.get("probe")
        if speed is not None:
            label = PART_NAMES.get(name, name)
            rows.append([label, f"{speed['cpu_ms']:.1f}", f"{speed['commit_ms']:.2f}"])
    return rows if len(rows) > 1 else []


def _peer_sleep(results: dict[str, Any]) -> str:
    sleeps = {
        f"{part['w5']['sleep_s']:.0f} s"
        for name, part in results["parts"].items()
        if name in PEER_NAMES and isinstance(part.get("w5"), dict) and "sleep_s" in part["w5"]
    }
    stepwell = results["parts"].get("w5", {}).get("sleep_s")
    text = " and ".join(sorted(sleeps)) or "—"
    return text + (f" (stepwell's {stepwell:.0f} s)" if stepwell else "")


def _wrap(text: str, indent: str = "") -> str:
    return textwrap.fill(
        text, 100, subsequent_indent=indent, break_on_hyphens=False, break_long_words=False
    )


def write_docs(results: dict[str, Any], doc: Path, chart_path: str) -> None:
    """Replace the generated block of ``doc`` (or insert it after the title); the rest of the
    page, written by hand, is kept as it is."""
    block = markdown(results, chart_path)
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        title, _, body = text.partition("\n")
        text = f"{title}\n\n{block}\n{body}"
    doc.write_text(text)
