"""An engine with the HTTP driver and the official Python SDK's FastAPI app, both on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import engine_server


@pytest.fixture
def engine_at(tmp_path: Path):
    def make(**kwargs: object):
        return engine_server(tmp_path / "http.db", **kwargs)  # type: ignore[arg-type]

    return make
