"""Playing the engine against a served app: call requests shaped as PROTOCOL.md §1.4 and
Appendix B show them, canonicalised (RFC 8785) and signed in cloud mode."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from stepwell.protocol.canonical_json import canonical_json
from stepwell.protocol.signing import sign, verify_signature

KEY = "signkey-test-" + "ab" * 32
FALLBACK = "signkey-test-" + "cd" * 32
EVENT_KEY = "serve-test-event-key"
APP_ID = "serve-test"
SDK = "stepwell:v0.1.0"


def h(step_id: str) -> str:
    return hashlib.sha1(step_id.encode()).hexdigest()


def fn(name: str) -> str:
    return f"{APP_ID}-{name}"


def event(name: str = "demo/go", data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": "01EVENT", "name": name, "data": data or {}, "user": {}, "ts": 1760000000000}


def call_body(
    *,
    steps: dict[str, Any] | None = None,
    stack: list[str] | None = None,
    attempt: int = 0,
    max_attempts: int = 3,
    disable: bool = False,
    trigger: dict[str, Any] | None = None,
    step: str = "step",
) -> dict[str, Any]:
    trigger = trigger or event()
    stack = list(stack or [])
    return {
        "event": trigger,
        "events": [trigger],
        "steps": steps or {},
        "version": -1 if not stack else 2,
        "use_api": False,
        "ctx": {
            "run_id": "01RUN",
            "attempt": attempt,
            "max_attempts": max_attempts,
            "disable_immediate_execution": disable,
            "use_api": False,
            "stack": {"stack": stack, "current": len(stack)},
            "step_id": step,
            "env": "",
        },
    }


@dataclass
class Served:
    """One adapter's server: a cloud-mode endpoint and a dev-mode one."""

    name: str
    framework: str
    base: str
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def cloud_url(self) -> str:
        return self.base + "/api/stepwell"

    @property
    def dev_url(self) -> str:
        return self.base + "/dev/stepwell"

    def call(
        self,
        function: str,
        *,
        step: str = "step",
        key: str | None = KEY,
        dev: bool = False,
        raw: bytes | None = None,
        signature: str | None = None,
        **body: Any,
    ) -> httpx.Response:
        """POST a call request, signed with ``key`` (None: unsigned), and check the SDK headers."""
        content = raw if raw is not None else canonical_json(call_body(step=step, **body))
        headers = {"content-type": "application/json", "x-inngest-req-version": "2"}
        if signature is not None:
            headers["x-inngest-signature"] = signature
        elif key is not None and not dev:
            headers["x-inngest-signature"] = sign(content, key, int(time.time()))
        url = self.dev_url if dev else self.cloud_url
        response = self.client.post(
            url, params={"fnId": function, "stepId": step}, content=content, headers=headers
        )
        self.check_headers(response)
        return response

    def check_headers(self, response: httpx.Response, *, signed_with: str | None = None) -> None:
        """Every answer carries the SDK headers; a signed request gets a signed answer."""
        assert response.headers["x-inngest-sdk"] == SDK
        assert response.headers["x-inngest-req-version"] == "2"
        assert response.headers["x-inngest-sdk-handled"] == "true"
        assert response.headers["x-inngest-framework"] == self.framework
        assert response.headers["content-type"].startswith("application/json")
        if signed_with is not None:
            assert verify_signature(
                response.content,
                response.headers.get("x-inngest-signature"),
                [signed_with],
                int(time.time()),
            ), "the answer is not signed over its raw body"
