"""``/v1/apps``: synced apps with their sync state; sync a new app by URL."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from stepwell.engine.api.auth import check_bearer
from stepwell.engine.api.responses import JSON, error
from stepwell.engine.engine import Engine
from stepwell.engine.sync import Syncer


async def list_apps(request: Request) -> Response:
    denied = check_bearer(request)
    if denied is not None:
        return denied
    engine: Engine = request.app.state.engine
    syncer: Syncer | None = request.app.state.syncer
    states = syncer.states if syncer else {}
    rows: list[dict[str, Any]] = []
    for app in sorted(engine.apps.values(), key=lambda a: a.app_id):
        functions = [s.function_id for s in engine.registry.all() if s.app_id == app.app_id]
        rows.append(
            {
                "app_id": app.app_id,
                "url": app.url,
                "sdk": app.sdk,
                "framework": app.framework,
                "synced_at": app.synced_at,
                "functions": sorted(functions),
                "error": None,
            }
        )
    known = {r["url"] for r in rows}
    for state in states.values():
        if not state.ok and state.url not in known:
            rows.append(
                {
                    "app_id": state.app_id,
                    "url": state.url,
                    "sdk": None,
                    "framework": None,
                    "synced_at": None,
                    "functions": [],
                    "error": state.error,
                }
            )
        for row in rows:
            if row["url"] and row["url"].split("?")[0] == state.url and not state.ok:
                row["error"] = state.error
    return JSON({"data": rows})


async def sync_app(request: Request) -> Response:
    denied = check_bearer(request)
    if denied is not None:
        return denied
    syncer: Syncer | None = request.app.state.syncer
    if syncer is None:
        return error(400, "this server cannot sync apps", "unsupported")
    try:
        payload = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        payload = None
    url = payload.get("url") if isinstance(payload, dict) else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return error(400, 'send {"url": "http://host:port/api/inngest"}', "invalid_request")
    state = await syncer.sync(url)
    body = {
        "url": state.url,
        "ok": state.ok,
        "app_id": state.app_id,
        "error": state.error,
        "kind": state.kind,
    }
    return JSON({"data": body}, status_code=200 if state.ok else 502)
