"""Serving an app's functions over HTTP, speaking Inngest's SDK protocol.

One framework-neutral :class:`ServeHandler` and thin adapters:

* :func:`fastapi`, :func:`starlette` — add a route to an ASGI app; :func:`serve_asgi` — a
  standalone ASGI app;
* :func:`flask` — add a route to a Flask app;
* :func:`django_view` — an async Django view (and ``stepwell.sdk.serve.django.urls``).

Flask and Django are imported only when their adapter is called.
"""

from __future__ import annotations

from stepwell.sdk.serve._config import ServeConfig
from stepwell.sdk.serve._handler import ServeHandler, ServeRequest, ServeResponse
from stepwell.sdk.serve.asgi import fastapi, serve_asgi, starlette
from stepwell.sdk.serve.django import django_view
from stepwell.sdk.serve.flask import flask

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
