"""Fixtures of the crash-safety suite: a fresh PostgreSQL database per test, and readers of it.

The suite terminates every client connection of its database once, so each test gets a database
of its own (``crash_<random>`` on ``$STEPWELL_TEST_DATABASE_URL``'s server), dropped after it:
the other tests' connections are never touched. Without a server these tests are skipped,
except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conformance.conftest import PG_URL, pg_connect
from tests.crash.checker import Query


@pytest.fixture
def pg_database() -> Iterator[str]:
    """The URL of a fresh database on the test server, dropped after the test."""
    try:
        admin = pg_connect()
    except Exception as exc:
        reason = f"PostgreSQL is not reachable at {PG_URL} ({exc}); set STEPWELL_TEST_DATABASE_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    name = f"crash_{uuid.uuid4().hex[:16]}"
    with closing(admin):
        admin.run(f"CREATE DATABASE {name}")
    parts = urlsplit(PG_URL)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with closing(pg_connect()) as admin:
        admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pg_query(url: str) -> Query:
    """Runs each query on a new connection, so that terminated connections do not matter."""

    def query(sql: str) -> list[Any]:
        with closing(pg_connect(url)) as conn:
            return list(conn.run(sql))

    return query


def pg_terminator(url: str) -> Any:
    """Terminates every other client connection to ``url``'s database; returns how many."""

    def terminate() -> int:
        with closing(pg_connect(url)) as conn:
            rows = conn.run(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        return sum(1 for [done] in rows if done)

    return terminate
