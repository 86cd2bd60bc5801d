"""The crash-safety suite on SQLite: one ``stepwell start`` node on a SQLite file, SIGKILLed and
restarted while it works, and the app process killed once; the same checks as on PostgreSQL.

Sizes: ``STEPWELL_CRASH_SQLITE_ORDERS`` orders and three times as many works (60 by default:
300 events sent by the driver, 120 by steps, 420 runs).
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.crash.checker import Query, check, read_executions
from tests.crash.harness import Chaos, Cluster, drive, running, wait_until_settled

pytestmark = [pytest.mark.crash, pytest.mark.slow]

ORDERS = int(os.environ.get("STEPWELL_CRASH_SQLITE_ORDERS", "60"))


def sqlite_query(path: Path) -> Query:
    def query(sql: str) -> list[Any]:
        if not path.exists():
            return []
        with closing(sqlite3.connect(path, timeout=10)) as conn:
            return [list(row) for row in conn.execute(sql).fetchall()]

    return query


def test_one_sqlite_node_loses_nothing_through_sigkills_and_an_app_kill(tmp_path: Path) -> None:
    orders, works = ORDERS, 3 * ORDERS
    db = tmp_path / "stepwell.db"
    query = sqlite_query(db)
    cluster = Cluster(tmp_path, str(db), count=1)
    started = time.monotonic()
    with running(cluster, query):
        with Chaos(cluster, kills=6, every_s=(1.5, 3.0)) as chaos:
            sent = drive(cluster, query, orders, works)
            chaos.join()
        wait_until_settled(query, expected_runs=4 * orders + works)
        report = check(query, sent, read_executions(cluster.log))
    counts = chaos.counts
    print(
        f"\ncrash suite, SQLite, 1 node, {time.monotonic() - started:.0f} s: "
        f"{len(sent.events)} events sent by the driver; {report}; {counts}"
    )
    assert counts.node_kills == 6
    assert counts.app_kills == 1
