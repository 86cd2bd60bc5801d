"""The official-SDK apps build, start, introspect and sync — no engine needed.

A recording stub stands in for the engine's API origin: it answers ``/fn/register`` and
``/v1/checkpoint/...`` and keeps every request, so these tests pin what the SDKs send
before the real engine is pointed at them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.official.harness import (
    FAILURE_HANDLER_IDS,
    FUNCTION_IDS,
    NEXTJS_APP_ID,
    NEXTJS_ONLY_IDS,
    PY_APP_ID,
    AppProcess,
    ensure_nextjs_built,
    free_port,
    last_build_report,
    new_signing_key,
    require_node_toolchain,
    start_nextjs,
    start_py_inngest,
)

pytestmark = pytest.mark.official


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class StubApi:
    """An engine stand-in on loopback that accepts registrations and checkpoints."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                headers = {k.lower(): v for k, v in self.headers.items()}
                with stub._lock:
                    stub.requests.append(Recorded("POST", self.path, headers, body))
                reply = (
                    {"ok": True, "modified": True} if self.path.startswith("/fn/register") else {}
                )
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StubApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def find(self, path_prefix: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]


@pytest.fixture(scope="module")
def stub() -> Iterator[StubApi]:
    with StubApi() as api:
        yield api


@pytest.fixture(scope="module")
def nextjs_dev(stub: StubApi) -> Iterator[AppProcess]:
    require_node_toolchain()
    with start_nextjs(stub.url, port=free_port(), mode="dev") as app:
        yield app


@pytest.fixture(scope="module")
def py_dev(stub: StubApi) -> Iterator[AppProcess]:
    with start_py_inngest(stub.url, port=free_port(), mode="dev") as app:
        yield app


def _composite_ids(app_id: str) -> set[str]:
    ids = {f"{app_id}-{fn}" for fn in FUNCTION_IDS}
    if app_id == NEXTJS_APP_ID:
        ids |= {f"{app_id}-{fn}" for fn in NEXTJS_ONLY_IDS}
    return ids | {f"{app_id}-{fn}-failure" for fn in FAILURE_HANDLER_IDS}


def _sync(app: AppProcess, stub: StubApi, server_kind: str) -> tuple[httpx.Response, Recorded]:
    """Ask the app to sync (unsigned PUT) and return its answer and the registration it sent."""
    before = len(stub.find("/fn/register"))
    response = httpx.put(
        app.url,
        json={"url": app.url},
        headers={"X-Inngest-Server-Kind": server_kind},
        timeout=30.0,
    )
    registrations = stub.find("/fn/register")
    assert len(registrations) == before + 1, (response.status_code, response.text, app.logs())
    return response, registrations[-1]


def test_nextjs_app_builds_once_and_reuses_the_cache(record_property: Any) -> None:
    require_node_toolchain()
    ensure_nextjs_built()
    first = last_build_report()
    ensure_nextjs_built()
    again = last_build_report()

    assert first is not None and again is not None
    record_property("npm_install_s", first.install_s)
    record_property("next_build_s", first.build_s)
    assert (again.app_dir / ".next" / "BUILD_ID").is_file()
    assert again.install_s is None and again.build_s is None
    assert again.check_s < 5


def test_nextjs_introspection_counts_failure_handlers_as_functions(
    nextjs_dev: AppProcess, record_property: Any
) -> None:
    record_property("nextjs_start_s", nextjs_dev.startup_s)
    response = nextjs_dev.get()

    assert response.status_code == 200
    assert response.headers["x-inngest-sdk"] == "inngest-js:v4.24.0"
    assert response.headers["x-inngest-framework"] == "nextjs"
    body = response.json()
    assert body["mode"] == "dev"
    assert body["schema_version"] == "2024-05-24"
    assert body["function_count"] == (
        len(FUNCTION_IDS) + len(NEXTJS_ONLY_IDS) + len(FAILURE_HANDLER_IDS)
    )


def test_py_introspection_counts_only_declared_functions(
    py_dev: AppProcess, record_property: Any
) -> None:
    record_property("py_start_s", py_dev.startup_s)
    response = py_dev.get()

    assert response.status_code == 200
    assert response.headers["x-inngest-sdk"] == "inngest-py:v0.5.19"
    body = response.json()
    assert body["mode"] == "dev"
    assert body["function_count"] == len(FUNCTION_IDS)


def test_nextjs_dev_sync_registers_every_function_with_the_engine(
    nextjs_dev: AppProcess, stub: StubApi
) -> None:
    response, registration = _sync(nextjs_dev, stub, "dev")

    assert response.status_code == 200, response.text
    body = registration.body
    assert body["appName"] == NEXTJS_APP_ID
    assert body["deployType"] == "ping"
    assert body["framework"] == "nextjs"
    assert body["url"] == nextjs_dev.url
    fns = {fn["id"]: fn for fn in body["functions"]}
    assert set(fns) == _composite_ids(NEXTJS_APP_ID)
    _assert_function_configs(fns, NEXTJS_APP_ID, failure_retries=1)


def test_py_dev_sync_registers_every_function_with_the_engine(
    py_dev: AppProcess, stub: StubApi
) -> None:
    response, registration = _sync(py_dev, stub, "dev")

    assert response.status_code == 200, response.text
    body = registration.body
    # sic: the Python SDK spells these keys differently from the TS SDK.
    assert body["appname"] == PY_APP_ID
    assert body["deploy_type"] == "ping"
    assert body["framework"] == "fast_api"
    fns = {fn["id"]: fn for fn in body["functions"]}
    assert set(fns) == _composite_ids(PY_APP_ID)
    _assert_function_configs(fns, PY_APP_ID, failure_retries=0)


def _assert_function_configs(fns: dict[str, Any], app_id: str, *, failure_retries: int) -> None:
    assert fns[f"{app_id}-sequential"]["triggers"] == [{"event": "test/sequential"}]
    assert fns[f"{app_id}-cron"]["triggers"] == [{"cron": "* * * * *"}]
    assert fns[f"{app_id}-flaky"]["steps"]["step"]["retries"] == {"attempts": 3}
    # TS sends one concurrency object as an object, PY always sends a list.
    concurrency = fns[f"{app_id}-limited"]["concurrency"]
    assert (concurrency if isinstance(concurrency, list) else [concurrency]) == [{"limit": 1}]
    assert fns[f"{app_id}-cancellable"]["cancel"][0]["event"] == "test/cancel"
    assert fns[f"{app_id}-cancellable"]["cancel"][0]["if"] == "event.data.id == async.data.id"
    failure = fns[f"{app_id}-fatal-failure"]
    assert failure["triggers"][0]["event"] == "inngest/function.failed"
    assert f"'{app_id}-fatal'" in failure["triggers"][0]["expression"]
    assert failure["steps"]["step"]["retries"] == {"attempts": failure_retries}
    for fn_id, fn in fns.items():
        url = fn["steps"]["step"]["runtime"]["url"]
        assert f"fnId={fn_id}&" in url and url.endswith("stepId=step")


@pytest.mark.parametrize("sdk", ["nextjs", "py_inngest"])
def test_cloud_mode_needs_signatures_and_syncs_with_the_hashed_key(
    sdk: str, stub: StubApi, record_property: Any
) -> None:
    if sdk == "nextjs":
        require_node_toolchain()
    key = new_signing_key()
    start = start_nextjs if sdk == "nextjs" else start_py_inngest
    with start(stub.url, port=free_port(), mode="cloud", signing_key=key, event_key="ek") as app:
        record_property(f"{sdk}_cloud_start_s", app.startup_s)
        assert app.get().status_code == 401
        response, registration = _sync(app, stub, "cloud")

    assert response.status_code == 200, response.text
    hashed = hashlib.sha256(bytes.fromhex(key.removeprefix("signkey-prod-"))).hexdigest()
    # The TS SDK re-attaches the key's prefix to the hash; the Python SDK does not.
    token = f"signkey-prod-{hashed}" if sdk == "nextjs" else hashed
    assert registration.headers["authorization"] == f"Bearer {token}"
    app_id = NEXTJS_APP_ID if sdk == "nextjs" else PY_APP_ID
    assert {fn["id"] for fn in registration.body["functions"]} == _composite_ids(app_id)


def _call_sequential(app: AppProcess, run_id: str) -> httpx.Response:
    """A first call request for ``sequential`` that carries ``ctx.fn_id`` and ``ctx.qi_id``."""
    event = {"name": "test/sequential", "data": {"a": "A", "b": "B"}, "ts": 1760000000000}
    body = {
        "event": event,
        "events": [event],
        "steps": {},
        "use_api": False,
        "version": -1,
        "ctx": {
            "run_id": run_id,
            "attempt": 0,
            "max_attempts": 4,
            "disable_immediate_execution": False,
            "use_api": False,
            "stack": {"stack": [], "current": 0},
            "fn_id": "00000000-0000-0000-0000-000000000001",
            "qi_id": "qi-1",
        },
    }
    return httpx.post(
        app.url,
        params={"fnId": f"{NEXTJS_APP_ID}-sequential", "stepId": "step"},
        json=body,
        timeout=30.0,
    )


def test_nextjs_checkpoints_by_default(nextjs_dev: AppProcess, stub: StubApi) -> None:
    response = _call_sequential(nextjs_dev, "01CHECKPOINTON")

    assert response.status_code == 206, response.text
    assert [(op["op"], op["data"]) for op in response.json()] == [("RunComplete", "AB")]
    assert stub.find("/v1/checkpoint/01CHECKPOINTON/")


def test_nextjs_checkpointing_false_speaks_the_classic_protocol(stub: StubApi) -> None:
    require_node_toolchain()
    with start_nextjs(stub.url, port=free_port(), mode="dev", checkpointing=False) as app:
        response = _call_sequential(app, "01CHECKPOINTOFF")

    assert response.status_code == 206, response.text
    [op] = response.json()
    assert (op["op"], op["id"], op["data"]) == ("StepRun", hashlib.sha1(b"a").hexdigest(), "A")
    assert not stub.find("/v1/checkpoint/01CHECKPOINTOFF")
