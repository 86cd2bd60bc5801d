"""The framework-neutral serve endpoint: Inngest's SDK protocol over one URL.

The engine talks to the endpoint with three methods (PROTOCOL.md §1.0):

* ``POST ?fnId=<app>-<fn>&stepId=<step|key>`` — invoke a function against the memo in the body
  (§1.4); answered 200 (done), 206 (ops) or 500 (error) by :mod:`stepwell.protocol.wire`;
* ``PUT`` — sync: register the app with the engine's ``/fn/register`` (out-of-band, §1.3.2) or,
  for a signed ``X-Inngest-Sync-Kind: in_band`` request in cloud mode, answer with the
  configuration directly (§1.3.3);
* ``GET`` — introspection (§1.3.4).

In cloud mode every request must carry a valid ``X-Inngest-Signature`` over the RFC 8785 form
of its body (an unsigned ``PUT`` may still trigger an out-of-band sync, as with the official
SDKs), and every answer to a signed request is signed over its raw bytes with the key that
verified it. In dev mode nothing is checked or signed.

Adapters turn their framework's request into a :class:`ServeRequest`, await
:meth:`ServeHandler.handle`, and write the :class:`ServeResponse` back; nothing else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from stepwell.protocol.canonical_json import canonical_json
from stepwell.protocol.ops import CallRequest, CallResult, RunComplete, StepFailed, StepRun
from stepwell.protocol.signing import bearer_token, sign, verify_signature
from stepwell.protocol.wire import WireError, decode_call_request, encode_result
from stepwell.sdk.app import SDK_VERSION, App
from stepwell.sdk.client import HttpEventSender
from stepwell.sdk.serve._api import EngineApi
from stepwell.sdk.serve._config import Mode, resolve_config, serve_url_for

log = logging.getLogger("stepwell.serve")

SCHEMA_VERSION = "2024-05-24"
REQUEST_VERSION = "2"
SDK_LANGUAGE = "py"
CAPABILITIES = {"in_band_sync": "v1", "trust_probe": "v1"}
ALLOWED_METHODS = "GET, POST, PUT"


@dataclass(frozen=True, slots=True)
class ServeRequest:
    """An HTTP request as the endpoint sees it.

    Attributes:
        method: upper-case HTTP method.
        url: the full URL the request arrived on, query included.
        headers: header names in lower case.
        body: the raw body.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""

    @classmethod
    def build(
        cls, method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> ServeRequest:
        """Normalise what a framework hands over (any header case, repeated headers)."""
        return cls(method.upper(), url, {k.lower(): v for k, v in headers}, body)

    @property
    def query(self) -> dict[str, str]:
        """Query parameters; the first value wins when one repeats."""
        params: dict[str, str] = {}
        for key, value in parse_qsl(urlsplit(self.url).query, keep_blank_values=True):
            params.setdefault(key, value)
        return params


@dataclass(frozen=True, slots=True)
class ServeResponse:
    """What to send back: status, headers (lower-case names) and the raw body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body parsed as JSON (for tests and logs)."""
        return orjson.loads(self.body) if self.body else None


class ServeHandler:
    """Serves an :class:`~stepwell.App`'s functions to the engine over HTTP.

    Args:
        app: the app whose functions are served.
        framework: the framework's name, reported as ``X-Inngest-Framework`` (adapters set it).
        mode: ``"dev"`` or ``"cloud"``; default: dev when ``STEPWELL_DEV`` or ``INNGEST_DEV`` is
            truthy or a URL, else cloud.
        signing_key: ``signkey-<env>-<hex>``; default ``INNGEST_SIGNING_KEY`` or
            ``STEPWELL_SIGNING_KEY``; required in cloud mode.
        signing_key_fallback: the previous key during rotation.
        api_base_url: the engine's API origin (``/fn/register``).
        event_api_base_url: the engine's event origin (``/e/{key}``).
        event_key: the key events are sent with.
        serve_url: the full URL the engine should call back, if the request's URL is not it.
        serve_origin: only the scheme and host of that URL (behind a proxy, in a container).
        serve_path: only its path.
        env: the branch environment name.
        max_signature_age_s: the accepted clock difference for request signatures (seconds);
            None disables the check.

    Raises:
        ConfigError: cloud mode without a signing key, or a malformed key.

    Unless the app is attached to an embedded engine, its event sender is pointed at the
    configured event origin and key, so ``step.send_event`` and ``app.send`` reach the engine
    that calls this endpoint.
    """

    def __init__(
        self,
        app: App,
        *,
        framework: str = "stepwell",
        mode: Mode | None = None,
        signing_key: str | None = None,
        signing_key_fallback: str | None = None,
        api_base_url: str | None = None,
        event_api_base_url: str | None = None,
        event_key: str | None = None,
        serve_url: str | None = None,
        serve_origin: str | None = None,
        serve_path: str | None = None,
        env: str | None = None,
        max_signature_age_s: int | None = 300,
    ) -> None:
        self.app = app
        self.config = resolve_config(
            framework=framework,
            mode=mode,
            signing_key=signing_key,
            signing_key_fallback=signing_key_fallback,
            api_base_url=api_base_url,
            event_api_base_url=event_api_base_url,
            event_key=event_key,
            serve_url=serve_url,
            serve_origin=serve_origin,
            serve_path=serve_path,
            env=env,
            max_signature_age_s=max_signature_age_s,
        )
        self.api = EngineApi(self.config, self._sdk_headers())
        if isinstance(app.sender, HttpEventSender):
            app.attach(HttpEventSender(self.config.event_origin, self.config.event_key))

    # -- entry point -----------------------------------------------------------------------------

    async def handle(self, request: ServeRequest) -> ServeResponse:
        """Answer one request. Never raises: failures become JSON error responses."""
        key: str | None = None
        try:
            key = self._authenticate(request)
            response = await self._route(request, key)
        except Exception as exc:  # the endpoint must answer, whatever went wrong
            log.exception("stepwell serve endpoint failed on %s %s", request.method, request.url)
            response = _error(500, "unknown", f"{type(exc).__name__}: {exc}")
        return self._finish(response, key)

    async def _route(self, request: ServeRequest, key: str | None) -> ServeResponse:
        if request.method == "POST":
            if self._refused(key):
                return _unauthorized()
            return await self._call(request)
        if request.method == "PUT":
            return await self._sync(request, key)
        if request.method == "GET":
            if self._refused(key):
                return _unauthorized()
            return self._inspect(request, key)
        response = _error(405, "method_not_allowed", f"use {ALLOWED_METHODS}")
        response.headers["allow"] = ALLOWED_METHODS
        return response

    # -- signatures ------------------------------------------------------------------------------

    def _authenticate(self, request: ServeRequest) -> str | None:
        """The key that verified the request's signature; None in dev mode or when unsigned."""
        if self.config.mode == "dev":
            return None
        header = request.headers.get("x-inngest-signature")
        if not header:
            return None
        body = _canonical(request.body)
        now = int(time.time())
        for key in self.config.keys:
            if verify_signature(body, header, [key], now, self.config.max_signature_age_s):
                return key
        return None

    def _refused(self, key: str | None) -> bool:
        return self.config.mode == "cloud" and key is None

    def _finish(self, response: ServeResponse, key: str | None) -> ServeResponse:
        headers = {"content-type": "application/json", **self._sdk_headers()}
        headers["x-inngest-sdk-handled"] = "true"
        headers["x-inngest-expected-server-kind"] = self.config.mode
        headers.update(response.headers)
        if key is not None:
            headers["x-inngest-signature"] = sign(response.body, key, int(time.time()))
        return ServeResponse(response.status, headers, response.body)

    def _sdk_headers(self) -> dict[str, str]:
        headers = {
            "x-inngest-sdk": SDK_VERSION,
            "x-inngest-req-version": REQUEST_VERSION,
            "x-inngest-framework": self.config.framework,
            "user-agent": SDK_VERSION,
        }
        if self.config.env:
            headers["x-inngest-env"] = self.config.env
        return headers

    # -- POST: call a function -------------------------------------------------------------------

    async def _call(self, request: ServeRequest) -> ServeResponse:
        query = request.query
        if query.get("probe") == "trust":
            return ServeResponse(200)
        fn_id = query.get("fnId")
        if not fn_id:
            return _error(500, "query_param_missing", "the fnId query parameter is required")
        fn = self.app.get(fn_id) or self.app.get(f"{self.app.id}-{fn_id}")
        if fn is None:
            known = sorted(f.full_id for f in self.app.functions)
            return _error(
                500,
                "function_not_found",
                f"function {fn_id!r} is not served by app {self.app.id!r} (it serves {known}); "
                "re-sync the app if functions were renamed",
            )
        try:
            body = _parse_object(request.body)
            call = decode_call_request(fn.full_id, body, step_id=query.get("stepId"))
            if body.get("use_api") is True or body.get("ctx", {}).get("use_api") is True:
                call = await self._fetch_state(call)
        except WireError as exc:
            return _error(500, exc.code, f"function {fn.full_id!r}: {exc}")
        inline = _InlineSteps(self.app.sender) if _may_run_inline(call, body) else None
        result = await fn(call, inline)
        if inline is not None and inline.ops:
            result = inline.answer(result)
        status, headers, raw = encode_result(result)
        return ServeResponse(status, headers, raw)

    async def _fetch_state(self, call: CallRequest) -> CallRequest:
        events, memo = await self.api.run_state(call.run_id)
        return replace(call, events=events or [dict(call.event)], memo=memo)

    # -- PUT: sync -------------------------------------------------------------------------------

    async def _sync(self, request: ServeRequest, key: str | None) -> ServeResponse:
        in_band = request.headers.get("x-inngest-sync-kind") == "in_band"
        if self.config.mode == "cloud" and in_band:
            if key is None:
                return _unauthorized()
            return self._in_band(request, key)
        if self._refused(key) and not self.config.allow_unsigned_sync:
            return _unauthorized()
        server_kind = request.headers.get("x-inngest-server-kind")
        if server_kind and server_kind != self.config.mode:
            return _out_of_band(
                _error(
                    400,
                    "server_kind_mismatch",
                    f"sync rejected: it came from a {server_kind!r} server but this app runs in "
                    f"{self.config.mode!r} mode; set INNGEST_DEV=1 for a dev server, or a "
                    "signing key for production",
                )
            )
        return _out_of_band(await self._register(request, server_kind))

    async def _register(self, request: ServeRequest, server_kind: str | None) -> ServeResponse:
        url = serve_url_for(self.config, request.url)
        body = self._register_body(url)
        try:
            answer = await self.api.register(
                body, deploy_id=request.query.get("deployId"), expected_server_kind=server_kind
            )
        except Exception as exc:
            message = f"could not reach the engine at {self.config.api_origin}: {exc}"
            return _error(500, "registration_failed", message, modified=False)
        payload: dict[str, Any] = answer.body if isinstance(answer.body, dict) else {}
        # The engine may report a failure in the body's "status" too (PROTOCOL.md §1.3.2).
        claimed = payload.get("status")
        status = answer.status if answer.status >= 400 or not isinstance(claimed, int) else claimed
        if status >= 400:
            reason = payload.get("error") or payload.get("message") or f"HTTP {status}"
            return _error(status, "registration_failed", f"sync failed: {reason}", modified=False)
        return _json_response(
            200, {"message": "Successfully registered", "modified": bool(payload.get("modified"))}
        )

    def _register_body(self, url: str) -> dict[str, Any]:
        body = self.app.register_request(url)
        body["framework"] = self.config.framework
        body["capabilities"] = dict(CAPABILITIES)
        return body

    def _in_band(self, request: ServeRequest, key: str) -> ServeResponse:
        try:
            body = _parse_object(request.body)
        except WireError as exc:
            return _error(400, "invalid_request", str(exc))
        if not isinstance(body.get("url"), str) or not body["url"]:
            return _error(400, "invalid_request", "an in-band sync body is {'url': <serve url>}")
        url = serve_url_for(self.config, body["url"])
        sdk_version = SDK_VERSION.split(":v", 1)[-1]
        answer = {
            "app_id": self.app.id,
            "capabilities": dict(CAPABILITIES),
            "env": self.config.env,
            "framework": self.config.framework,
            "functions": self._register_body(url)["functions"],
            "inspection": self._inspection(request, key),
            "sdk": SDK_VERSION,
            "sdk_author": "stepwell",
            "sdk_language": SDK_LANGUAGE,
            "sdk_version": sdk_version,
            "url": url,
        }
        response = _json_response(200, answer)
        response.headers["x-inngest-sync-kind"] = "in_band"
        return response

    # -- GET: introspection ----------------------------------------------------------------------

    def _inspect(self, request: ServeRequest, key: str | None) -> ServeResponse:
        server_kind = request.headers.get("x-inngest-server-kind")
        if server_kind and server_kind != self.config.mode:
            return _json_response(403, {})
        return _json_response(200, self._inspection(request, key))

    def _inspection(self, request: ServeRequest, key: str | None) -> dict[str, Any]:
        config = self.config
        body: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "function_count": len(self.app.functions),
            "has_event_key": config.event_key is not None,
            "has_signing_key": config.signing_key is not None,
            "has_signing_key_fallback": config.signing_key_fallback is not None,
            "mode": config.mode,
        }
        if key is None:
            return body
        serve = urlsplit(serve_url_for(config, request.url))
        return body | {
            "api_origin": config.api_origin,
            "app_id": self.app.id,
            "authentication_succeeded": True,
            "capabilities": dict(CAPABILITIES),
            "env": config.env,
            "event_api_origin": config.event_origin,
            "event_key_hash": _sha256(config.event_key),
            "framework": config.framework,
            "sdk_language": SDK_LANGUAGE,
            "sdk_version": SDK_VERSION.split(":v", 1)[-1],
            "serve_origin": f"{serve.scheme}://{serve.netloc}",
            "serve_path": serve.path,
            "signing_key_hash": _key_hash(config.signing_key),
            "signing_key_fallback_hash": _key_hash(config.signing_key_fallback),
        }


# -- helpers -------------------------------------------------------------------------------------


INLINE_BUDGET_S = 0.25
"""How long a served call runs steps back to back before it answers with them (at most)."""
INLINE_BUDGET_BYTES = 1024 * 1024
"""How many bytes of step outputs a served call holds before it answers with them (about)."""


def _may_run_inline(call: CallRequest, body: Mapping[str, Any]) -> bool:
    """Whether the engine lets this call run steps back to back: a discovery call that may run
    a step at once, from an engine that says it takes several finished steps in one answer (it
    sends ``ctx.qi_id``, as for the TS SDK's checkpointing)."""
    ctx = body.get("ctx")
    return (
        isinstance(ctx, Mapping)
        and isinstance(ctx.get("qi_id"), str)
        and call.target_step is None
        and not call.disable_immediate_execution
    )


class _InlineSteps:
    """The checkpointer of a served call that runs steps back to back: it holds each finished
    step for the answer (206, the steps in completion order), until the call's budget is spent.

    Nothing is durable until the engine records the answer; if the app dies first, those steps
    run again, as any step whose result was not recorded does.
    """

    def __init__(self, sender: Any) -> None:
        self.ops: list[StepRun | StepFailed] = []
        self._sender = sender
        self._deadline = time.monotonic() + INLINE_BUDGET_S
        self._bytes = 0

    async def step_completed(self, op: StepRun | StepFailed) -> None:
        self.ops.append(op)
        self._bytes += len(orjson.dumps(op.data if isinstance(op, StepRun) else op.error))

    async def send_events(
        self, key: str, step_id: str, events: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        ids = list(await self._sender.send_wire(list(events)))
        self.ops.append(StepRun(key, step_id, {"ids": ids}))
        return ids

    async def flush(self) -> None:
        return None

    def full(self) -> bool:
        return time.monotonic() >= self._deadline or self._bytes >= INLINE_BUDGET_BYTES

    def answer(self, result: CallResult) -> CallResult:
        """The call's outcome with the steps run inline first. A handler that returned ends the
        run with them (``RunComplete``); one that raised reports only the steps, so the engine
        records them and calls again, and the error comes back from a replay."""
        if not result.done:
            return replace(result, ops=(*self.ops, *result.ops))
        if result.error is None:
            return CallResult(done=False, ops=(*self.ops, RunComplete(result.output)))
        return CallResult(done=False, ops=tuple(self.ops))


def _canonical(body: bytes) -> bytes:
    """The bytes a request signature covers: the RFC 8785 form of a JSON body, as both official
    SDKs verify it; the raw bytes when the body is empty or not JSON."""
    if not body:
        return body
    try:
        return canonical_json(json.loads(body))
    except (ValueError, TypeError, RecursionError):
        return body


def _parse_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise WireError("the body must be a JSON object")
    return value


def _json_response(status: int, body: Any) -> ServeResponse:
    return ServeResponse(status, {"content-type": "application/json"}, orjson.dumps(body))


def _error(status: int, code: str, message: str, **extra: Any) -> ServeResponse:
    return _json_response(status, {"code": code, "message": message, "name": "ServeError", **extra})


def _unauthorized() -> ServeResponse:
    return _json_response(401, {"message": "Unauthorized"})


def _out_of_band(response: ServeResponse) -> ServeResponse:
    response.headers["x-inngest-sync-kind"] = "out_of_band"
    return response


def _sha256(value: str | None) -> str | None:
    return hashlib.sha256(value.encode()).hexdigest() if value else None


def _key_hash(key: str | None) -> str | None:
    return bearer_token(key) if key else None
