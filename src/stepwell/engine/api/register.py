"""SDK-facing routes: ``POST /fn/register`` and the ``/v0/runs`` state fetches."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from stepwell.engine.api.auth import check_bearer
from stepwell.engine.api.responses import JSON, error
from stepwell.engine.engine import Engine
from stepwell.errors import StepwellError
from stepwell.ids import new_id

MAX_REGISTER_BODY = 16 * 1024 * 1024


async def register(request: Request) -> Response:
    """Register an app's functions (Inngest's ``RegisterRequest``)."""
    denied = check_bearer(request)
    if denied is not None:
        return denied
    kind = request.app.state.server_kind
    expected = request.headers.get("x-inngest-expected-server-kind")
    if expected and expected != kind:
        return error(
            400,
            f"the app expected a {expected!r} server but this is a {kind!r} server: "
            f"run the app in {'dev' if kind == 'dev' else 'production'} mode",
            "server_kind_mismatch",
        )
    body = await request.body()
    if len(body) > MAX_REGISTER_BODY:
        return error(413, "registration body too large", "payload_too_large")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return error(400, f"body is not valid JSON: {exc}", "invalid_json")
    if not isinstance(payload, dict):
        return error(400, "body must be a JSON object", "invalid_request")
    if "deployId" in request.query_params:
        payload.setdefault("deployId", request.query_params["deployId"])
    engine: Engine = request.app.state.engine
    try:
        specs, modified = await engine.sync_app(payload)
    except StepwellError as exc:
        return error(400, str(exc), exc.code)
    app_id = specs[0].app_id if specs else str(payload.get("appName") or payload.get("appname"))
    return JSON(
        {"ok": True, "modified": modified, "sync_id": new_id(), "app_id": app_id, "status": 200}
    )


async def run_batch(request: Request) -> Response:
    """``GET /v0/runs/{run_id}/batch``: the run's events (for ``use_api``)."""
    denied = check_bearer(request)
    if denied is not None:
        return denied
    engine: Engine = request.app.state.engine
    run_id = request.path_params["run_id"]
    run = await engine.store.read(lambda tx: tx.get_run(run_id))
    if run is None:
        return error(404, f"run {run_id!r} not found", "not_found")
    events = await engine.store.read(lambda tx: tx.get_events(list(run.event_ids)))
    return JSON([e.to_wire() for e in events])


async def run_actions(request: Request) -> Response:
    """``GET /v0/runs/{run_id}/actions``: the run's memo (for ``use_api``)."""
    denied = check_bearer(request)
    if denied is not None:
        return denied
    engine: Engine = request.app.state.engine
    run_id = request.path_params["run_id"]
    run = await engine.store.read(lambda tx: tx.get_run(run_id))
    if run is None:
        return error(404, f"run {run_id!r} not found", "not_found")
    memo = await engine.store.read(lambda tx: tx.get_memo(run_id))
    return JSON({m.step_key: m.value for m in memo})
