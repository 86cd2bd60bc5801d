"""One Store conformance suite, run against every backend.

Tests here speak only the :class:`~stepwell.store.base.Store` / ``Tx`` protocols. A backend joins
the suite by adding one entry to :data:`BACKENDS`: a function that, given a fresh temp folder,
returns a :class:`Backend` — a URL for :func:`stepwell.store.open_store` (so a child process can
open the same database), a factory for store objects on that one database, and what to clean up.

PostgreSQL: ``$STEPWELL_TEST_DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
Each test gets a schema of its own, dropped after it. Without a server the PostgreSQL tests are
skipped, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pg8000.native
import pytest

from stepwell.store import open_store
from stepwell.store.base import Store
from stepwell.store.postgres import parse_url

PG_URL = os.environ.get("STEPWELL_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True)
class Backend:
    """A database for one test, and how to open stores on it."""

    name: str
    url: str
    cleanup: Callable[[], None] = field(default=lambda: None, repr=False)

    def make(self) -> Store:
        """A new, unopened store on this backend's database (the same data every time)."""
        return open_store(self.url)


def _sqlite(tmp_path: Path) -> Backend:
    return Backend("sqlite", f"sqlite:///{tmp_path / 'stepwell.db'}")


def pg_connect(url: str = PG_URL) -> Any:
    """A plain pg8000 connection to the test server, for looking behind a store's back."""
    target = parse_url(url)
    conn = pg8000.native.Connection(
        target.user,
        host=target.host,
        port=target.port,
        database=target.database,
        password=target.password,
        timeout=10,
    )
    if target.schema:
        conn.run(f"SET search_path TO {target.schema}")
    return conn


@functools.cache
def _pg_unreachable() -> str | None:
    """Why the test server cannot be used, or None; asked once per session."""
    try:
        pg_connect().close()
    except Exception as exc:
        return f"PostgreSQL is not reachable at {PG_URL} ({exc}); set STEPWELL_TEST_DATABASE_URL"
    return None


def _postgres(tmp_path: Path) -> Backend:
    reason = _pg_unreachable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:20]}"
    separator = "&" if "?" in PG_URL else "?"

    def drop() -> None:
        conn = pg_connect()
        try:
            conn.run("SET lock_timeout = '10s'")
            conn.run(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            conn.close()

    return Backend("postgres", f"{PG_URL}{separator}schema={schema}", drop)


BACKENDS: dict[str, Callable[[Path], Backend]] = {"sqlite": _sqlite, "postgres": _postgres}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh database on each backend in turn."""
    factory: Callable[[Path], Backend] = BACKENDS[request.param]
    made = factory(tmp_path)
    yield made
    made.cleanup()


@pytest.fixture
def pg_backend(tmp_path: Path) -> Iterator[Backend]:
    """A fresh PostgreSQL schema, for the tests only PostgreSQL runs."""
    made = _postgres(tmp_path)
    yield made
    made.cleanup()


@pytest.fixture
def store_url(backend: Backend) -> str:
    """The test database's URL, for :func:`stepwell.store.open_store` in another process."""
    return backend.url


@pytest.fixture
def make_store(backend: Backend) -> Callable[[], Store]:
    """Makes unopened stores on the test's database (to reopen it, or one per example)."""
    return backend.make


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    """An open store on a fresh database, closed after the test."""
    opened = backend.make()
    await opened.open()
    yield opened
    await opened.close()
