"""Functions the engine knows: registration configs parsed, validated and indexed by trigger.

Configs arrive in the shape of Inngest's ``FunctionConfig`` (PROTOCOL.md §1.3.2) whether they come
from stepwell's SDK in-process or from an SDK over HTTP, so there is one parser and one set of
errors. Every error names the function and the field.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stepwell.engine.cron import CronSpec
from stepwell.engine.expressions import Expression, compile_expression, equality_paths
from stepwell.engine.flow import NO_FLOW, FlowSpec, parse_flow
from stepwell.engine.retry import DEFAULT_RETRIES, MAX_RETRIES
from stepwell.errors import ConfigError
from stepwell.protocol.durations import parse_duration

MAX_TRIGGERS = 10
MAX_CANCELS = 5


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _TriggerIn(_Loose):
    event: str | None = None
    expression: str | None = None
    cron: str | None = None


class _CancelIn(_Loose):
    event: str
    if_: str | None = Field(default=None, alias="if")
    timeout: str | None = None


class _RetriesIn(_Loose):
    attempts: int = DEFAULT_RETRIES


class _StepIn(_Loose):
    id: str = "step"
    runtime: dict[str, Any] = {}
    retries: _RetriesIn = _RetriesIn()


class _FunctionIn(_Loose):
    id: str = Field(min_length=1)
    name: str | None = None
    triggers: list[_TriggerIn] = []
    steps: dict[str, _StepIn] = {}
    cancel: list[_CancelIn] = []


@dataclass(frozen=True, slots=True)
class EventTrigger:
    """Start runs for events named ``event`` (``prefix`` for wildcards) passing ``expression``."""

    event: str
    expression: Expression | None = None
    prefix: str | None = None

    def matches_name(self, name: str) -> bool:
        return name.startswith(self.prefix) if self.prefix is not None else name == self.event


@dataclass(frozen=True, slots=True)
class CancelSpec:
    """Cancel a run when an ``event`` passing ``expression`` arrives within ``timeout_ms``."""

    event: str
    expression: Expression | None
    timeout_ms: int | None
    key_paths: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A function as the engine runs it."""

    function_id: str
    app_id: str
    name: str
    version: int
    retries: int
    event_triggers: tuple[EventTrigger, ...]
    crons: tuple[CronSpec, ...]
    cancels: tuple[CancelSpec, ...]
    url: str | None
    config: Mapping[str, Any] = field(default_factory=dict)
    flow: FlowSpec = NO_FLOW

    @property
    def max_attempts(self) -> int:
        return self.retries + 1


FLOW_CONTROL = (
    "concurrency",
    "throttle",
    "rateLimit",
    "debounce",
    "batchEvents",
    "priority",
    "singleton",
    "idempotency",
    "timeouts",
)
"""The flow-control fields of a ``FunctionConfig`` (parsed by :mod:`stepwell.engine.flow`)."""

log = logging.getLogger("stepwell.registry")


def parse_function(app_id: str, raw: Mapping[str, Any], *, version: int = 0) -> FunctionSpec:
    """Validate one ``FunctionConfig``; raise :class:`ConfigError` naming function and field."""
    fid = str(raw.get("id") or "?")
    try:
        cfg = _FunctionIn.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"function {fid!r}: field {loc!r}: {first['msg']}") from None
    if len(cfg.triggers) > MAX_TRIGGERS:
        raise ConfigError(f"function {fid!r}: field 'triggers': at most {MAX_TRIGGERS} triggers")
    if len(cfg.cancel) > MAX_CANCELS:
        raise ConfigError(f"function {fid!r}: field 'cancel': at most {MAX_CANCELS} conditions")
    events, crons = _parse_triggers(fid, cfg.triggers)
    step = next(iter(cfg.steps.values()), _StepIn())
    retries = step.retries.attempts
    if not 0 <= retries <= MAX_RETRIES:
        raise ConfigError(
            f"function {fid!r}: field 'steps.step.retries.attempts': must be 0 to {MAX_RETRIES}, "
            f"not {retries}"
        )
    url = step.runtime.get("url") if step.runtime.get("type") == "http" else None
    flow = parse_flow(cfg.id, raw)
    return FunctionSpec(
        function_id=cfg.id,
        app_id=app_id,
        name=cfg.name or cfg.id,
        version=version,
        retries=retries,
        event_triggers=events,
        crons=crons,
        cancels=tuple(_parse_cancel(fid, i, c) for i, c in enumerate(cfg.cancel)),
        url=url,
        config=dict(raw),
        flow=flow,
    )


def _parse_triggers(
    fid: str, triggers: list[_TriggerIn]
) -> tuple[tuple[EventTrigger, ...], tuple[CronSpec, ...]]:
    events: list[EventTrigger] = []
    crons: list[CronSpec] = []
    for i, t in enumerate(triggers):
        where = f"function {fid!r}: field 'triggers[{i}]"
        if t.cron is not None:
            try:
                crons.append(CronSpec.parse(t.cron))
            except ConfigError as exc:
                raise ConfigError(f"{where}.cron': {exc}") from None
            continue
        if not t.event:
            raise ConfigError(f"{where}': a trigger needs 'event' or 'cron'")
        expression = None
        if t.expression:
            try:
                expression = compile_expression(t.expression, field="expression")
            except ConfigError as exc:
                raise ConfigError(f"{where}.expression': {exc}") from None
        prefix = t.event[:-1] if t.event.endswith("*") else None
        events.append(EventTrigger(t.event, expression, prefix))
    return tuple(events), tuple(crons)


def _parse_cancel(fid: str, i: int, c: _CancelIn) -> CancelSpec:
    where = f"function {fid!r}: field 'cancel[{i}]"
    expression = None
    if c.if_:
        try:
            expression = compile_expression(c.if_, field="if")
        except ConfigError as exc:
            raise ConfigError(f"{where}.if': {exc}") from None
    timeout = parse_duration(c.timeout, field=f"cancel[{i}].timeout") if c.timeout else None
    key_paths = equality_paths(c.if_) if c.if_ else None
    return CancelSpec(c.event, expression, timeout, key_paths)


class Registry:
    """The functions of every synced app, indexed for routing an event by name."""

    def __init__(self) -> None:
        self._functions: dict[str, FunctionSpec] = {}
        self._by_event: dict[str, list[tuple[FunctionSpec, EventTrigger]]] = {}
        self._wildcards: list[tuple[FunctionSpec, EventTrigger]] = []
        self._limits_claims = False
        self.paused: frozenset[str] = frozenset()
        """Functions whose triggers start no run (events are recorded as skipped)."""

    def replace_app(self, app_id: str, specs: Iterable[FunctionSpec]) -> None:
        """Swap an app's functions for ``specs`` and rebuild the indexes."""
        kept = {k: v for k, v in self._functions.items() if v.app_id != app_id}
        kept.update({s.function_id: s for s in specs})
        self._functions = kept
        self._reindex()

    def _reindex(self) -> None:
        by_event: dict[str, list[tuple[FunctionSpec, EventTrigger]]] = {}
        wildcards: list[tuple[FunctionSpec, EventTrigger]] = []
        for spec in self._functions.values():
            for trigger in spec.event_triggers:
                if trigger.prefix is not None:
                    wildcards.append((spec, trigger))
                else:
                    by_event.setdefault(trigger.event, []).append((spec, trigger))
        self._by_event, self._wildcards = by_event, wildcards
        self._limits_claims = any(s.flow.limits_claims for s in self._functions.values())

    @property
    def limits_claims(self) -> bool:
        """Whether any function has concurrency or throttle limits (claims need flow control)."""
        return self._limits_claims

    def get(self, function_id: str) -> FunctionSpec | None:
        return self._functions.get(function_id)

    def all(self) -> list[FunctionSpec]:
        return list(self._functions.values())

    def candidates(self, event_name: str) -> list[tuple[FunctionSpec, EventTrigger]]:
        """Triggers whose name pattern matches (their ``expression`` is still to be checked)."""
        exact = self._by_event.get(event_name, [])
        if not self._wildcards:
            return exact
        return exact + [(s, t) for s, t in self._wildcards if t.matches_name(event_name)]
