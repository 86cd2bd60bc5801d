"""Flow control: what limits when a run starts and when its steps execute.

Two places decide (docs/flow-control.md has the semantics users see):

* **Admission**, when an event would start a run (:mod:`stepwell.engine.ingest`): rate limit and
  idempotency may skip it, debounce and batching hold it back, singleton skips it or cancels the
  run it replaces. Keys are CEL over the event, evaluated once here.
* **Claim**, when a queue item would be leased (:func:`claim`): concurrency blocks an invocation
  whose key has every slot taken, throttle moves a run's start to its reserved time. The keys
  and limits a claim needs were written on the run when it was created (``runs.flow_keys``), so
  any node enforces them, whatever functions it has loaded.

Concurrency counts *executing steps*: leased invocation items holding the key. A blocked item is
parked and keeps its place (``blocked_at``); a finished invocation frees its slot and unblocks the
longest-waiting item of its keys, so waiting work is served oldest first and a hot key never
holds more than its own slots. Where nodes share PostgreSQL, a claim takes a transaction lock per
key before counting, so two nodes never both take the last slot.

Throttle and rate limit are GCRA: one theoretical arrival time (TAT) per key in
``flow_buckets``. Throttle reserves a start time for every run (so excess runs are delayed in
order, never dropped); rate limit only admits or refuses.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stepwell.engine.expressions import Expression, ExpressionError, compile_expression
from stepwell.errors import ConfigError
from stepwell.protocol.durations import parse_duration
from stepwell.store.base import Tx
from stepwell.store.records import ClaimCandidate, QueueItem

SECOND = 1000
DAY = 24 * 3600 * SECOND
MAX_CONCURRENCY_LIMITS = 2
MAX_PRIORITY_S = 600
MAX_BATCH_SIZE = 1000
IDEMPOTENCY_TTL_MS = DAY
INVOCATION_KINDS = frozenset({"start", "continue"})
CLAIM_ROUNDS = 8
LIFTED_BATCH = 1000
"""Items of a key whose limit was lifted that one sweep unblocks (the next sweep, the rest)."""
"""A claim looks at most this many pages of candidates when flow control blocks or defers some."""

Scope = Literal["fn", "env", "account"]


# -- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConcurrencyLimit:
    """At most ``limit`` steps executing at once per key value (``scope`` names who shares it)."""

    limit: int
    key: Expression | None
    scope: Scope


@dataclass(frozen=True, slots=True)
class Throttle:
    """At most ``limit`` run starts per ``period_ms``, plus ``burst`` at once; excess waits."""

    limit: int
    period_ms: int
    burst: int
    key: Expression | None


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` runs per ``period_ms``; events over it start no run."""

    limit: int
    period_ms: int
    key: Expression | None


@dataclass(frozen=True, slots=True)
class Debounce:
    """Start one run with the last event once ``period_ms`` passed without another; never later
    than ``timeout_ms`` after the first."""

    period_ms: int
    key: Expression | None
    timeout_ms: int | None


@dataclass(frozen=True, slots=True)
class Batching:
    """Start one run with up to ``max_size`` events, at most ``timeout_ms`` after the first."""

    max_size: int
    timeout_ms: int
    key: Expression | None
    condition: Expression | None


@dataclass(frozen=True, slots=True)
class Singleton:
    """One unfinished run per key: ``skip`` the new one or ``cancel`` the old one."""

    key: Expression | None
    mode: Literal["skip", "cancel"]


@dataclass(frozen=True, slots=True)
class FlowSpec:
    """A function's flow control, parsed and compiled once per function version."""

    concurrency: tuple[ConcurrencyLimit, ...] = ()
    throttle: Throttle | None = None
    rate_limit: RateLimit | None = None
    idempotency: Expression | None = None
    debounce: Debounce | None = None
    batch: Batching | None = None
    priority: Expression | None = None
    singleton: Singleton | None = None
    start_timeout_ms: int | None = None
    finish_timeout_ms: int | None = None

    @property
    def limits_claims(self) -> bool:
        """Whether claiming this function's items needs flow control (concurrency, throttle)."""
        return bool(self.concurrency) or self.throttle is not None


NO_FLOW = FlowSpec()


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _ConcurrencyIn(_Loose):
    limit: int = Field(ge=0)
    key: str | None = None
    scope: Scope | None = None


class _ThrottleIn(_Loose):
    limit: int = Field(ge=1)
    period: str | int
    burst: int = Field(default=1, ge=1)
    key: str | None = None


class _RateLimitIn(_Loose):
    limit: int = Field(ge=1)
    period: str | int
    key: str | None = None


class _DebounceIn(_Loose):
    period: str | int
    key: str | None = None
    timeout: str | int | None = None


class _BatchIn(_Loose):
    max_size: int = Field(alias="maxSize", ge=1, le=MAX_BATCH_SIZE)
    timeout: str | int
    key: str | None = None
    if_: str | None = Field(default=None, alias="if")


class _PriorityIn(_Loose):
    run: str | None = None


class _SingletonIn(_Loose):
    key: str | None = None
    mode: Literal["skip", "cancel"] = "skip"


class _TimeoutsIn(_Loose):
    start: str | int | None = None
    finish: str | int | None = None


class _FlowIn(_Loose):
    concurrency: int | _ConcurrencyIn | list[_ConcurrencyIn] | None = None
    throttle: _ThrottleIn | None = None
    rate_limit: _RateLimitIn | None = Field(default=None, alias="rateLimit")
    idempotency: str | None = None
    debounce: _DebounceIn | None = None
    batch_events: _BatchIn | None = Field(default=None, alias="batchEvents")
    priority: _PriorityIn | None = None
    singleton: _SingletonIn | None = None
    timeouts: _TimeoutsIn | None = None


# Allowed ranges of periods, as Inngest documents them (field, lowest, highest).
_RANGES = {
    "throttle.period": (SECOND, 7 * DAY),
    "rateLimit.period": (SECOND, DAY),
    "debounce.period": (SECOND, 7 * DAY),
    "debounce.timeout": (SECOND, 7 * DAY),
    "batchEvents.timeout": (SECOND, 60 * SECOND),
    "timeouts.start": (SECOND, 366 * DAY),
    "timeouts.finish": (SECOND, 366 * DAY),
}


def parse_flow(fid: str, raw: Mapping[str, Any]) -> FlowSpec:
    """Parse and check a ``FunctionConfig``'s flow-control fields.

    Raises:
        ConfigError: naming the function and the field: a wrong shape, a period out of range,
            an invalid CEL expression, or a combination that cannot work (batching with
            debounce, batching with priority, more than two concurrency limits).
    """
    try:
        cfg = _FlowIn.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-after"))
        raise ConfigError(f"function {fid!r}: field {loc!r}: {first['msg']}") from None
    p = _Parser(fid)
    if cfg.batch_events is not None and cfg.debounce is not None:
        p.fail("batchEvents", "batching cannot be combined with debounce")
    if cfg.batch_events is not None and cfg.priority is not None and cfg.priority.run:
        p.fail("batchEvents", "batching cannot be combined with priority")
    return FlowSpec(
        concurrency=p.concurrency(cfg.concurrency),
        throttle=p.throttle(cfg.throttle),
        rate_limit=p.rate_limit(cfg.rate_limit),
        idempotency=p.expression("idempotency", cfg.idempotency),
        debounce=p.debounce(cfg.debounce),
        batch=p.batch(cfg.batch_events),
        priority=p.expression("priority.run", cfg.priority.run if cfg.priority else None),
        singleton=(
            Singleton(p.expression("singleton.key", cfg.singleton.key), cfg.singleton.mode)
            if cfg.singleton is not None
            else None
        ),
        start_timeout_ms=p.duration("timeouts.start", cfg.timeouts.start if cfg.timeouts else None),
        finish_timeout_ms=p.duration(
            "timeouts.finish", cfg.timeouts.finish if cfg.timeouts else None
        ),
    )


class _Parser:
    """Field-by-field checks with errors that name the function and the field."""

    def __init__(self, fid: str) -> None:
        self.fid = fid

    def fail(self, field: str, message: str) -> ConfigError:
        raise ConfigError(f"function {self.fid!r}: field {field!r}: {message}")

    def expression(self, field: str, source: str | None) -> Expression | None:
        if source is None:
            return None
        try:
            return compile_expression(source, field=field)
        except ConfigError as exc:
            raise ConfigError(f"function {self.fid!r}: field {field!r}: {exc}") from None

    def duration(self, field: str, value: str | int | None) -> int | None:
        if value is None:
            return None
        try:
            ms = parse_duration(value, field=field)
        except ConfigError as exc:
            raise ConfigError(f"function {self.fid!r}: field {field!r}: {exc}") from None
        low, high = _RANGES[field]
        if not low <= ms <= high:
            self.fail(field, f"{value!r} is out of range: from {_human(low)} to {_human(high)}")
        return ms

    def concurrency(
        self, value: int | _ConcurrencyIn | list[_ConcurrencyIn] | None
    ) -> tuple[ConcurrencyLimit, ...]:
        if value is None:
            return ()
        if isinstance(value, int):
            if value < 0:
                self.fail("concurrency", "the limit must be 0 (no limit) or more")
            value = [_ConcurrencyIn(limit=value)]
        items = value if isinstance(value, list) else [value]
        if len(items) > MAX_CONCURRENCY_LIMITS:
            self.fail("concurrency", f"at most {MAX_CONCURRENCY_LIMITS} limits, not {len(items)}")
        limits = []
        for i, c in enumerate(items):
            where = f"concurrency[{i}]" if len(items) > 1 else "concurrency"
            scope = c.scope or "fn"
            if scope != "fn" and not c.key:
                self.fail(f"{where}.key", f"scope {scope!r} needs a key shared by the functions")
            if c.limit > 0:  # 0 means no limit
                limits.append(
                    ConcurrencyLimit(c.limit, self.expression(f"{where}.key", c.key), scope)
                )
        return tuple(limits)

    def throttle(self, t: _ThrottleIn | None) -> Throttle | None:
        if t is None:
            return None
        period = self.duration("throttle.period", t.period)
        assert period is not None
        return Throttle(t.limit, period, t.burst, self.expression("throttle.key", t.key))

    def rate_limit(self, r: _RateLimitIn | None) -> RateLimit | None:
        if r is None:
            return None
        period = self.duration("rateLimit.period", r.period)
        assert period is not None
        return RateLimit(r.limit, period, self.expression("rateLimit.key", r.key))

    def debounce(self, d: _DebounceIn | None) -> Debounce | None:
        if d is None:
            return None
        period = self.duration("debounce.period", d.period)
        timeout = self.duration("debounce.timeout", d.timeout)
        assert period is not None
        if timeout is not None and timeout < period:
            self.fail("debounce.timeout", "must not be shorter than debounce.period")
        return Debounce(period, self.expression("debounce.key", d.key), timeout)

    def batch(self, b: _BatchIn | None) -> Batching | None:
        if b is None:
            return None
        timeout = self.duration("batchEvents.timeout", b.timeout)
        assert timeout is not None
        return Batching(
            b.max_size,
            timeout,
            self.expression("batchEvents.key", b.key),
            self.expression("batchEvents.if", b.if_),
        )


def _human(ms: int) -> str:
    for unit, size in (("d", DAY), ("h", 3600 * SECOND), ("m", 60 * SECOND), ("s", SECOND)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


# -- keys ---------------------------------------------------------------------------------------


def key_value(expression: Expression | None, event: Mapping[str, Any]) -> str:
    """The key an event falls under: the expression's value as text ("" without a key).

    An expression that cannot be evaluated on the event (a missing field) gives ``null``: such
    events share one key. Long values are hashed so keys stay short.
    """
    if expression is None:
        return ""
    try:
        value = expression.evaluate({"event": event})
    except ExpressionError:
        value = None
    text = value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > 64:
        return "#" + hashlib.sha256(raw).hexdigest()[:32]
    return raw.decode()


def run_flow_keys(
    flow: FlowSpec, function_id: str, event: Mapping[str, Any]
) -> dict[str, Any] | None:
    """What a claim needs to know about a new run: its concurrency keys with their limits, and
    its throttle bucket with the throttle's parameters."""
    if not flow.limits_claims:
        return None
    keys: dict[str, Any] = {}
    if flow.concurrency:
        keys["concurrency"] = [
            [concurrency_key(c, function_id, event), c.limit] for c in flow.concurrency
        ]
    t = flow.throttle
    if t is not None:
        bucket = f"t:{function_id}:{key_value(t.key, event)}"
        keys["throttle"] = [bucket, t.limit, t.period_ms, t.burst]
    return keys


def concurrency_key(limit: ConcurrencyLimit, function_id: str, event: Mapping[str, Any]) -> str:
    """The virtual queue a run's steps count in: per function, or shared by scope and key."""
    value = key_value(limit.key, event)
    if limit.scope == "fn":
        return f"f:{function_id}:{value}"
    return f"{limit.scope[0]}:{value}"


def priority_ms(flow: FlowSpec, event: Mapping[str, Any]) -> int:
    """How far ahead (positive) or behind (negative) of its arrival a run's start is ordered,
    from ``priority.run`` in seconds, clamped to ±600 s. An expression that fails counts as 0."""
    if flow.priority is None:
        return 0
    try:
        value = flow.priority.evaluate({"event": event})
    except ExpressionError:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return int(max(-MAX_PRIORITY_S, min(MAX_PRIORITY_S, value)) * SECOND)


# -- GCRA ---------------------------------------------------------------------------------------


def gcra_reserve(tx: Tx, bucket: str, limit: int, period_ms: int, burst: int, now: int) -> int:
    """Reserve the next start of a throttle: the time it may start (``now`` if at once).

    ``limit`` + ``burst`` starts are allowed at once, then one every ``period_ms / limit``.
    Every call takes a slot, so callers served in order start in order.
    """
    interval = period_ms / limit
    tolerance = interval * (limit + burst - 1)
    tat = max(tx.get_bucket(bucket) or now, now)
    start_at = max(now, math.ceil(tat - tolerance))
    new_tat = int(tat + interval)
    tx.put_bucket(bucket, new_tat, new_tat)  # past its TAT a bucket is as good as new
    return start_at


def gcra_allow(tx: Tx, bucket: str, limit: int, period_ms: int, now: int) -> bool:
    """Whether a rate limit admits one more run now (and count it if so): at most ``limit`` per
    ``period_ms``, spread as GCRA spreads them."""
    interval = period_ms / limit
    tolerance = interval * (limit - 1)
    tat = max(tx.get_bucket(bucket) or now, now)
    if tat - now > tolerance:
        return False
    new_tat = int(tat + interval)
    tx.put_bucket(bucket, new_tat, new_tat)  # past its TAT a bucket is as good as new
    return True


# -- claiming -----------------------------------------------------------------------------------


def claim(
    tx: Tx,
    now: int,
    owner: str,
    lease_ms: int,
    limit: int,
    limited: Callable[[str], bool] = lambda _: True,
) -> list[QueueItem]:
    """Lease up to ``limit`` due items, holding back those concurrency or throttle refuse.

    Items are offered in :meth:`Tx.claim` order; a refused one is blocked (concurrency) or moved
    to its reserved start (throttle) and the next page is looked at, up to
    :data:`CLAIM_ROUNDS` pages. ``limited(function_id)`` says whether a function's runs may have
    flow keys (False skips reading the run: for functions known to have no such limits).
    """
    offer = _Offer(tx, now, owner, now + lease_ms)
    for _ in range(CLAIM_ROUNDS):
        wanted = limit - len(offer.leased)
        if wanted <= 0:
            break
        candidates = tx.claim_candidates(now, wanted)
        if not candidates:
            break
        keys = {
            c.item.item_id: _flow_keys(tx, c.item) if limited(c.item.function_id) else None
            for c in candidates
        }
        tx.lock_keys([k for fk in keys.values() for k in _lock_names(fk)])
        held_back = sum(not offer.take(c, keys[c.item.item_id]) for c in candidates)
        if held_back == 0 or len(candidates) < wanted:
            break
    return offer.leased


class _Offer:
    """One claim's decisions, with the executing steps per key counted once."""

    def __init__(self, tx: Tx, now: int, owner: str, until: int) -> None:
        self.tx, self.now, self.owner, self.until = tx, now, owner, until
        self.in_flight: dict[str, int] = {}
        self.leased: list[QueueItem] = []

    def take(self, candidate: ClaimCandidate, flow_keys: dict[str, Any] | None) -> bool:
        """Lease the candidate, or block or defer it; returns whether it was leased."""
        tx, item = self.tx, candidate.item
        slots: list[tuple[str, int]] = []
        if flow_keys is not None:
            slots = [(k, n) for k, n in flow_keys.get("concurrency", ())]
            full = self._first_full(slots)
            if full is not None:
                tx.block(item.item_id, full)
                return False
            throttle = flow_keys.get("throttle")
            if throttle and item.kind == "start" and not candidate.admitted:
                bucket, t_limit, period, burst = throttle
                start_at = gcra_reserve(tx, bucket, t_limit, period, burst, self.now)
                if start_at > self.now:
                    tx.defer_start(item.item_id, start_at)
                    return False
        tx.lease(item.item_id, self.owner, self.until, [k for k, _ in slots])
        self.leased.append(replace(item, lease_owner=self.owner, lease_expires_at=self.until))
        for key, slot_limit in slots:
            self.in_flight[key] += 1
            # Free slots and blocked items at once (after a node died holding slots, say):
            # make as many claimable as there are free slots.
            spare = slot_limit - self.in_flight[key]
            if spare > 0:
                tx.unblock(key, spare)
        return True

    def _first_full(self, slots: Sequence[tuple[str, int]]) -> str | None:
        for key, slot_limit in slots:
            if key not in self.in_flight:
                self.in_flight[key] = self.tx.count_in_flight(key, self.now)
            if self.in_flight[key] >= slot_limit:
                return key
        return None


def _flow_keys(tx: Tx, item: QueueItem) -> dict[str, Any] | None:
    if item.kind not in INVOCATION_KINDS:
        return None
    run = tx.get_run(item.run_id)
    return run.flow_keys if run is not None else None


def _lock_names(flow_keys: dict[str, Any] | None) -> list[str]:
    if not flow_keys:
        return []
    names = [k for k, _ in flow_keys.get("concurrency", ())]
    if flow_keys.get("throttle"):
        names.append(flow_keys["throttle"][0])
    return names


def release_slots(tx: Tx, flow_keys: Mapping[str, Any] | None) -> None:
    """An invocation holding these keys ended (its item acked, released or deleted): let the
    longest-waiting blocked item of each key be claimed."""
    if flow_keys:
        keys = [key for key, _ in flow_keys.get("concurrency", ())]
        # Under the keys' locks: a claim blocking items of these keys right now commits first,
        # so the items it blocked are seen here (otherwise they would wait for the sweep).
        tx.lock_keys(keys)
        for key in keys:
            tx.unblock(key, 1)


def sweep_blocked(tx: Tx, now: int, lifted: Callable[[str], bool] = lambda _: False) -> int:
    """Unblock one item of every key that has blocked items and nothing executing (the slot
    holder's node died, or its run was cancelled without an ack), and every item of a key whose
    limit was ``lifted`` (its function was synced again without it); returns how many."""
    freed = 0
    for key in tx.blocked_keys():
        tx.lock_keys([key])
        if lifted(key):
            freed += tx.unblock(key, LIFTED_BATCH)
        elif tx.count_in_flight(key, now) == 0:
            freed += tx.unblock(key, 1)
    return freed


def function_of_key(key: str) -> str | None:
    """The function a concurrency key is scoped to; None for keys shared by a scope."""
    scope, _, rest = key.partition(":")
    return rest.partition(":")[0] if scope == "f" else None
