"""Serving from Flask (or any WSGI app built on it).

Flask views are synchronous; each request is handed to a private event loop running on a
daemon thread (see :mod:`stepwell.sdk.serve._loop` for why not ``asyncio.run`` per request).

Example::

    web = flask.Flask(__name__)
    stepwell.sdk.serve.flask(web, app)              # the engine calls /api/stepwell
"""

from __future__ import annotations

from typing import Any

from stepwell.sdk.app import App
from stepwell.sdk.serve._handler import ServeHandler, ServeRequest
from stepwell.sdk.serve._loop import LoopThread

DEFAULT_PATH = "/api/stepwell"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def flask(flask_app: Any, app: App, path: str = DEFAULT_PATH, **options: Any) -> ServeHandler:
    """Add the serve route at ``path`` to a Flask app; returns its handler.

    ``options`` are :class:`~stepwell.sdk.serve.ServeHandler`'s.
    """
    from flask import Response, request

    options.setdefault("framework", "flask")
    handler = ServeHandler(app, **options)
    loop = LoopThread()

    def serve() -> Response:
        served = ServeRequest.build(
            request.method, request.url, request.headers.items(), request.get_data()
        )
        answer = loop.run(handler.handle(served))
        return Response(answer.body, status=answer.status, headers=answer.headers)

    flask_app.add_url_rule(
        path, endpoint=f"stepwell_serve:{path}", view_func=serve, methods=METHODS
    )
    return handler
