"""Shared fixtures: real SQLite files under tmp_path, fake time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from hypothesis import settings

import stepwell
from stepwell.testing import Harness

HarnessFactory = Callable[..., AbstractAsyncContextManager[Harness]]

# Property tests check answers, not speed: on a busy machine one example may take longer than
# hypothesis's default 200 ms deadline without anything being wrong.
settings.register_profile("stepwell", deadline=None)
settings.load_profile("stepwell")


@pytest.fixture
def harness(tmp_path: Path) -> HarnessFactory:
    """``async with harness(app) as h:`` — an embedded engine on a fresh SQLite file."""

    @asynccontextmanager
    async def make(
        *apps: stepwell.App, db: str | None = None, start_ms: int | None = None
    ) -> AsyncIterator[Harness]:
        async with Harness(apps, db=db or tmp_path / "stepwell.db", start_ms=start_ms) as h:
            yield h

    return make
