"""``stepwell dev``: the embedded engine, in-process apps and the HTTP API on one port."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import uvicorn

from stepwell.cli.loader import load_apps
from stepwell.embedded import Embedded
from stepwell.engine.api import build_app

log = logging.getLogger("stepwell.dev")


async def run_dev(app_refs: Sequence[str], *, host: str, port: int, db: str) -> None:
    """Serve until interrupted; unfinished runs resume on the next start."""
    apps = [app for ref in app_refs for app in load_apps(ref)]
    async with Embedded(apps, db=db) as embedded:
        functions = sum(len(app.functions) for app in apps)
        config = uvicorn.Config(
            build_app(embedded.engine), host=host, port=port, log_level="warning", lifespan="off"
        )
        server = uvicorn.Server(config)
        log.info(
            "stepwell dev server on http://%s:%d: %d app(s), %d function(s), state in %s",
            host,
            port,
            len(apps),
            functions,
            db,
        )
        log.warning("dev mode: no event keys or signing keys; any event key is accepted")
        await server.serve()
        log.info("stopping: in-flight steps finish, everything else resumes on the next start")
