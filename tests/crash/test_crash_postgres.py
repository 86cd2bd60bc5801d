"""The crash-safety suite on PostgreSQL: three ``stepwell start`` nodes serve an app over HTTP
while a driver sends events and a chaos loop SIGKILLs and restarts nodes, kills the app once and
terminates every database connection once. Then the database must show every run completed
once with its output, every step result recorded once and consistent with what the step bodies
returned, every event stored once, every cron tick fired once.

Sizes: ``STEPWELL_CRASH_ORDERS`` orders (each with a shipment, two fanned-out items and an
invoked quote) and three times as many works: 150 by default, 750 events sent by the driver
and 300 by steps, 1,050 runs (with their system events, about 2,250 events in all).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.crash.checker import check, read_executions
from tests.crash.conftest import pg_query, pg_terminator
from tests.crash.harness import Chaos, Cluster, drive, running, wait_until_settled

pytestmark = [pytest.mark.crash, pytest.mark.postgres, pytest.mark.slow]

ORDERS = int(os.environ.get("STEPWELL_CRASH_ORDERS", "150"))


def test_three_nodes_lose_nothing_through_sigkills_an_app_kill_and_dropped_connections(
    tmp_path: Path, pg_database: str
) -> None:
    orders, works = ORDERS, 3 * ORDERS
    query = pg_query(pg_database)
    cluster = Cluster(tmp_path, pg_database, count=3)
    started = time.monotonic()
    with running(cluster, query):
        with Chaos(cluster, kills=15, terminate=pg_terminator(pg_database)) as chaos:
            sent = drive(cluster, query, orders, works)
            chaos.join()
        wait_until_settled(query, expected_runs=4 * orders + works)
        report = check(query, sent, read_executions(cluster.log))
    counts = chaos.counts
    print(
        f"\ncrash suite, PostgreSQL, 3 nodes, {time.monotonic() - started:.0f} s: "
        f"{len(sent.events)} events sent by the driver; {report}; {counts}"
    )
    assert counts.node_kills == 15
    assert counts.app_kills == 1
    assert counts.connections_terminated > 0
