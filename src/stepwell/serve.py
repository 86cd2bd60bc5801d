"""Serve an app's functions over HTTP from FastAPI, Starlette, Flask or Django.

``stepwell.serve.fastapi(fastapi_app, app)`` is all it takes; see :mod:`stepwell.sdk.serve`.
"""

from __future__ import annotations

from stepwell.sdk.serve import (
    ServeConfig,
    ServeHandler,
    ServeRequest,
    ServeResponse,
    django_view,
    fastapi,
    flask,
    serve_asgi,
    starlette,
)

__all__ = [
    "ServeConfig",
    "ServeHandler",
    "ServeRequest",
    "ServeResponse",
    "django_view",
    "fastapi",
    "flask",
    "serve_asgi",
    "starlette",
]
