"""``POST /e/{event_key}``: accept one event or an array; 200 only once committed."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from stepwell.engine.api.responses import JSON, error, from_exception
from stepwell.engine.engine import Engine
from stepwell.errors import StepwellError

MAX_BODY = 3 * 1024 * 1024


async def ingest(request: Request) -> Response:
    engine: Engine = request.app.state.engine
    keys: frozenset[str] | None = request.app.state.event_keys
    if keys is not None and request.path_params["event_key"] not in keys:
        return error(401, "Event key not found", "unauthorized")
    body = await _read_limited(request)
    if body is None:
        return error(413, f"request body over the limit of {MAX_BODY} bytes", "payload_too_large")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return error(400, f"body is not valid JSON: {exc}", "invalid_json", ids=[])
    try:
        ids = await engine.send_wire(payload)
    except StepwellError as exc:
        response = from_exception(exc)
        return response
    return JSON({"ids": ids, "status": 200})


async def _read_limited(request: Request) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks = bytearray()
    async for chunk in request.stream():
        chunks.extend(chunk)
        if len(chunks) > MAX_BODY:
            return None
    return bytes(chunks)
