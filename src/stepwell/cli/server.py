"""`stepwell dev` and `stepwell start`: engine, in-process apps, served apps and the HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from types import FrameType

import uvicorn

from stepwell.cli.loader import load_apps
from stepwell.embedded import Embedded
from stepwell.engine.api import build_app
from stepwell.engine.drivers.http import HttpDriver
from stepwell.engine.engine import Engine
from stepwell.engine.sync import Syncer

log = logging.getLogger("stepwell.server")


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """How to run a server.

    Attributes:
        host: interface to bind; 127.0.0.1 unless told otherwise.
        port: HTTP port (8288, where the official SDKs look in dev mode).
        database: a SQLite path or a database URL.
        production: require keys (``stepwell start``) rather than dev mode.
        signing_key: signs requests to apps, verifies their answers and SDK tokens.
        signing_key_fallback: the previous key, accepted during rotation.
        event_keys: keys accepted by ``POST /e/{key}`` (production only).
        sdk_urls: apps to sync at start and every ``poll_s`` seconds.
        discovery: look for SDK endpoints on the usual local ports (dev only).
        poll_s: seconds between re-syncs; 0 syncs once.
        retry_interval_s: a fixed delay between attempts instead of the exponential schedule.
        lease_s: seconds a claimed item stays leased without renewal: how soon another node
            takes over the work of a node that died.
        retention_s: prune runs that ended longer ago than this many seconds, hourly (and at
            start); None keeps everything.
    """

    host: str = "127.0.0.1"
    port: int = 8288
    database: str = ".stepwell/dev.db"
    production: bool = False
    signing_key: str | None = None
    signing_key_fallback: str | None = None
    event_keys: tuple[str, ...] = ()
    sdk_urls: tuple[str, ...] = ()
    discovery: bool = True
    poll_s: float = 5.0
    retry_interval_s: float | None = None
    lease_s: float = 30.0
    retention_s: float | None = None
    app_refs: tuple[str, ...] = field(default=())


class _Server(uvicorn.Server):
    """Stops on SIGINT / SIGTERM without re-raising the signal afterwards (uvicorn's default),
    so the engine still stops cleanly and hands its leases back before the process exits."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


async def run_server(options: ServerOptions) -> None:
    """Serve until interrupted; unfinished runs resume on the next start."""
    apps = [app for ref in options.app_refs for app in load_apps(ref)]
    kind = "cloud" if options.production else "dev"
    http = _http_driver(options)
    interval = None if options.retry_interval_s is None else int(options.retry_interval_s * 1000)
    async with Embedded(
        apps,
        db=options.database,
        http=http,
        retry_interval_ms=interval,
        lease_ms=int(options.lease_s * 1000),
    ) as embedded:
        engine = embedded.engine
        syncer = Syncer(
            engine,
            server_kind=kind,
            signing_key=options.signing_key,
            signing_key_fallback=options.signing_key_fallback,
        )
        keys = [k for k in (options.signing_key, options.signing_key_fallback) if k]
        api = build_app(
            engine,
            event_keys=options.event_keys if options.production else None,
            signing_keys=keys,
            server_kind=kind,
            syncer=syncer,
        )
        server = _Server(
            uvicorn.Config(
                api, host=options.host, port=options.port, log_level="warning", lifespan="off"
            )
        )
        functions = len(engine.registry.all())
        log.info(
            "stepwell %s server on http://%s:%d: %d app(s), %d function(s), state in %s",
            "production" if options.production else "dev",
            options.host,
            options.port,
            len(engine.apps),
            functions,
            options.database,
        )
        if not options.production:
            log.warning("dev mode: no signing or event keys; any event key is accepted")
        poller = asyncio.create_task(_sync_loop(syncer, options))
        pruner = asyncio.create_task(_prune_loop(engine, options.retention_s))
        try:
            await server.serve()
        finally:
            for task in (poller, pruner):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        log.info("stopping: in-flight steps finish, everything else resumes on the next start")


def _http_driver(options: ServerOptions) -> HttpDriver:
    from stepwell.clock import SystemClock

    return HttpDriver(
        SystemClock(),
        signing_key=options.signing_key,
        signing_key_fallback=options.signing_key_fallback,
    )


async def _sync_loop(syncer: Syncer, options: ServerOptions) -> None:
    await asyncio.sleep(0.2)  # let the server bind first: apps call /fn/register back
    while True:
        urls: list[str] = list(options.sdk_urls)
        if options.discovery and not options.production:
            urls += [u for u in await syncer.discover() if u not in urls]
        for url in urls:
            previous = syncer.states.get(url)
            state = await syncer.sync(url)
            if state.ok and (previous is None or not previous.ok):
                log.info("synced %s (app %s)", url, state.app_id)
        if options.poll_s <= 0:
            return
        await asyncio.sleep(options.poll_s)


PRUNE_EVERY_S = 3600.0


async def _prune_loop(engine: Engine, retention_s: float | None) -> None:
    """Prune ended runs older than ``retention_s`` at start and then hourly. Every node may do
    it: batches are short transactions, and two nodes pruning at once delete each row once."""
    if retention_s is None:
        return
    from stepwell.store.retention import prune

    while True:
        cutoff = engine.clock.now_ms() - int(retention_s * 1000)
        try:
            count = await prune(engine.store, cutoff)
            if count.runs or count.events:
                log.info(
                    "retention: deleted %d runs older than %s s, %d step results, %d events",
                    count.runs,
                    retention_s,
                    count.memo,
                    count.events,
                )
        except Exception:
            log.exception("retention: pruning failed; trying again in an hour")
        await asyncio.sleep(PRUNE_EVERY_S)
