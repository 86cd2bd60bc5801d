"""A small REST client for a running engine; the CLI's only way to talk to one."""

from __future__ import annotations

import os
from typing import Any

import httpx

from stepwell.errors import NotFound, StepwellError


class Client:
    """Talks to ``/v1`` and ``/e`` of an engine.

    Args:
        url: the engine's base URL; default ``$STEPWELL_URL`` or ``http://127.0.0.1:8288``.
        event_key: the event key; default ``$STEPWELL_EVENT_KEY`` or ``"dev"``.
        token: a bearer token for the REST API (production mode).
    """

    def __init__(
        self, url: str | None = None, event_key: str | None = None, token: str | None = None
    ) -> None:
        self.url = (url or os.environ.get("STEPWELL_URL") or "http://127.0.0.1:8288").rstrip("/")
        self.event_key = event_key or os.environ.get("STEPWELL_EVENT_KEY") or "dev"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise StepwellError(f"no engine at {self.url}: start one with `stepwell dev`") from None
        body = response.json() if response.content else {}
        if response.status_code == 404:
            raise NotFound(body.get("error", "not found"))
        if response.status_code >= 400:
            raise StepwellError(f"{response.status_code}: {body.get('error', response.text)}")
        return body

    def send(self, name: str, data: dict[str, Any], event_id: str | None = None) -> list[str]:
        event: dict[str, Any] = {"name": name, "data": data}
        if event_id:
            event["id"] = event_id
        return list(self._call("POST", f"/e/{self.event_key}", json=[event])["ids"])

    def runs(
        self, function_id: str | None = None, status: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        params = {
            k: v
            for k, v in {"function_id": function_id, "status": status, "limit": limit}.items()
            if v
        }
        return list(self._call("GET", "/v1/runs", params=params)["data"])

    def run(self, run_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/v1/runs/{run_id}")["data"])

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/v1/runs/{run_id}/steps")["data"])

    def cancel(self, run_id: str) -> dict[str, Any]:
        return dict(self._call("DELETE", f"/v1/runs/{run_id}")["data"])

    def event_runs(self, event_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/v1/events/{event_id}/runs")["data"])

    def start_bulk(self, kind: str, selection: dict[str, Any]) -> dict[str, Any]:
        """Start a bulk ``cancel`` or ``replay`` of the runs matching ``selection``."""
        path = "/v1/cancellations" if kind == "cancel" else "/v1/replays"
        return dict(self._call("POST", path, json=selection))

    def bulk(self, kind: str, job_id: str) -> dict[str, Any]:
        """A bulk operation's progress."""
        path = "/v1/cancellations" if kind == "cancel" else "/v1/replays"
        return dict(self._call("GET", f"{path}/{job_id}"))
