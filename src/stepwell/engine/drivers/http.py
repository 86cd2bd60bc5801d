"""The HTTP driver: invokes functions served by an SDK over Inngest's protocol.

Bodies are sent in RFC 8785 canonical form and signed over exactly those bytes (both official
SDKs verify the canonical form). Each SDK call runs at most one new step; to avoid a dispatch
round trip per step the driver loops within one invocation: a finished step is handed to the
checkpointer, added to the memo, and the SDK is called again, until the function suspends,
ends, fails, or the invocation has run for ``max_loop_s``. Steps the SDK plans in parallel
(``StepPlanned``) are called concurrently, each targeted by its ``stepId``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from stepwell.clock import Clock
from stepwell.engine.drivers.http_wire import call_body, decode_response
from stepwell.engine.registry import FunctionSpec
from stepwell.protocol.canonical_json import canonical_json
from stepwell.protocol.invocation import Checkpointer
from stepwell.protocol.ops import (
    CallRequest,
    CallResult,
    StepError,
    StepFailed,
    StepOp,
    StepPlanned,
    StepRun,
)
from stepwell.protocol.signing import sign, verify_signature

log = logging.getLogger("stepwell.http")

SERVER_KIND_HEADER = "X-Inngest-Server-Kind"


class HttpDriver:
    """Calls apps over HTTP.

    Args:
        clock: the engine's clock.
        signing_key: signs every request and verifies every response when set (production).
        signing_key_fallback: accepted for responses during key rotation.
        timeout_s: how long one SDK call may take.
        max_loop_s: how long one invocation keeps calling the SDK for consecutive steps.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        signing_key: str | None = None,
        signing_key_fallback: str | None = None,
        timeout_s: float = 7200,
        max_loop_s: float = 10,
    ) -> None:
        self.clock = clock
        self.signing_key = signing_key
        self.keys = [k for k in (signing_key, signing_key_fallback) if k]
        self.max_loop_s = max_loop_s
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10))

    async def close(self) -> None:
        await self._client.aclose()

    async def invoke(
        self, spec: FunctionSpec, request: CallRequest, checkpointer: Checkpointer
    ) -> CallResult:
        deadline = time.monotonic() + self.max_loop_s
        while True:
            result = await self._call(spec, request)
            if result.done:
                return result
            ops = await self._run_planned(spec, request, result.ops)
            finished = [op for op in ops if isinstance(op, StepRun | StepFailed)]
            rest = tuple(op for op in ops if not isinstance(op, StepRun | StepFailed))
            memo, stack = dict(request.memo), list(request.stack)
            for op in finished:
                await checkpointer.step_completed(op)
                memo[op.key] = {"data": op.data} if isinstance(op, StepRun) else {"error": op.error}
                stack.append(op.key)
            if rest:
                # Finished steps are checkpointed; suspensions and retries go back to the engine.
                return CallResult(done=False, ops=rest)
            if not finished:
                return _error("the app answered 206 without any op", retriable=True)
            if time.monotonic() > deadline:
                return CallResult(done=False, ops=tuple(finished))  # the engine continues the run
            request = replace(
                request, memo=memo, stack=stack, attempt=0, now_ms=self.clock.now_ms()
            )

    async def _run_planned(
        self, spec: FunctionSpec, request: CallRequest, ops: Sequence[StepOp]
    ) -> list[StepOp]:
        planned = [op for op in ops if isinstance(op, StepPlanned)]
        if not planned:
            return list(ops)
        others: list[StepOp] = [op for op in ops if not isinstance(op, StepPlanned)]
        results = await asyncio.gather(
            *(self._call(spec, replace(request, target_step=op.key)) for op in planned)
        )
        for op, result in zip(planned, results, strict=True):
            if result.done and result.error is not None:
                # The SDK could not run the targeted step: treat it as that step's error.
                others.append(
                    StepError(op.key, op.step_id, result.error, retriable=result.retriable)
                )
            else:
                others.extend(result.ops)
        return others

    async def _call(self, spec: FunctionSpec, request: CallRequest) -> CallResult:
        if not spec.url:
            return _error(f"function {spec.function_id!r} has no URL to call", retriable=False)
        url = _with_step(spec.url, request.target_step)
        body = canonical_json(call_body(request))
        headers = {
            "Content-Type": "application/json",
            "X-Run-ID": request.run_id,
            "X-Inngest-Step-ID": request.target_step or "step",
            "x-inngest-req-version": "2",
        }
        if self.signing_key:
            headers["X-Inngest-Signature"] = sign(
                body, self.signing_key, self.clock.now_ms() // 1000
            )
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return _error(f"could not reach {url}: {type(exc).__name__}: {exc}", retriable=True)
        if self.keys and 200 <= response.status_code < 300:
            signature = response.headers.get("X-Inngest-Signature", "")
            if not verify_signature(
                response.content, signature, self.keys, self.clock.now_ms() // 1000, max_age_s=None
            ):
                return _error("the app's response signature is missing or wrong", retriable=True)
        return decode_response(
            response.status_code,
            dict(response.headers),
            response.content,
            now_ms=self.clock.now_ms(),
        )


def _with_step(url: str, target: str | None) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "stepId"]
    query.append(("stepId", target or "step"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _error(message: str, *, retriable: bool) -> CallResult:
    return CallResult(
        done=True, error={"name": "HTTPDriverError", "message": message}, retriable=retriable
    )
