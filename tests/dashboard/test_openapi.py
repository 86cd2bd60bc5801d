"""``/openapi.json`` describes the REST API; fuzzing a real server with it never gets a 5xx.

schemathesis generates requests from the document (valid and invalid ones) for every operation
and sends them to a ``stepwell dev`` process on a loopback port. ``POST /v1/apps/sync`` is left
out: it would make the server call whatever URLs the fuzzer invents.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from stepwell.engine.api.openapi import document
from tests.dashboard.devserver import dev_process

schema = schemathesis.openapi.from_dict(document())

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with dev_process(tmp_path_factory.mktemp("openapi")) as url:
        # something to find: a run that completed, one that sleeps, their events
        for name in ("demo/pipeline", "demo/sleep"):
            httpx.post(f"{url}/e/dev", json={"name": name, "data": {"n": 1}})
        yield url


def test_the_served_document_is_the_documented_one(server: str) -> None:
    served = httpx.get(f"{server}/openapi.json")
    assert served.status_code == 200
    assert served.json() == document()
    operations = {(r.ok().method.upper(), r.ok().path) for r in schema.get_all_operations()}
    assert ("POST", "/v1/cancellations") in operations
    assert ("GET", "/v1/runs/{run_id}") in operations


@schema.exclude(path="/v1/apps/sync").parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_gets_a_server_error(case: Any, server: str) -> None:
    case.call_and_validate(
        base_url=server,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
