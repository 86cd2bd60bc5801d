"""The crash-safety checker fails, naming the run, when a store breaks a guarantee."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash.checker import check, read_executions
from tests.crash.conftest import pg_query
from tests.crash.harness import Cluster, drive, running, wait_until_settled

pytestmark = [pytest.mark.crash, pytest.mark.postgres, pytest.mark.slow]


def test_the_checker_names_the_run_whose_step_result_the_store_lost(
    tmp_path: Path, pg_database: str
) -> None:
    orders, works = 5, 5
    broken_log = tmp_path / "dropped.log"
    query = pg_query(pg_database)
    cluster = Cluster(
        tmp_path,
        pg_database,
        count=1,
        node_module="tests.crash.broken_store",
        extra_env={"CRASH_BROKEN_LOG": str(broken_log)},
    )
    with running(cluster, query):
        sent = drive(cluster, query, orders, works)
        # the broken order fails before it fans out two items and invokes a quote
        wait_until_settled(query, expected_runs=4 * orders + works - 3)
        with pytest.raises(AssertionError) as failed:
            check(query, sent, read_executions(cluster.log))
    [dropped] = broken_log.read_text().split()
    print(f"\nthe checker, on a store that dropped a memo write of run {dropped}:\n{failed.value}")
    assert f"run {dropped} " in str(failed.value)
