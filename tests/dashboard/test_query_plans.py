"""The dashboard's queries use indexes on SQLite: no full scan of runs or events, and no sort of
every run to show one page (what keeps the runs page fast on a million runs).

Each verb runs on a connection that records the statements it executes; each statement is then
explained with the same parameters.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from stepwell.store import open_store, sql
from stepwell.store.records import RunFilter
from stepwell.store.sql import SQLITE, SqlTx


class Recording:
    """A DB-API connection that remembers every statement it ran."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.statements: list[tuple[str, Sequence[Any]]] = []

    def execute(self, statement: str, parameters: Sequence[Any], /) -> Any:
        self.statements.append((statement, parameters))
        return self.conn.execute(statement, parameters)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    import asyncio

    path = tmp_path / "plans.db"
    store = open_store(str(path))
    asyncio.run(store.open())
    asyncio.run(store.close())
    connection = sqlite3.connect(path)
    # some rows, no ANALYZE: the plans a new database gets
    connection.executemany(
        'INSERT INTO events (event_id, name, data, "user", ts, received_at, source) '
        "VALUES (?, ?, '{}', '{}', 1, 1, 'api')",
        [(f"e{i:05d}", f"shop/{i % 3}") for i in range(3000)],
    )
    connection.executemany(
        "INSERT INTO runs (run_id, function_id, function_version, app_id, status, event_id, "
        "event_ids, created_at) VALUES (?, ?, 1, 'shop', ?, ?, '[]', ?)",
        [
            (f"r{i:05d}", f"shop-{i % 5}", ("Queued", "Completed")[i % 2], f"e{i:05d}", i)
            for i in range(3000)
        ],
    )
    connection.executemany(
        "INSERT INTO run_events (event_id, run_id) VALUES (?, ?)",
        [(f"e{i:05d}", f"r{i:05d}") for i in range(3000)],
    )
    yield connection
    connection.close()


def plans(conn: sqlite3.Connection, verb: Callable[[SqlTx], object]) -> list[str]:
    """The query plan lines of every statement ``verb`` ran."""
    recording = Recording(conn)
    verb(SqlTx(recording, SQLITE, 0))
    lines = []
    for statement, parameters in recording.statements:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
        lines += [str(r[3]) for r in rows]
    return lines


TABLES = ("runs", "events", "run_events", "queue", "waits", "memo")


def _no_full_scan(lines: list[str]) -> None:
    for line in lines:
        words = line.split()
        if words[:1] == ["SCAN"] and words[1] in TABLES and "INDEX" not in line:
            raise AssertionError(f"full scan: {line}\n{lines}")


@pytest.mark.parametrize(
    "flt",
    [
        RunFilter(limit=51),
        RunFilter(status="Completed", limit=51),
        RunFilter(function_id="shop-1", limit=51),
        RunFilter(since=100, until=2000, limit=51),
        RunFilter(cursor="r01000", limit=51),
        RunFilter(status="Queued", cursor="r01000", limit=51),
        RunFilter(event_id="e00007", limit=51),
    ],
    ids=["newest", "status", "function", "time", "cursor", "status-cursor", "event-id"],
)
def test_a_page_of_runs_walks_an_index_without_sorting(
    conn: sqlite3.Connection, flt: RunFilter
) -> None:
    lines = plans(conn, lambda tx: tx.list_runs(flt))
    _no_full_scan(lines)
    if flt.event_id is None:
        assert not any("TEMP B-TREE FOR ORDER BY" in line for line in lines), lines


def test_runs_of_a_function_in_a_status_walk_only_those_runs(conn: sqlite3.Connection) -> None:
    flt = RunFilter(function_id="shop-1", status="Queued", limit=51)
    lines = plans(conn, lambda tx: tx.list_runs(flt))
    assert any("runs_by_function_status (function_id=? AND status=?)" in line for line in lines)
    assert not any("TEMP B-TREE" in line for line in lines), lines


@pytest.mark.parametrize("few_events", [10_000, 1], ids=["from-events", "walking-runs"])
def test_runs_by_event_name_use_indexes_whichever_plan(
    conn: sqlite3.Connection, few_events: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "FEW_EVENTS", few_events)
    flt = RunFilter(status="Queued", limit=51)
    lines = plans(conn, lambda tx: tx.list_runs_for_event_name("shop/1", flt))
    _no_full_scan(lines)
    if few_events == 1:  # many events of the name: the page comes from walking runs in order
        assert not any("TEMP B-TREE FOR ORDER BY" in line for line in lines), lines
        assert any("SEARCH e USING INDEX sqlite_autoindex_events_1" in line for line in lines)
    else:
        assert any("events_by_name" in line for line in lines), lines


def test_a_runs_pending_work_and_the_activity_counts_use_indexes(conn: sqlite3.Connection) -> None:
    lines = plans(conn, lambda tx: tx.list_run_queue_items("r00001"))
    lines += plans(conn, lambda tx: tx.list_run_waits("r00001"))
    _no_full_scan(lines)
    counts = plans(conn, lambda tx: tx.count_runs_per_minute(2000, 3000))
    _no_full_scan(counts)
    assert sum("runs_by_created (created_at>? AND created_at<?)" in line for line in counts) == 2
