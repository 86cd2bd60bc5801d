"""Fixtures for the HTTP API tests."""

from __future__ import annotations

from pathlib import Path

import pytest

import stepwell
from tests.support import serve


@pytest.fixture
def server(tmp_path: Path):
    def make(*apps: stepwell.App, **kwargs: object):
        return serve(list(apps), tmp_path / "api.db", **kwargs)

    return make
