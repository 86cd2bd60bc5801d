"""An embedded engine that fails to start leaves nothing open: the file can be started again."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import stepwell
from stepwell.embedded import Embedded
from stepwell.errors import ConfigError


def _app(cron: str) -> stepwell.App:
    app = stepwell.App("t")

    @app.function("tick", trigger=stepwell.Cron(cron))
    async def tick(ctx: stepwell.Context) -> None:
        return None

    return app


def _threads_on(db: Path) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.endswith(str(db))]


async def test_a_start_refused_for_an_invalid_function_leaves_the_file_free(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    with pytest.raises(ConfigError, match="cron"):
        async with Embedded([_app("0 25 * * *")], db=str(db), loops=False):
            pass
    assert _threads_on(db) == []  # the store's writer and WAL threads stopped
    # Fixed, it starts on the same file in the same process (the file lock was let go).
    async with Embedded([_app("0 9 * * *")], db=str(db), loops=False) as embedded:
        assert embedded.engine.registry.get("t-tick") is not None
    assert _threads_on(db) == []
