"""Syncing apps served over HTTP: ask an app to register (PUT), or take its in-band answer.

Out-of-band: the SDK answers our ``PUT`` by calling ``POST /fn/register`` itself. In-band
(newer SDKs in production mode): it answers the signed ``PUT`` with its configuration, which we
register directly. Either way the outcome is kept per URL so people can see why a sync failed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from stepwell.protocol.canonical_json import canonical_json
from stepwell.protocol.signing import sign, verify_signature

if TYPE_CHECKING:
    from stepwell.engine.engine import Engine

log = logging.getLogger("stepwell.sync")

DISCOVERY_PORTS = (
    80,
    443,
    3000,
    3001,
    3002,
    3003,
    3004,
    3005,
    3006,
    3007,
    3008,
    3009,
    3010,
    4321,
    5000,
    5173,
    8000,
    8080,
    8081,
    8787,
    8888,
    8910,
    8911,
    8912,
    8913,
    8914,
    8915,
)
DISCOVERY_PATHS = (
    "/api/inngest",
    "/x/inngest",
    "/.netlify/functions/inngest",
    "/.redwood/functions/inngest",
    "/api/stepwell",
)


@dataclass(frozen=True, slots=True)
class SyncState:
    """The last sync attempt of one URL."""

    url: str
    ok: bool
    at: int
    app_id: str | None = None
    error: str | None = None
    kind: str | None = None


class Syncer:
    """Sends sync requests to apps and remembers how each went."""

    def __init__(
        self,
        engine: Engine,
        *,
        server_kind: str,
        signing_key: str | None,
        signing_key_fallback: str | None = None,
    ) -> None:
        self.engine = engine
        self.server_kind = server_kind
        self.signing_key = signing_key
        self.keys = [k for k in (signing_key, signing_key_fallback) if k]
        self.states: dict[str, SyncState] = {}

    async def sync(self, url: str) -> SyncState:
        """Ask the app at ``url`` to sync; returns (and records) the outcome."""
        state = await self._sync(url)
        self.states[url] = state
        if not state.ok:
            log.warning("sync of %s failed: %s", url, state.error)
        return state

    async def _sync(self, url: str) -> SyncState:
        now = self.engine.clock.now_ms()
        body = canonical_json({"url": url})
        headers = {"Content-Type": "application/json", "X-Inngest-Server-Kind": self.server_kind}
        if self.signing_key:
            headers["X-Inngest-Signature"] = sign(body, self.signing_key, now // 1000)
            headers["X-Inngest-Sync-Kind"] = "in_band"
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.put(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return SyncState(
                url, False, now, error=f"cannot reach {url}: {type(exc).__name__}: {exc}"
            )
        kind = response.headers.get("x-inngest-sync-kind")
        payload = _json(response.content)
        if kind == "in_band" and response.status_code == 200 and isinstance(payload, dict):
            return await self._in_band(url, response, payload, now)
        app_id = self._app_for(url)
        if response.status_code >= 400 or (
            isinstance(payload, dict) and payload.get("error") and payload.get("status", 200) >= 400
        ):
            message = (
                payload.get("message") or payload.get("error")
                if isinstance(payload, dict)
                else None
            )
            return SyncState(
                url,
                False,
                now,
                app_id,
                f"the app answered {response.status_code}: {message or response.text[:300]}",
                kind,
            )
        if app_id is None:
            return SyncState(
                url,
                False,
                now,
                None,
                "the app answered but never registered: is it an Inngest or stepwell SDK serve endpoint, and does it reach this server (INNGEST_DEV / INNGEST_BASE_URL)?",
                kind,
            )
        return SyncState(url, True, now, app_id, None, kind or "out_of_band")

    async def _in_band(
        self, url: str, response: httpx.Response, payload: dict[str, Any], now: int
    ) -> SyncState:
        if self.keys and not verify_signature(
            response.content,
            response.headers.get("x-inngest-signature", ""),
            self.keys,
            now // 1000,
            max_age_s=None,
        ):
            return SyncState(
                url,
                False,
                now,
                None,
                "the in-band sync answer is not signed with our key",
                "in_band",
            )
        request = {
            "url": payload.get("url") or url,
            "appName": payload.get("app_id"),
            "framework": payload.get("framework"),
            "sdk": payload.get("sdk")
            or f"{payload.get('sdk_language')}:v{payload.get('sdk_version')}",
            "functions": payload.get("functions") or [],
        }
        try:
            specs = await self.engine.register(request)
        except Exception as exc:
            return SyncState(url, False, now, str(payload.get("app_id")), str(exc), "in_band")
        return SyncState(
            url,
            True,
            now,
            specs[0].app_id if specs else str(payload.get("app_id")),
            None,
            "in_band",
        )

    def _app_for(self, url: str) -> str | None:
        base = url.split("?")[0]
        for app in self.engine.apps.values():
            if app.url and app.url.split("?")[0] == base:
                return app.app_id
        return None

    async def discover(
        self, host: str = "127.0.0.1", ports: Sequence[int] = DISCOVERY_PORTS
    ) -> list[str]:
        """Find SDK endpoints on the usual local ports and paths; returns their URLs."""
        found = []
        async with httpx.AsyncClient(timeout=1) as client:
            for port in ports:
                if not await _port_open(host, port):
                    continue
                for path in DISCOVERY_PATHS:
                    url = f"http://{host}:{port}{path}"
                    try:
                        response = await client.get(url)
                    except httpx.HTTPError:
                        continue
                    if "x-inngest-sdk" in response.headers:
                        found.append(url)
        return found


async def _port_open(host: str, port: int) -> bool:
    import asyncio

    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=0.2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
