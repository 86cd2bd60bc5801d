"""Serving over ASGI: a standalone ASGI app, or a route on a FastAPI or Starlette app.

Example::

    api = fastapi.FastAPI()
    stepwell.sdk.serve.fastapi(api, app)            # the engine calls /api/stepwell
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from stepwell.sdk.app import App
from stepwell.sdk.serve._handler import ServeHandler, ServeRequest

DEFAULT_PATH = "/api/stepwell"
# Every method reaches the handler, so that others get its 405 with the SDK headers.
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def endpoint(handler: ServeHandler) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint that passes each request to ``handler``."""

    async def serve(request: Request) -> Response:
        served = ServeRequest.build(
            request.method, str(request.url), request.headers.items(), await request.body()
        )
        answer = await handler.handle(served)
        return Response(answer.body, status_code=answer.status, headers=answer.headers)

    return serve


def serve_asgi(app: App, **options: Any) -> ASGIApp:
    """A standalone ASGI app serving ``app`` on every path (for uvicorn, hypercorn, mounts).

    ``options`` are :class:`~stepwell.sdk.serve.ServeHandler`'s.
    """
    options.setdefault("framework", "asgi")
    serve = endpoint(ServeHandler(app, **options))

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            response = await serve(Request(scope, receive))
            await response(scope, receive, send)

    return asgi


def starlette(
    starlette_app: Any, app: App, path: str = DEFAULT_PATH, **options: Any
) -> ServeHandler:
    """Add the serve route at ``path`` to a Starlette app; returns its handler."""
    options.setdefault("framework", "starlette")
    handler = ServeHandler(app, **options)
    route = Route(path, endpoint(handler), methods=METHODS, include_in_schema=False)
    starlette_app.router.routes.append(route)
    return handler


def fastapi(fastapi_app: Any, app: App, path: str = DEFAULT_PATH, **options: Any) -> ServeHandler:
    """Add the serve route at ``path`` to a FastAPI app (hidden from its OpenAPI schema)."""
    options.setdefault("framework", "fast_api")
    return starlette(fastapi_app, app, path, **options)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
