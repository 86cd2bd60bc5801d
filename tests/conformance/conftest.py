"""One Store conformance suite, run against every backend.

Tests here speak only the :class:`~stepwell.store.base.Store` / ``Tx`` protocols. A backend joins
the suite by adding one entry to :data:`BACKENDS`: a function that, given a fresh temp folder,
returns a :class:`Backend` — a URL for :func:`stepwell.store.open_store` (so a child process can
open the same database) and a factory for store objects on that one database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from stepwell.store import open_store
from stepwell.store.base import Store


@dataclass(frozen=True)
class Backend:
    """A database for one test, and how to open stores on it."""

    name: str
    url: str

    def make(self) -> Store:
        """A new, unopened store on this backend's database (the same data every time)."""
        return open_store(self.url)


def _sqlite(tmp_path: Path) -> Backend:
    return Backend("sqlite", f"sqlite:///{tmp_path / 'stepwell.db'}")


BACKENDS: dict[str, Callable[[Path], Backend]] = {"sqlite": _sqlite}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A fresh database on each backend in turn."""
    factory: Callable[[Path], Backend] = BACKENDS[request.param]
    return factory(tmp_path)


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
