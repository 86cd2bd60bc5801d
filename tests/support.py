"""Test support: a real engine behind a real uvicorn server on a loopback port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn

import stepwell
from stepwell.embedded import Embedded
from stepwell.engine.api import build_app


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
