"""Real loopback servers for the serve tests: the engine-API recorder and one per adapter."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import stepwell
from stepwell.sdk import serve
from tests.serve.engine_role import EVENT_KEY, FALLBACK, KEY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def uvicorn_thread(app: Any) -> Iterator[str]:
    """Run an ASGI app with uvicorn on a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def wsgi_thread(app: Any) -> Iterator[str]:
    """Run a WSGI app with werkzeug's threaded server on a thread; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


# -- the engine's API, recorded ------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Recorder:
    """A stand-in for the engine's API origin: records what the SDK sends and answers it."""

    calls: list[Recorded] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        async def record(request: Request) -> JSONResponse:
            raw = await request.body()
            self.calls.append(
                Recorded(
                    request.method,
                    request.url.path,
                    dict(request.query_params),
                    {k.lower(): v for k, v in request.headers.items()},
                    (await request.json()) if raw else None,
                )
            )
            return _answer(request)

        return Starlette(
            routes=[
                Route("/fn/register", record, methods=["POST"]),
                Route("/e/{key}", record, methods=["POST"]),
                Route("/v0/runs/{run_id}/{what}", record, methods=["GET"]),
            ]
        )

    def of(self, path: str) -> list[Recorded]:
        return [c for c in self.calls if c.path == path]


def _answer(request: Request) -> JSONResponse:
    path = request.url.path
    if path == "/fn/register":
        if request.query_params.get("deployId") == "refuse":
            return JSONResponse({"error": "app id is taken", "status": 400, "data": None}, 400)
        return JSONResponse({"ok": True, "modified": True, "sync_id": "s1", "app_id": "a1"})
    if path.startswith("/e/"):
        return JSONResponse({"ids": ["01SENT"], "status": 200})
    if path.endswith("/batch"):
        return JSONResponse([{"name": "demo/go", "data": {"fetched": True}, "ts": 1}])
    return JSONResponse({})


# -- one builder per adapter ---------------------------------------------------------------------


def options(recorder: Recorder) -> dict[str, Any]:
    """What every test endpoint is given: the recorder as API and event origin."""
    return {
        "api_base_url": recorder.url,
        "event_api_base_url": recorder.url,
        "event_key": EVENT_KEY,
    }


def cloud(recorder: Recorder) -> dict[str, Any]:
    return {
        **options(recorder),
        "mode": "cloud",
        "signing_key": KEY,
        "signing_key_fallback": FALLBACK,
    }


def dev(recorder: Recorder) -> dict[str, Any]:
    return {**options(recorder), "mode": "dev"}


Builder = Callable[[stepwell.App, Recorder], Any]


def build_fastapi(app: stepwell.App, recorder: Recorder) -> Any:
    import fastapi

    web = fastapi.FastAPI()
    serve.fastapi(web, app, **cloud(recorder))
    serve.fastapi(web, app, "/dev/stepwell", **dev(recorder))
    return web


def build_starlette(app: stepwell.App, recorder: Recorder) -> Any:
    web = Starlette()
    serve.starlette(web, app, **cloud(recorder))
    serve.starlette(web, app, path="/dev/stepwell", **dev(recorder))
    return web


def build_asgi(app: stepwell.App, recorder: Recorder) -> Any:
    """Two standalone ASGI apps behind a two-line path switch."""
    cloud_app = serve.serve_asgi(app, **cloud(recorder))
    dev_app = serve.serve_asgi(app, **dev(recorder))

    async def switch(scope: Any, receive: Any, send: Any) -> None:
        target = dev_app if scope.get("path", "").startswith("/dev/") else cloud_app
        await target(scope, receive, send)

    return switch


def build_flask(app: stepwell.App, recorder: Recorder) -> Any:
    import flask

    web = flask.Flask("serve-test")
    serve.flask(web, app, **cloud(recorder))
    serve.flask(web, app, path="/dev/stepwell", **dev(recorder))
    return web


def configure_django(app: stepwell.App, recorder: Recorder) -> None:
    import django
    from django.conf import settings

    from stepwell.sdk.serve.django import urls
    from tests.serve import django_urls

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF="tests.serve.django_urls",
            SECRET_KEY="serve-tests",
            MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
            INSTALLED_APPS=[],
            DATA_UPLOAD_MAX_MEMORY_SIZE=None,
        )
        django.setup()
    django_urls.urlpatterns[:] = [
        *urls(app, **cloud(recorder)),
        *urls(app, "dev/stepwell", **dev(recorder)),
    ]


def build_django_wsgi(app: stepwell.App, recorder: Recorder) -> Any:
    configure_django(app, recorder)
    from django.core.handlers.wsgi import WSGIHandler

    return WSGIHandler()


def build_django_asgi(app: stepwell.App, recorder: Recorder) -> Any:
    configure_django(app, recorder)
    from django.core.handlers.asgi import ASGIHandler

    return ASGIHandler()


# name → (framework reported, builder, server kind)
ADAPTERS: dict[str, tuple[str, Builder, str]] = {
    "fastapi": ("fast_api", build_fastapi, "asgi"),
    "starlette": ("starlette", build_starlette, "asgi"),
    "asgi": ("asgi", build_asgi, "asgi"),
    "flask": ("flask", build_flask, "wsgi"),
    "django-wsgi": ("django", build_django_wsgi, "wsgi"),
    "django-asgi": ("django", build_django_asgi, "asgi"),
}
