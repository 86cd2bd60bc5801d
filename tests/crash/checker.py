"""What the crash-safety suite checks at the end, reading the database directly.

:func:`check` compares what the driver sent and what the app's step bodies logged with the
``events``, ``runs``, ``memo``, ``queue``, ``waits`` and ``cron_ticks`` tables, and raises an
:class:`AssertionError` listing every problem, each naming its run (or event), when anything was
lost, duplicated or inconsistent. The SQL is the subset SQLite and PostgreSQL share.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepwell.protocol.step_ids import hash_step_id
from tests.crash.crash_app import ITEMS_PER_ORDER, STEPS

Query = Callable[[str], list[Any]]
"""Runs one SELECT and returns its rows as sequences."""

FINAL = {"Completed", "Failed", "Cancelled"}
# Over HTTP the memo of some ops (invoke) names the step by its hashed key.
_STEP_OF_KEY = {hash_step_id(s): s for steps in STEPS.values() for s in steps}
MAX_SHOWN = 25


@dataclass
class Sent:
    """What the driver sent: each event's user-given id, name and data."""

    events: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def add(self, dedupe_key: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
        """Note one event; returns its wire form."""
        self.events[dedupe_key] = (name, data)
        return {"id": dedupe_key, "name": name, "data": data}

    def orders(self) -> list[int]:
        return sorted(d["n"] for name, d in self.events.values() if name == "crash/order")


@dataclass
class Report:
    """The numbers a successful check covered."""

    runs: int
    steps: int
    executions: int
    events: int
    cron_ticks: int
    steps_with_bodies: int

    def __str__(self) -> str:
        return (
            f"{self.runs} runs completed once with the expected output; {self.steps} step "
            f"results in the memo, each once and consistent with the outputs; {self.executions} "
            f"step body executions ({self.executions - self.steps_with_bodies} re-executions); "
            f"{self.events} events, none lost or duplicated; {self.cron_ticks} cron ticks, "
            "each fired once"
        )


def read_executions(path: Path) -> dict[tuple[str, str], list[str]]:
    """``(run_id, step) -> [token, ...]`` from the app's log, in execution order."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    if path.exists():
        for line in path.read_text().splitlines():
            run_id, step, token = line.split()
            found[run_id, step].append(token)
    return found


def check(query: Query, sent: Sent, executions: Mapping[tuple[str, str], list[str]]) -> Report:
    """Check everything; raise AssertionError naming each run or event that is wrong."""
    problems: list[str] = []
    events = {
        row[0]: {"name": row[1], "data": json.loads(row[2]), "dedupe_key": row[3], "ts": row[4]}
        for row in query("SELECT event_id, name, data, dedupe_key, ts FROM events")
    }
    runs = {
        row[0]: {
            "run_id": row[0],
            "function": str(row[1]).removeprefix("crash-"),
            "status": row[2],
            "event_id": row[3],
            "output": None if row[4] is None else json.loads(row[4]),
            "error": row[5],
            "parent": row[6],
        }
        for row in query(
            "SELECT run_id, function_id, status, event_id, output, error, parent_run_id FROM runs"
        )
    }
    memo: dict[str, dict[str, Any]] = defaultdict(dict)
    memo_rows = Counter[tuple[str, str]]()
    for run_id, step_id, value in query("SELECT run_id, step_id, value FROM memo"):
        step_id = _STEP_OF_KEY.get(step_id, step_id)
        memo_rows[run_id, step_id] += 1
        memo[run_id][step_id] = None if value is None else json.loads(value)
    for (run_id, step_id), times in memo_rows.items():
        if times > 1:
            problems.append(f"run {run_id}: step {step_id} is in the memo {times} times")

    expected_keys = dict(sent.events)
    for n in sent.orders():
        for i in range(ITEMS_PER_ORDER):
            expected_keys[f"item-{n}-{i}"] = ("crash/item", {"n": n, "i": i})
    problems += _check_events(events, expected_keys)
    problems += _check_runs(events, runs, memo, executions, expected_keys)
    problems += _check_ended_once(events, runs)
    ticks, tick_problems = _check_cron(query, events, runs)
    problems += tick_problems
    for what, table in (("queue item", "queue"), ("wait", "waits")):
        for [run_id] in query(f"SELECT run_id FROM {table}"):
            problems.append(f"run {run_id}: a {what} is left behind after every run ended")

    if problems:
        shown = "\n  ".join(problems[:MAX_SHOWN])
        more = f"\n  ... and {len(problems) - MAX_SHOWN} more" if len(problems) > MAX_SHOWN else ""
        raise AssertionError(f"{len(problems)} problem(s):\n  {shown}{more}")
    body_steps = sum(len(tokens) for tokens in executions.values())
    return Report(
        runs=len(runs),
        steps=sum(memo_rows.values()),
        executions=body_steps,
        events=len(events),
        cron_ticks=ticks,
        steps_with_bodies=len(executions),
    )


def _check_events(
    events: Mapping[str, dict[str, Any]], expected: Mapping[str, tuple[str, dict[str, Any]]]
) -> list[str]:
    """Every event with a user-given id is stored exactly once, with what was sent."""
    problems = []
    stored: dict[str, list[str]] = defaultdict(list)
    for event_id, event in events.items():
        if event["dedupe_key"] is not None:
            stored[event["dedupe_key"]].append(event_id)
    for key, (name, data) in sorted(expected.items()):
        ids = stored.get(key, [])
        if not ids:
            problems.append(f"event {key} ({name}) was lost")
        elif len(ids) > 1:
            problems.append(f"event {key} ({name}) is stored {len(ids)} times: {ids}")
        elif (events[ids[0]]["name"], events[ids[0]]["data"]) != (name, data):
            problems.append(f"event {key} is stored as {events[ids[0]]}, not {(name, data)}")
    for key in sorted(set(stored) - set(expected)):
        problems.append(f"event {key} was stored but never sent")
    return problems


def _check_runs(
    events: Mapping[str, dict[str, Any]],
    runs: Mapping[str, dict[str, Any]],
    memo: Mapping[str, dict[str, Any]],
    executions: Mapping[tuple[str, str], list[str]],
    expected_keys: Mapping[str, tuple[str, dict[str, Any]]],
) -> list[str]:
    """One run per triggering event; each completed with its output, memo and tokens agreeing."""
    problems = []
    by_event: dict[str, list[str]] = defaultdict(list)
    for run in runs.values():
        by_event[run["event_id"]].append(run["run_id"])
    trigger_of = {"crash/order": "order", "crash/item": "item", "crash/work": "work"}
    for event_id, event in events.items():
        key, function = event["dedupe_key"], trigger_of.get(event["name"])
        if function is None or key not in expected_keys:
            continue
        started = [r for r in by_event.get(event_id, []) if runs[r]["function"] == function]
        if len(started) != 1:
            problems.append(f"event {key} started {len(started)} {function} runs: {started}")
    children = {run["parent"]: run for run in runs.values() if run["parent"] is not None}
    for run in runs.values():
        problems += _check_run(run, events, memo.get(run["run_id"], {}), executions, children)
    return problems


def _check_run(
    run: dict[str, Any],
    events: Mapping[str, dict[str, Any]],
    memo: Mapping[str, Any],
    executions: Mapping[tuple[str, str], list[str]],
    children: Mapping[str, dict[str, Any]],
) -> list[str]:
    run_id, function = run["run_id"], run["function"]
    name = f"run {run_id} ({function}"
    data = events.get(run["event_id"], {}).get("data", {})
    if "n" in data:
        name += f", n={data['n']}" + (f", i={data['i']}" if "i" in data else "")
    name += ")"
    if run["status"] != "Completed":
        return [f"{name} ended {run['status']}: {run['error']}"]
    if function not in STEPS:
        return [f"{name} is of an unknown function"]
    problems = []
    expected_steps = set(STEPS[function])
    if set(memo) != expected_steps:
        missing, extra = expected_steps - set(memo), set(memo) - expected_steps
        problems.append(
            f"{name}: memo is missing steps {sorted(missing)}, has extra {sorted(extra)}"
        )
    output = run["output"] or {}
    want = _expected_output(function, data)
    got = {k: v for k, v in output.items() if k not in ("tokens", "t")}
    if want is not None and got != want:
        problems.append(f"{name}: output {got}, expected {want}")
    tokens = output.get("tokens", {})
    for step, token in tokens.items():
        if step == "b_saw":
            if token != tokens.get("a"):
                problems.append(
                    f"{name}: step b saw step a's result {token}, but the run ended with "
                    f"{tokens.get('a')}: a's recorded result changed after b used it"
                )
            continue
        if step == "price":
            child = children.get(run_id)
            recorded = None if child is None else _token(child["output"])
            if token != recorded:
                problems.append(
                    f"{name}: invoke result {token}, the invoked run returned {recorded}"
                )
            continue
        recorded = _token(memo.get(step))
        ran = executions.get((run_id, step), [])
        if recorded != token:
            problems.append(f"{name}: step {step} returned {token}, its memo says {recorded}")
        if token not in ran:
            problems.append(
                f"{name}: step {step}'s result {token} matches none of its {len(ran)} executions {ran}"
            )
    return problems


def _expected_output(function: str, data: Mapping[str, Any]) -> dict[str, Any] | None:
    n = data.get("n")
    if function == "order":
        return {"n": n, "tracking": f"T{n}", "total": 11 * n}
    if function == "item":
        return {"packed": f"{n}.{data['i']}"}
    if function == "work":
        return {"total": 3 * n + 3}
    if function == "quote":
        return {"price": 10 * n}
    return None


def _token(value: Any) -> str | None:
    """The execution token inside a memo value or an output, wherever the wrapping puts it."""
    if isinstance(value, Mapping):
        if isinstance(value.get("t"), str):
            return str(value["t"])
        for inner in value.values():
            found = _token(inner)
            if found is not None:
                return found
    return None


def _check_ended_once(
    events: Mapping[str, dict[str, Any]], runs: Mapping[str, dict[str, Any]]
) -> list[str]:
    """One ``inngest/function.finished`` per run not started by invoke; never two for any run."""
    finished = Counter(
        e["data"].get("run_id") for e in events.values() if e["name"] == "inngest/function.finished"
    )
    problems = []
    for run in runs.values():
        times = finished.get(run["run_id"], 0)
        wanted = 0 if run["parent"] is not None else 1
        if times > 1 or (run["status"] in FINAL and times < wanted):
            problems.append(
                f"run {run['run_id']} ({run['function']}) emitted function.finished {times} times"
            )
    return problems


def _check_cron(
    query: Query, events: Mapping[str, dict[str, Any]], runs: Mapping[str, dict[str, Any]]
) -> tuple[int, list[str]]:
    """One run per recorded tick, no tick twice."""
    ticks = [int(row[0]) for row in query("SELECT tick_at FROM cron_ticks")]
    fired = Counter(
        events[run["event_id"]]["ts"] for run in runs.values() if run["function"] == "tick"
    )
    problems = [
        f"cron tick {tick} fired {times} runs" for tick, times in fired.items() if times > 1
    ]
    problems += [
        f"cron tick {tick} is recorded but started no run" for tick in ticks if not fired[tick]
    ]
    problems += [
        f"cron tick {tick} started a run but is not recorded" for tick in fired if tick not in ticks
    ]
    return len(ticks), problems
