"""The served SDK's calls to the engine's API: ``POST /fn/register`` and the run-state fetches.

Authenticated with the signing key's bearer token when there is a key; on 401 or 403 the call is
repeated once with the fallback key, as the official SDKs do during key rotation. A fresh
``httpx.AsyncClient`` per call keeps this usable from any event loop (Flask's private loop,
Django's per-request loops, an ASGI server's loop).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from stepwell.protocol.signing import bearer_token
from stepwell.sdk.serve._config import ServeConfig

REGISTER_TIMEOUT_S = 30.0
STATE_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ApiAnswer:
    """What the engine answered: the status and the parsed JSON body (None if not JSON)."""

    status: int
    body: Any


class EngineApi:
    """Calls the engine's API origin on behalf of a serve endpoint.

    Args:
        config: the endpoint's settings (API origin, keys, mode).
        headers: the SDK headers to send on every call (``X-Inngest-SDK``, framework, ...).
    """

    def __init__(self, config: ServeConfig, headers: Mapping[str, str]) -> None:
        self.config = config
        self.headers = dict(headers)

    async def register(
        self,
        body: Mapping[str, Any],
        *,
        deploy_id: str | None,
        expected_server_kind: str | None,
    ) -> ApiAnswer:
        """``POST {api}/fn/register`` with the app's configuration (an out-of-band sync).

        Raises:
            httpx.HTTPError: the engine could not be reached.
        """
        headers = {"content-type": "application/json"}
        if expected_server_kind:
            headers["x-inngest-expected-server-kind"] = expected_server_kind
        params = {"deployId": deploy_id} if deploy_id else None
        return await self._send(
            "POST",
            "/fn/register",
            content=orjson.dumps(dict(body)),
            headers=headers,
            params=params,
            timeout=REGISTER_TIMEOUT_S,
        )

    async def run_state(self, run_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """A run's events and memo, for call requests trimmed with ``use_api`` (§1.10).

        Raises:
            httpx.HTTPError: the engine could not be reached.
            ValueError: it answered something other than the expected JSON.
        """
        batch = await self._send("GET", f"/v0/runs/{run_id}/batch", timeout=STATE_TIMEOUT_S)
        actions = await self._send("GET", f"/v0/runs/{run_id}/actions", timeout=STATE_TIMEOUT_S)
        if batch.status != 200 or not isinstance(batch.body, list):
            raise ValueError(f"fetching the events of run {run_id} failed ({batch.status})")
        if actions.status != 200 or not isinstance(actions.body, dict):
            raise ValueError(f"fetching the steps of run {run_id} failed ({actions.status})")
        return batch.body, actions.body

    async def _send(self, method: str, path: str, **kwargs: Any) -> ApiAnswer:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        tokens: list[str | None] = [bearer_token(k) for k in self.config.keys]
        if not tokens:
            tokens = [None]
        url = self.config.api_origin + path
        async with httpx.AsyncClient() as client:
            for i, token in enumerate(tokens):
                if token is not None:
                    headers["authorization"] = f"Bearer {token}"
                response = await client.request(method, url, headers=headers, **kwargs)
                if response.status_code not in (401, 403) or i == len(tokens) - 1:
                    break
        return ApiAnswer(response.status_code, _json(response.content))


def _json(content: bytes) -> Any:
    try:
        return orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        return None
