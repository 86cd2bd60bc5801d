"""The HTTP driver: invokes functions served by an SDK over Inngest's protocol.

Bodies are sent in RFC 8785 canonical form and signed over exactly those bytes (both official
SDKs verify the canonical form). A classic SDK call runs at most one new step; to avoid a dispatch
round trip per step the driver loops within one invocation: a finished step is handed to the
checkpointer, added to the memo, and the SDK is called again, until the function suspends,
ends, fails, or the invocation has run for ``max_loop_s``. Steps the SDK plans in parallel
(``StepPlanned``) are called concurrently, each targeted by its ``stepId``.

The TS SDK (v4) does better when a discovery call carries ``ctx.fn_id`` and ``ctx.qi_id``: it
runs step after step in one call, posting each finished step to ``/v1/checkpoint/{run_id}/async``
(PROTOCOL.md §1.11), and answers once the function ends (``RunComplete``) or suspends. The route
(``engine/api/checkpoint.py``) stores those steps and hands them to the invocation they belong to
(:meth:`HttpDriver.checkpointed`), so the memo this driver sends on its next call has them too:
a memo missing a checkpointed step would make the SDK run that step again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from yarl import URL

from stepwell.clock import Clock
from stepwell.engine.drivers.http_wire import call_body, decode_response, memo_value
from stepwell.engine.registry import FunctionSpec
from stepwell.ids import new_id
from stepwell.protocol.canonical_json import canonical_json
from stepwell.protocol.invocation import Checkpointer
from stepwell.protocol.ops import (
    CallRequest,
    CallResult,
    DiscoveryRequest,
    Gateway,
    StepError,
    StepFailed,
    StepOp,
    StepPlanned,
    StepRun,
    pending_input,
)
from stepwell.protocol.signing import sign, verify_signature

log = logging.getLogger("stepwell.http")

SERVER_KIND_HEADER = "X-Inngest-Server-Kind"
MAX_CALL_BODY = 4 * 1024 * 1024
GATEWAY_TIMEOUT_S = 300.0
"""How long a ``step.fetch`` request the engine makes on an app's behalf may take."""
CONNECT_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 100
"""Open connections to apps at most, over every app (as many invocations at once)."""

Owner = Literal["live", "stale", "foreign"]


@dataclass(slots=True)
class _Live:
    """An invocation in flight that the SDK may checkpoint steps of."""

    run_id: str
    checkpointer: Checkpointer
    steps: list[StepRun | StepFailed] = field(default_factory=list)
    """Checkpointed steps not yet merged into the memo the driver sends."""
    handed: set[str] = field(default_factory=set)
    """Keys of the steps handed to the checkpointer, so that a resent one is written once."""


class HttpDriver:
    """Calls apps over HTTP.

    Args:
        clock: the engine's clock.
        signing_key: signs every request and verifies every response when set (production).
        signing_key_fallback: accepted for responses during key rotation.
        timeout_s: how long one SDK call may take.
        max_loop_s: how long one invocation keeps calling the SDK for consecutive steps.
        checkpointing: let SDKs that can (TS v4) run consecutive steps in one call and
            checkpoint them to ``/v1/checkpoint`` (default on); off, every step is one call.
        call_hooks: called with ``(url, headers, body)`` before every call the driver makes to
            an SDK, to log or trace them.

    The calls go through one aiohttp session, whose C parser costs a fraction of what a
    pure-Python client does per request: an SDK that runs one step per call makes one request
    per step.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        signing_key: str | None = None,
        signing_key_fallback: str | None = None,
        timeout_s: float = 7200,
        max_loop_s: float = 10,
        checkpointing: bool = True,
        call_hooks: Sequence[Callable[[str, Mapping[str, str], bytes], Any]] = (),
    ) -> None:
        self.clock = clock
        self.signing_key = signing_key
        self.keys = [k for k in (signing_key, signing_key_fallback) if k]
        self.max_loop_s = max_loop_s
        self.checkpointing = checkpointing
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=CONNECT_TIMEOUT_S)
        self._call_hooks = list(call_hooks)
        self._session: aiohttp.ClientSession | None = None  # made on first use, in its loop
        # qi_id = "<this driver's id>:<serial>": the checkpoint route tells this driver's
        # invocations (live or over) from those of another process (another engine node).
        self._instance = new_id()
        self._serials = itertools.count(1)
        self._live: dict[str, _Live] = {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
            )
        return self._session

    async def invoke(
        self, spec: FunctionSpec, request: CallRequest, checkpointer: Checkpointer
    ) -> CallResult:
        qi_id = None
        if self.checkpointing:
            qi_id = f"{self._instance}:{next(self._serials)}"
            self._live[qi_id] = _Live(request.run_id, checkpointer)
        try:
            return await self._loop(spec, request, checkpointer, qi_id)
        finally:
            if qi_id is not None:
                del self._live[qi_id]

    # -- the checkpoint route's side -------------------------------------------------------------

    def owner(self, run_id: str, qi_id: str) -> Owner:
        """Whose checkpoint this is: a ``live`` invocation of this driver; ``stale`` (one of this
        driver's that is over, of another run, or an id no driver made); or ``foreign`` (made by
        another process, which this one cannot tell live or over)."""
        instance, _, serial = qi_id.rpartition(":")
        if instance != self._instance:
            return "foreign" if instance and serial.isdigit() else "stale"
        live = self._live.get(qi_id)
        return "live" if live is not None and live.run_id == run_id else "stale"

    async def checkpoint_live(self, qi_id: str, ops: Iterable[StepRun | StepFailed]) -> bool:
        """Hand steps the SDK checkpointed to the live invocation they belong to: to its
        checkpointer, which writes them behind, and to the memo of its next call. False if the
        invocation is over."""
        live = self._live.get(qi_id)
        if live is None:
            return False
        for op in ops:
            if op.key not in live.handed:
                live.handed.add(op.key)
                await live.checkpointer.step_completed(op)
                live.steps.append(op)
        return True

    # -- calling the SDK ---------------------------------------------------------------------------

    async def _loop(
        self,
        spec: FunctionSpec,
        request: CallRequest,
        checkpointer: Checkpointer,
        qi_id: str | None,
    ) -> CallResult:
        deadline = time.monotonic() + self.max_loop_s
        memo, stack = dict(request.memo), list(request.stack)
        # A step seeded with an input (a rerun with edited input) is asked for by id: the TS
        # SDK runs a targeted step with the seeded arguments, but in its checkpointing mode it
        # would resume an untargeted one with no result instead of running it.
        seeded = next((k for k, v in memo.items() if pending_input(v) is not None), None)
        if seeded is not None and request.target_step is None:
            request = replace(request, target_step=seeded)
        while True:
            # a targeted call runs one step and is not checkpointed (as for planned steps)
            live = qi_id if request.target_step is None else None
            result = await self._call(spec, request, live, checkpointer)
            # The SDK awaited every checkpoint before answering, so all of them are here now.
            self._merge_checkpointed(qi_id, memo, stack)
            request = replace(request, memo=dict(memo), stack=list(stack), target_step=None)
            ops = (
                result.ops
                if result.done
                else await self._fetch(
                    await self._run_planned(spec, request, result.ops, checkpointer)
                )
            )
            finished = [op for op in ops if isinstance(op, StepRun | StepFailed)]
            rest = tuple(op for op in ops if not isinstance(op, StepRun | StepFailed))
            for op in finished:
                if not _recorded(memo, op.key):
                    await checkpointer.step_completed(op)
                    memo[op.key] = memo_value(op)
                    stack.append(op.key)
            if result.done:
                return replace(result, ops=())
            if rest:
                # Finished steps are checkpointed; suspensions and retries go back to the engine.
                return CallResult(done=False, ops=rest)
            if not finished:
                return _error("the app answered 206 without any op", retriable=True)
            if time.monotonic() > deadline:
                return CallResult(done=False, ops=(DiscoveryRequest(),))
            request = replace(
                request, memo=dict(memo), stack=list(stack), attempt=0, now_ms=self.clock.now_ms()
            )

    def _merge_checkpointed(
        self, qi_id: str | None, memo: dict[str, Any], stack: list[str]
    ) -> None:
        live = self._live.get(qi_id) if qi_id is not None else None
        if live is None:
            return
        steps, live.steps = live.steps, []
        for op in steps:
            if not _recorded(memo, op.key):
                memo[op.key] = memo_value(op)
                stack.append(op.key)

    async def _run_planned(
        self,
        spec: FunctionSpec,
        request: CallRequest,
        ops: Sequence[StepOp],
        checkpointer: Checkpointer | None = None,
    ) -> list[StepOp]:
        planned = [op for op in ops if isinstance(op, StepPlanned)]
        if not planned:
            return list(ops)
        others: list[StepOp] = [op for op in ops if not isinstance(op, StepPlanned)]
        calls = {
            asyncio.ensure_future(
                self._call(spec, replace(request, target_step=op.key), None, checkpointer)
            ): op
            for op in planned
        }
        # Outcomes are recorded in the order the steps finished: the memo's stack is completion
        # order, which is how the SDK tells the winner of a race (parallelMode "race").
        finished: list[tuple[StepPlanned, CallResult]] = []
        pending = set(calls)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            ready = sorted(done, key=lambda task: planned.index(calls[task]))
            finished.extend((calls[task], task.result()) for task in ready)
        for op, result in finished:
            if result.done and result.error is not None:
                # The SDK could not run the targeted step: treat it as that step's error.
                others.append(
                    StepError(op.key, op.step_id, result.error, retriable=result.retriable)
                )
            else:
                others.extend(result.ops)
        return others

    async def _fetch(self, ops: Sequence[StepOp]) -> list[StepOp]:
        """Make the HTTP requests of ``step.fetch`` ops (at once), as finished steps."""
        gateways = [op for op in ops if isinstance(op, Gateway)]
        if not gateways:
            return list(ops)
        done = dict(
            zip(
                (op.key for op in gateways),
                await asyncio.gather(*(self._gateway(op) for op in gateways)),
                strict=True,
            )
        )
        return [done.get(op.key, op) if isinstance(op, Gateway) else op for op in ops]

    async def _gateway(self, op: Gateway) -> StepOp:
        started = self.clock.now_ms()
        try:
            async with self._client().request(
                op.method,
                op.url,
                headers=dict(op.headers),
                data=op.body.encode() if op.body is not None else None,
                timeout=aiohttp.ClientTimeout(total=GATEWAY_TIMEOUT_S),
                allow_redirects=False,
            ) as response:
                content = await response.read()
                data = {
                    "status_code": response.status,
                    "headers": _headers(response),
                    "body": _text(content, response.charset),
                }
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            error = {"name": "FetchError", "message": f"{op.method} {op.url}: {exc!r}"}
            return StepError(op.key, op.step_id, error, retriable=True)
        return StepRun(op.key, op.step_id, data, started_at=started)

    async def _call(
        self,
        spec: FunctionSpec,
        request: CallRequest,
        qi_id: str | None = None,
        checkpointer: Checkpointer | None = None,
    ) -> CallResult:
        if not spec.url:
            return _error(f"function {spec.function_id!r} has no URL to call", retriable=False)
        url = _with_step(spec.url, request.target_step)
        body = canonical_json(call_body(request, fn_id=spec.function_id, qi_id=qi_id))
        if len(body) > MAX_CALL_BODY:
            # Past the limit the SDK fetches events and memo itself; they must be durable first.
            if checkpointer is not None:
                await checkpointer.flush()
            body = canonical_json(
                call_body(request, fn_id=spec.function_id, qi_id=qi_id, use_api=True)
            )
        headers = {
            "Content-Type": "application/json",
            "X-Run-ID": request.run_id,
            "X-Inngest-Step-ID": request.target_step or "step",
            "x-inngest-req-version": "2",
            # Answers are small JSON: compressing them would cost the app more than the network
            # between an engine and its apps saves (a Next.js app spends ~0.4 ms on each here).
            "Accept-Encoding": "identity",
        }
        if self.signing_key:
            headers["X-Inngest-Signature"] = sign(
                body, self.signing_key, self.clock.now_ms() // 1000
            )
        for hook in self._call_hooks:
            hook(url, headers, body)
        try:
            async with self._client().post(
                URL(url, encoded=True), data=body, headers=headers
            ) as response:
                status, content = response.status, await response.read()
                answered = _headers(response)
                signature = response.headers.get("X-Inngest-Signature", "")  # any case
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = str(exc) or "timed out"
            return _error(f"could not reach {url}: {type(exc).__name__}: {reason}", retriable=True)
        if (
            self.keys
            and 200 <= status < 300
            and not verify_signature(
                content, signature, self.keys, self.clock.now_ms() // 1000, max_age_s=None
            )
        ):
            return _error("the app's response signature is missing or wrong", retriable=True)
        return decode_response(status, answered, content, now_ms=self.clock.now_ms())


def _with_step(url: str, target: str | None) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "stepId"]
    query.append(("stepId", target or "step"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    # aiohttp's keys are a str subclass, which JSON encoders of memo values refuse as keys
    return {str(k): v for k, v in response.headers.items()}


def _text(content: bytes, charset: str | None) -> str:
    """A response body as text, in its declared charset (UTF-8 if none or unknown)."""
    try:
        return content.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return content.decode("utf-8", errors="replace")


def _error(message: str, *, retriable: bool) -> CallResult:
    return CallResult(
        done=True, error={"name": "HTTPDriverError", "message": message}, retriable=retriable
    )


def _recorded(memo: Mapping[str, Any], key: str) -> bool:
    """Whether the step has an outcome in ``memo`` (a seeded input is not one)."""
    return key in memo and pending_input(memo[key]) is None
