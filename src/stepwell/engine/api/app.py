"""The ASGI app: every route on one port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stepwell.engine.api import (
    apps,
    checkpoint,
    dashboard,
    events,
    metrics,
    openapi,
    register,
    rest_v1,
    traces,
)
from stepwell.engine.api.auth import check_bearer
from stepwell.engine.api.responses import JSON
from stepwell.engine.engine import Engine
from stepwell.engine.sync import Syncer

Endpoint = Callable[[Request], Awaitable[Response]]


async def health(request: Request) -> Response:
    return JSON({"status": 200, "message": "OK"})


def _guarded(endpoint: Endpoint) -> Endpoint:
    """The REST API takes a bearer token in production mode."""

    async def guarded(request: Request) -> Response:
        denied = check_bearer(request)
        return denied if denied is not None else await endpoint(request)

    guarded.__name__ = endpoint.__name__
    return guarded


class ServerKindHeader:
    """Adds ``X-Inngest-Server-Kind`` to every response, as Inngest's servers do."""

    def __init__(self, app: ASGIApp, kind: str) -> None:
        self.app = app
        self.header = (b"x-inngest-server-kind", kind.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_kind(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, send_with_kind)


def build_app(
    engine: Engine,
    *,
    event_keys: Iterable[str] | None = None,
    signing_keys: Sequence[str] = (),
    server_kind: str = "dev",
    syncer: Syncer | None = None,
) -> Starlette:
    """The engine's HTTP app.

    Args:
        engine: the engine behind it.
        event_keys: keys accepted by ``POST /e/{key}``; None accepts any (dev mode).
        signing_keys: primary and fallback signing keys; when set, SDK and REST calls need a
            bearer token (production mode).
        server_kind: ``dev`` or ``cloud``, sent as ``X-Inngest-Server-Kind``.
        syncer: syncs apps by URL (``POST /v1/apps/sync``).
    """
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics.metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
        Route("/e/{event_key}", events.ingest, methods=["POST"]),
        Route("/fn/register", register.register, methods=["POST"]),
        Route("/v0/runs/{run_id}/batch", register.run_batch, methods=["GET"]),
        Route("/v0/runs/{run_id}/actions", register.run_actions, methods=["GET"]),
        Route("/v1/checkpoint/{run_id}/async", checkpoint.checkpoint_async, methods=["POST"]),
        Route("/v1/apps", apps.list_apps, methods=["GET"]),
        Route("/v1/apps/sync", apps.sync_app, methods=["POST"]),
    ]
    rest = [
        ("/v1/events", rest_v1.list_events, "GET"),
        ("/v1/events/{event_id}", rest_v1.get_event, "GET"),
        ("/v1/events/{event_id}/runs", rest_v1.event_runs, "GET"),
        ("/v1/runs", rest_v1.list_runs, "GET"),
        ("/v1/runs/{run_id}", rest_v1.get_run, "GET"),
        ("/v1/runs/{run_id}", rest_v1.cancel_run, "DELETE"),
        ("/v1/runs/{run_id}/steps", rest_v1.run_steps, "GET"),
        ("/v1/runs/{run_id}/rerun", rest_v1.rerun_run, "POST"),
        ("/v1/functions/{function_id}/pause", rest_v1.pause_function, "POST"),
        ("/v1/functions/{function_id}/resume", rest_v1.resume_function, "POST"),
    ]
    routes += [Route(path, _guarded(fn), methods=[method]) for path, fn, method in rest]
    routes += [Route(p, _guarded(fn), methods=[m]) for p, fn, m in dashboard.rest_routes()]
    routes += dashboard.routes()
    app = Starlette(routes=routes, middleware=[Middleware(ServerKindHeader, kind=server_kind)])

    app.state.engine = engine
    app.state.event_keys = frozenset(event_keys) if event_keys is not None else None
    app.state.signing_keys = list(signing_keys)
    app.state.server_kind = server_kind
    app.state.syncer = syncer
    metrics.instrument(engine)
    traces.install_from_env(engine)
    return app
