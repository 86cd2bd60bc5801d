"""Test support: a real engine behind a real uvicorn server on a loopback port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

import stepwell
from stepwell.clock import SystemClock
from stepwell.embedded import Embedded
from stepwell.engine.api import build_app
from stepwell.engine.drivers.http import HttpDriver
from stepwell.engine.engine import Engine
from stepwell.engine.sync import Syncer


def http_function(fn_id: str, url: str, trigger: str = "t/go") -> dict[str, Any]:
    """The wire config of a function of one step, served at ``url`` (as an SDK syncs it)."""
    step_url = f"{url}?fnId={fn_id}&stepId=step"
    step = {"id": "step", "name": "step", "runtime": {"type": "http", "url": step_url}}
    return {"id": fn_id, "name": "fn", "triggers": [{"event": trigger}], "steps": {"step": step}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve(apps: list[stepwell.App], db: Path, **kwargs: object) -> AsyncIterator[str]:
    port = free_port()
    async with Embedded(apps, db=str(db)) as embedded:
        config = uvicorn.Config(
            build_app(embedded.engine, **kwargs),  # type: ignore[arg-type]
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task


@dataclass
class Served:
    engine: Engine
    syncer: Syncer
    url: str


@asynccontextmanager
async def uvicorn_app(app: object, port: int) -> AsyncIterator[None]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )  # type: ignore[arg-type]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def engine_server(
    db: Path,
    *,
    signing_key: str | None = None,
    fallback: str | None = None,
    event_keys: list[str] | None = None,
    retry_interval_ms: int | None = 200,
    checkpointing: bool = True,
) -> AsyncIterator[Served]:
    port = free_port()
    kind = "cloud" if signing_key else "dev"
    http = HttpDriver(
        SystemClock(),
        signing_key=signing_key,
        signing_key_fallback=fallback,
        checkpointing=checkpointing,
    )
    async with Embedded([], db=str(db), http=http, retry_interval_ms=retry_interval_ms) as embedded:
        syncer = Syncer(
            embedded.engine,
            server_kind=kind,
            signing_key=signing_key,
            signing_key_fallback=fallback,
        )
        keys = [k for k in (signing_key, fallback) if k]
        api = build_app(
            embedded.engine,
            event_keys=event_keys,
            signing_keys=keys,
            server_kind=kind,
            syncer=syncer,
        )
        async with uvicorn_app(api, port):
            yield Served(embedded.engine, syncer, f"http://127.0.0.1:{port}")
