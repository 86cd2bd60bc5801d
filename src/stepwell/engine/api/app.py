"""The ASGI app: every route on one port."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stepwell.engine.api import events, rest_v1
from stepwell.engine.api.responses import JSON
from stepwell.engine.engine import Engine


async def health(request: Request) -> Response:
    return JSON({"status": 200, "message": "OK"})


def build_app(engine: Engine, *, event_keys: Iterable[str] | None = None) -> Starlette:
    """The engine's HTTP app. ``event_keys`` None accepts any key (dev mode)."""
    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/e/{event_key}", events.ingest, methods=["POST"]),
            Route("/v1/events", rest_v1.list_events, methods=["GET"]),
            Route("/v1/events/{event_id}", rest_v1.get_event, methods=["GET"]),
            Route("/v1/events/{event_id}/runs", rest_v1.event_runs, methods=["GET"]),
            Route("/v1/runs", rest_v1.list_runs, methods=["GET"]),
            Route("/v1/runs/{run_id}", rest_v1.get_run, methods=["GET"]),
            Route("/v1/runs/{run_id}", rest_v1.cancel_run, methods=["DELETE"]),
            Route("/v1/runs/{run_id}/steps", rest_v1.run_steps, methods=["GET"]),
        ]
    )
    app.state.engine = engine
    app.state.event_keys = frozenset(event_keys) if event_keys is not None else None
    return app
