"""The engine's HTTP driver runs functions served by stepwell's SDK, as it runs the official SDKs'."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import fastapi
import pytest

import stepwell
from stepwell.sdk import serve

support = pytest.importorskip("tests.support")

KEY = "signkey-prod-" + "ab" * 32

app = stepwell.App("served-e2e")


@app.function("sequential", trigger="e2e/go")
async def sequential(ctx: stepwell.Context) -> str:
    a = await ctx.step.run("a", lambda: "A")
    return await ctx.step.run("b", lambda: a + "B")


@app.function("parallel", trigger="e2e/parallel")
async def parallel(ctx: stepwell.Context) -> list[Any]:
    return list(
        await ctx.step.parallel(
            lambda: ctx.step.run("p1", lambda: 1), lambda: ctx.step.run("p2", lambda: 2)
        )
    )


@app.function("notify", trigger="e2e/notify")
async def notify(ctx: stepwell.Context) -> int:
    ids = await ctx.step.send_event(
        "fan", [stepwell.Event("e2e/noted", {"n": n}) for n in range(2)]
    )
    return len(ids)


@app.function("child")
async def child(ctx: stepwell.Context) -> Any:
    return ctx.event.data["x"] * 2


@app.function("invoker", trigger="e2e/invoke")
async def invoker(ctx: stepwell.Context) -> Any:
    await ctx.step.sleep("nap", "1s")
    return await ctx.step.invoke("call", "child", {"x": 21})


@app.function("limited", trigger="e2e/limited", concurrency=1)
async def limited(ctx: stepwell.Context) -> list[float]:
    return await ctx.step.run("work", _timed_work)


async def _timed_work() -> list[float]:
    started = time.time()
    await asyncio.sleep(0.2)
    return [started, time.time()]


@app.function("fatal", trigger="e2e/fatal", retries=1)
async def fatal(ctx: stepwell.Context) -> None:
    await ctx.step.run("fail", _fail)


def _fail() -> None:
    raise ValueError("always")


async def _finished(engine: Any, event_id: str, timeout: float = 20) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        runs = await engine.store.read(lambda tx: tx.runs_for_event(event_id))
        if runs and all(r.status in {"Completed", "Failed", "Cancelled"} for r in runs):
            return runs[0]
        assert asyncio.get_running_loop().time() < deadline, f"run did not finish: {runs}"
        await asyncio.sleep(0.05)


def _served_web(framework: str, options: dict[str, Any]) -> Any:
    """The app served by ``framework``: (ASGI or WSGI app, server kind)."""
    if framework == "fastapi":
        web = fastapi.FastAPI()
        serve.fastapi(web, app, **options)
        return web, "asgi"
    if framework == "flask":
        import flask

        web = flask.Flask("served-e2e")
        serve.flask(web, app, **options)
        return web, "wsgi"
    import django
    from django.conf import settings
    from django.core.handlers.asgi import ASGIHandler

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
    django_urls.urlpatterns[:] = [*urls(app, "api/stepwell", **options)]
    return ASGIHandler(), "asgi"


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["fastapi", "flask", "django"])
@pytest.mark.parametrize("mode", ["dev", "cloud"])
async def test_the_engine_drives_a_served_app(tmp_path: Path, mode: str, framework: str) -> None:
    from tests.serve.servers import uvicorn_thread, wsgi_thread

    key = KEY if mode == "cloud" else None
    async with support.engine_server(
        tmp_path / "e2e.db", signing_key=key, event_keys=["ek"] if key else None
    ) as served:
        options = {
            "mode": mode,
            "signing_key": key,
            "api_base_url": served.url,
            "event_api_base_url": served.url,
            "event_key": "ek",
        }
        web, kind = _served_web(framework, options)
        server = uvicorn_thread(web) if kind == "asgi" else wsgi_thread(web)
        with server as base:
            port = int(base.rsplit(":", 1)[1])
            state = await served.syncer.sync(f"http://127.0.0.1:{port}/api/stepwell")
            assert state.ok, state.error
            engine = served.engine

            async def run(name: str) -> Any:
                [event_id] = await engine.send_wire([{"name": name, "data": {}}])
                return await _finished(engine, event_id)

            done = await run("e2e/go")
            assert (done.status, done.output) == ("Completed", "AB")
            done = await run("e2e/parallel")
            assert (done.status, done.output) == ("Completed", [1, 2])
            done = await run("e2e/notify")
            assert (done.status, done.output) == ("Completed", 2)
            done = await run("e2e/invoke")
            assert (done.status, done.output) == ("Completed", 42)
            done = await run("e2e/fatal")
            assert done.status == "Failed"
            # concurrency limit 1: the three runs' steps never overlap
            limited_ids = await engine.send_wire([{"name": "e2e/limited"} for _ in range(3)])
            spans = sorted([(await _finished(engine, i)).output for i in limited_ids])
            assert all(spans[i][1] <= spans[i + 1][0] for i in range(2)), spans
