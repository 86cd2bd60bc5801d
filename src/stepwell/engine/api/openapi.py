"""The OpenAPI 3.1 document of the REST API, served at ``GET /openapi.json``.

Written by hand from the routes (``rest_v1``, ``events``, ``apps``, ``dashboard.bulk``), so
that it says what they promise rather than what a generator can infer; a test fuzzes the
running server with it (schemathesis) and checks that no request gets a 5xx answer. SDK-facing
routes (``/fn/register``, ``/v0``, ``/v1/checkpoint``) follow Inngest's SDK protocol and are
documented there, not here.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from stepwell.engine.api.responses import JSON

STATUSES = ["Queued", "Running", "Completed", "Failed", "Cancelled"]

_ID = {"type": "string", "minLength": 1, "maxLength": 128}
_MS = {"type": "integer", "description": "epoch milliseconds"}
_MS_OR_NULL = {"type": ["integer", "null"], "description": "epoch milliseconds"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _data(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return _json(
        {"type": "object", "properties": {"data": schema}, "required": ["data"]}, description
    )


_ERROR = _json(_ref("Error"), "the request was refused; `error` says why")


def _errors(*codes: int) -> dict[str, Any]:
    words = {
        400: "invalid input",
        401: "missing or wrong credentials",
        404: "not found",
        413: "too large",
    }
    return {str(c): {**_ERROR, "description": words[c]} for c in codes}


def _path_id(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _ID, "description": description}


_LIMIT = {
    "name": "limit",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
}
_CURSOR = {
    "name": "cursor",
    "in": "query",
    "schema": {"type": "string"},
    "description": "the last id of the previous page",
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "code": {"type": "string"},
            "status": {"type": "integer"},
        },
        "required": ["error", "code", "status"],
    },
    "EventIn": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 512},
            "data": {"type": "object"},
            "user": {"type": "object"},
            "id": {"type": "string", "minLength": 1, "description": "idempotency id (24 h)"},
            "ts": {**_MS, "minimum": 315532800000, "maximum": 4102444800000},
        },
        "required": ["name"],
    },
    "Event": {
        "type": "object",
        "properties": {
            "internal_id": {"type": "string"},
            "id": {"type": "string"},
            "name": {"type": "string"},
            "data": {"type": "object"},
            "user": {"type": "object"},
            "ts": _MS,
            "received_at": _MS,
        },
        "required": ["internal_id", "id", "name", "data", "user", "ts", "received_at"],
    },
    "Run": {
        "type": "object",
        "properties": {
            "run_id": {"type": "string"},
            "function_id": {"type": "string"},
            "function_version": {"type": "integer"},
            "app_id": {"type": "string"},
            "status": {"type": "string", "enum": STATUSES},
            "output": {"description": "the handler's return value (any JSON)"},
            "error": {"type": ["object", "null"]},
            "event_id": {"type": "string"},
            "event_ids": {"type": "array", "items": {"type": "string"}},
            "attempt": {"type": "integer"},
            "queued_at": _MS,
            "run_started_at": _MS_OR_NULL,
            "ended_at": _MS_OR_NULL,
            "cancel_reason": {"type": ["string", "null"]},
            "parent_run_id": {"type": ["string", "null"]},
        },
        "required": ["run_id", "function_id", "status", "event_id", "queued_at"],
    },
    "Step": {
        "type": "object",
        "properties": {
            "step_key": {"type": "string"},
            "step_id": {"type": "string"},
            "kind": {"type": "string"},
            "output": {"description": "the memo value: {data} or {error}, an event, or null"},
            "input": {
                "type": ["array", "null"],
                "description": "the arguments the step ran with, when its SDK reported them",
            },
            "seq": {"type": "integer"},
            "started_at": _MS_OR_NULL,
            "ended_at": _MS,
        },
        "required": ["step_key", "step_id", "kind", "seq", "ended_at"],
    },
    "Rerun": {
        "type": "object",
        "properties": {
            "step_key": {
                "type": ["string", "null"],
                "description": "rerun from this step; earlier steps are memoized",
            },
            "input": {
                "type": ["array", "null"],
                "description": "the step's arguments instead of its recorded input",
            },
            "outputs": {
                "type": ["object", "null"],
                "description": "step key to the output an earlier step is seeded with",
            },
        },
    },
    "Pause": {
        "type": "object",
        "properties": {
            "function_id": {"type": "string"},
            "paused": {"type": "boolean"},
            "changed": {"type": "boolean", "description": "false when it already was so"},
        },
        "required": ["function_id", "paused", "changed"],
    },
    "App": {
        "type": "object",
        "properties": {
            "app_id": {"type": ["string", "null"]},
            "url": {"type": ["string", "null"]},
            "sdk": {"type": ["string", "null"]},
            "framework": {"type": ["string", "null"]},
            "synced_at": _MS_OR_NULL,
            "functions": {"type": "array", "items": {"type": "string"}},
            "error": {"type": ["string", "null"], "description": "why the last sync failed"},
        },
        "required": ["app_id", "url", "functions", "error"],
    },
    "Selection": {
        "type": "object",
        "description": "Which runs: every field given must match; function_id or app_id is required.",
        "properties": {
            "app_id": {"type": "string"},
            "function_id": {
                "type": "string",
                "description": "composite id (app-fn), or the function's own id with app_id",
            },
            "status": {"type": "string", "enum": STATUSES},
            "started_after": {
                "type": ["string", "integer"],
                "description": "queued at or after: RFC 3339 or epoch ms",
            },
            "started_before": {
                "type": ["string", "integer"],
                "description": "queued before: RFC 3339 or epoch ms",
            },
            "if": {"type": "string", "description": "CEL over `event`, the run's trigger"},
            "event_name": {"type": "string", "description": "the run's trigger event name"},
        },
    },
    "BulkOperation": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "kind": {"type": "string", "enum": ["cancel", "replay"]},
            "app_id": {"type": ["string", "null"]},
            "function_id": {"type": ["string", "null"]},
            "status_filter": {"type": ["string", "null"]},
            "started_after": _MS_OR_NULL,
            "started_before": _MS_OR_NULL,
            "if": {"type": ["string", "null"]},
            "event_name": {"type": ["string", "null"]},
            "state": {"type": "string", "enum": ["selecting", "running", "done", "failed"]},
            "total": {"type": ["integer", "null"], "description": "null while selecting"},
            "processed": {"type": "integer"},
            "changed": {"type": "integer", "description": "runs cancelled, or rerun"},
            "skipped": {"type": "integer", "description": "runs that had already ended"},
            "errors": {"type": "array", "items": {"type": "string"}},
            "created_at": _MS,
            "ended_at": _MS_OR_NULL,
            "updated_at": {**_MS_OR_NULL, "description": "its last move"},
            "node_id": {
                "type": ["string", "null"],
                "description": "the node working on it now; null when none is",
            },
        },
        "required": ["id", "kind", "state", "total", "processed", "changed", "skipped"],
    },
}


def _bulk(kind: str, noun: str) -> dict[str, Any]:
    create = {
        "post": {
            "summary": f"{kind} every run matching a selection, in the background",
            "requestBody": {"required": True, **_json(_ref("Selection"), "which runs")},
            "responses": {
                "201": _json(_ref("BulkOperation"), "started; follow it by id"),
                **_errors(400, 401),
            },
        }
    }
    follow = {
        "get": {
            "summary": f"how far a {noun} got",
            "parameters": [_path_id("job_id", f"the {noun}'s id")],
            "responses": {
                "200": _json(_ref("BulkOperation"), "its progress"),
                **_errors(401, 404),
            },
        }
    }
    return {f"/v1/{noun}s": create, f"/v1/{noun}s/{{job_id}}": follow}


def _paths() -> dict[str, Any]:
    event_body = {"oneOf": [_ref("EventIn"), {"type": "array", "items": _ref("EventIn")}]}
    run_id = _path_id("run_id", "the run")
    event_id = _path_id("event_id", "the event (its internal id)")
    function_id = _path_id("function_id", "the function (its composite id, <app>-<fn>)")
    return {
        "/health": {
            "get": {
                "summary": "liveness",
                "security": [],
                "responses": {"200": {"description": "serving"}},
            }
        },
        "/e/{event_key}": {
            "post": {
                "summary": "send one event or an array; 200 once committed with the runs it starts",
                "security": [],
                "parameters": [_path_id("event_key", "an event key (any in dev mode)")],
                "requestBody": {"required": True, **_json(event_body, "events")},
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "ids": {"type": "array", "items": {"type": "string"}},
                                "status": {"type": "integer"},
                            },
                            "required": ["ids"],
                        },
                        "the events' ids, in order",
                    ),
                    **_errors(400, 401, 413),
                },
            }
        },
        "/v1/events": {
            "get": {
                "summary": "events, newest first",
                "parameters": [
                    {"name": "name", "in": "query", "schema": {"type": "string"}},
                    _CURSOR,
                    _LIMIT,
                ],
                "responses": {
                    "200": _data({"type": "array", "items": _ref("Event")}, "a page of events"),
                    **_errors(400, 401),
                },
            }
        },
        "/v1/events/{event_id}": {
            "get": {
                "summary": "one event",
                "parameters": [event_id],
                "responses": {"200": _data(_ref("Event"), "the event"), **_errors(401, 404)},
            }
        },
        "/v1/events/{event_id}/runs": {
            "get": {
                "summary": "the runs an event started (and the functions flow control skipped)",
                "parameters": [event_id],
                "responses": {
                    "200": _data({"type": "array", "items": _ref("Run")}, "its runs"),
                    **_errors(401, 404),
                },
            }
        },
        "/v1/runs": {
            "get": {
                "summary": "runs, newest first",
                "parameters": [
                    {"name": "function_id", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": STATUSES},
                    },
                    _CURSOR,
                    _LIMIT,
                ],
                "responses": {
                    "200": _data({"type": "array", "items": _ref("Run")}, "a page of runs"),
                    **_errors(400, 401),
                },
            }
        },
        "/v1/runs/{run_id}": {
            "get": {
                "summary": "one run",
                "parameters": [run_id],
                "responses": {"200": _data(_ref("Run"), "the run"), **_errors(401, 404)},
            },
            "delete": {
                "summary": "cancel a run (a no-op on a run that has ended)",
                "parameters": [run_id],
                "responses": {"200": _data(_ref("Run"), "the run now"), **_errors(401, 404)},
            },
        },
        "/v1/runs/{run_id}/steps": {
            "get": {
                "summary": "a run's memo: its steps in completion order",
                "parameters": [run_id],
                "responses": {
                    "200": _data({"type": "array", "items": _ref("Step")}, "its steps"),
                    **_errors(401, 404),
                },
            }
        },
        "/v1/runs/{run_id}/rerun": {
            "post": {
                "summary": "start a new run with the same events, optionally from a step",
                "parameters": [run_id],
                "requestBody": {"required": False, **_json(_ref("Rerun"), "what to rerun")},
                "responses": {
                    "201": _data(_ref("Run"), "the new run"),
                    **_errors(400, 401, 404),
                },
            }
        },
        "/v1/functions/{function_id}/pause": {
            "post": {
                "summary": "pause a function: its events start no run (recorded as skipped)",
                "parameters": [function_id],
                "responses": {
                    "200": _data(_ref("Pause"), "the function's state"),
                    **_errors(401, 404),
                },
            }
        },
        "/v1/functions/{function_id}/resume": {
            "post": {
                "summary": "resume a paused function",
                "parameters": [function_id],
                "responses": {
                    "200": _data(_ref("Pause"), "the function's state"),
                    **_errors(401, 404),
                },
            }
        },
        "/v1/apps": {
            "get": {
                "summary": "synced apps and sync errors",
                "responses": {
                    "200": _data({"type": "array", "items": _ref("App")}, "apps"),
                    **_errors(401),
                },
            }
        },
        **_bulk("cancel", "cancellation"),
        **_bulk("start a new run (same events) for", "replay"),
    }


def document() -> dict[str, Any]:
    """The OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "stepwell REST API",
            "version": "1",
            "description": (
                "Events, runs and bulk operations, in the shapes of Inngest's REST API v1 where "
                "one exists. In production mode (`stepwell start`) every /v1 route needs the "
                "signing key as a bearer token; dev mode is open."
            ),
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"signingKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"signingKey": []}],
        "paths": _paths(),
    }


async def openapi_json(request: Request) -> Response:
    """``GET /openapi.json``."""
    return JSON(document())
