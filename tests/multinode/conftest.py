"""Several engine nodes on one PostgreSQL database.

Each test gets a schema of its own on ``$STEPWELL_TEST_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), dropped after it. Without a server these tests
are skipped, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.conformance.conftest import PG_URL, pg_connect


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The test server's URL; skips (fails under CI) when it cannot be reached."""
    try:
        pg_connect().close()
    except Exception as exc:
        reason = f"PostgreSQL is not reachable at {PG_URL} ({exc}); set STEPWELL_TEST_DATABASE_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return PG_URL


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A URL on a fresh schema of the test server, dropped after the test."""
    schema = f"mn_{uuid.uuid4().hex[:20]}"
    separator = "&" if "?" in pg_server else "?"
    yield f"{pg_server}{separator}schema={schema}"
    conn = pg_connect()
    try:
        conn.run("SET lock_timeout = '10s'")
        conn.run(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        conn.close()
