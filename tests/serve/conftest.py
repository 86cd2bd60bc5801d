"""Servers for the serve tests: the engine-API recorder and every adapter, on loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.serve.engine_role import Served
from tests.serve.served_app import app
from tests.serve.servers import ADAPTERS, Recorder, uvicorn_thread, wsgi_thread


@pytest.fixture(scope="session")
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    with uvicorn_thread(recorder.app()) as url:
        recorder.url = url
        yield recorder


@pytest.fixture(scope="session", params=sorted(ADAPTERS))
def served(request: pytest.FixtureRequest, recorder: Recorder) -> Iterator[Served]:
    """Each adapter in turn, serving the test app on a real server."""
    framework, build, kind = ADAPTERS[request.param]
    web = build(app, recorder)
    run = uvicorn_thread if kind == "asgi" else wsgi_thread
    with run(web) as base:
        served = Served(request.param, framework, base)
        yield served
        served.client.close()


@pytest.fixture
def engine(served: Served, recorder: Recorder) -> Served:
    """The adapter under test, with the recorder's log emptied."""
    recorder.calls.clear()
    return served
