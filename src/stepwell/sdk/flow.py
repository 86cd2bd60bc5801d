"""Flow-control options of ``@app.function``: each turns into the matching field of the
function's registration config (Inngest's ``FunctionConfig``), which the engine enforces.

Keys are CEL expressions over the triggering event (``"event.data.user_id"``). Durations are
``timedelta``, a number of seconds, or a string such as ``"30s"``, ``"5m"``, ``"1h30m"``.
See docs/flow-control.md for the exact semantics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from stepwell.errors import ConfigError
from stepwell.protocol.durations import format_duration, parse_duration

Duration = timedelta | int | float | str


def _duration(value: Duration, field: str) -> str:
    return format_duration(parse_duration(value, field=field))


def _with_key(config: dict[str, Any], key: str | None) -> dict[str, Any]:
    if key is not None:
        config["key"] = key
    return config


@dataclass(frozen=True, slots=True)
class Concurrency:
    """At most ``limit`` steps of this function executing at once (per ``key`` value).

    ``scope="env"`` (or ``"account"``) shares the limit with every function whose concurrency
    key has the same value; it needs a ``key``.
    """

    limit: int
    key: str | None = None
    scope: Literal["fn", "env", "account"] = "fn"

    def to_config(self) -> dict[str, Any]:
        return _with_key({"limit": self.limit, "scope": self.scope}, self.key)


@dataclass(frozen=True, slots=True)
class Throttle:
    """At most ``limit`` runs start per ``period`` (plus ``burst`` at once); excess runs wait
    their turn, in order, and are never dropped."""

    limit: int
    period: Duration
    burst: int = 1
    key: str | None = None

    def to_config(self) -> dict[str, Any]:
        config = {
            "limit": self.limit,
            "period": _duration(self.period, "throttle.period"),
            "burst": self.burst,
        }
        return _with_key(config, self.key)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` runs per ``period``; events over the limit start no run (recorded as
    skipped, with the reason)."""

    limit: int
    period: Duration
    key: str | None = None

    def to_config(self) -> dict[str, Any]:
        config = {"limit": self.limit, "period": _duration(self.period, "rate_limit.period")}
        return _with_key(config, self.key)


@dataclass(frozen=True, slots=True)
class Debounce:
    """Start one run, with the last event, once no event came for ``period``; never later
    than ``timeout`` after the first event."""

    period: Duration
    key: str | None = None
    timeout: Duration | None = None

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"period": _duration(self.period, "debounce.period")}
        if self.timeout is not None:
            config["timeout"] = _duration(self.timeout, "debounce.timeout")
        return _with_key(config, self.key)


@dataclass(frozen=True, slots=True)
class Batch:
    """Start one run with up to ``max_size`` events (``ctx.events``), at most ``timeout`` after
    the first. Only events passing ``if_exp`` are batched; others start a run alone."""

    max_size: int
    timeout: Duration
    key: str | None = None
    if_exp: str | None = None

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "maxSize": self.max_size,
            "timeout": _duration(self.timeout, "batch.timeout"),
        }
        if self.if_exp is not None:
            config["if"] = self.if_exp
        return _with_key(config, self.key)


@dataclass(frozen=True, slots=True)
class Singleton:
    """One unfinished run per ``key``: ``mode="skip"`` drops new runs while one runs,
    ``mode="cancel"`` cancels the running one and starts the new one."""

    key: str | None = None
    mode: Literal["skip", "cancel"] = "skip"

    def to_config(self) -> dict[str, Any]:
        return _with_key({"mode": self.mode}, self.key)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Cancel a run not started within ``start`` of its event, or not finished within
    ``finish`` of its first step."""

    start: Duration | None = None
    finish: Duration | None = None

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if self.start is not None:
            config["start"] = _duration(self.start, "timeouts.start")
        if self.finish is not None:
            config["finish"] = _duration(self.finish, "timeouts.finish")
        return config


def flow_config(
    function_id: str,
    *,
    concurrency: int | Concurrency | Sequence[Concurrency] | None = None,
    throttle: Throttle | None = None,
    rate_limit: RateLimit | None = None,
    debounce: Debounce | None = None,
    batch: Batch | None = None,
    priority: str | None = None,
    singleton: Singleton | None = None,
    idempotency: str | None = None,
    timeouts: Timeouts | None = None,
) -> dict[str, Any]:
    """The registration fields for the given options; raises :class:`ConfigError` naming the
    option when one has the wrong type. The engine checks values and combinations when the
    app is synced."""
    where = f"function {function_id!r}"
    config: dict[str, Any] = {}
    if concurrency is not None:
        if isinstance(concurrency, bool):
            raise ConfigError(f"{where}: concurrency takes an int or stepwell.Concurrency")
        if isinstance(concurrency, int):
            config["concurrency"] = [{"limit": concurrency}]
        else:
            limits = [concurrency] if isinstance(concurrency, Concurrency) else list(concurrency)
            for c in limits:
                _expect(where, "concurrency", c, Concurrency)
            config["concurrency"] = [c.to_config() for c in limits]
    options: list[tuple[str, str, Any, type]] = [
        ("throttle", "throttle", throttle, Throttle),
        ("rateLimit", "rate_limit", rate_limit, RateLimit),
        ("debounce", "debounce", debounce, Debounce),
        ("batchEvents", "batch", batch, Batch),
        ("singleton", "singleton", singleton, Singleton),
        ("timeouts", "timeouts", timeouts, Timeouts),
    ]
    for field, name, value, kind in options:
        if value is not None:
            _expect(where, name, value, kind)
            config[field] = value.to_config()
    for field, value in (("priority", priority), ("idempotency", idempotency)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"{where}: {field} takes a CEL expression string")
    if priority is not None:
        config["priority"] = {"run": priority}
    if idempotency is not None:
        config["idempotency"] = idempotency
    return config


def _expect(where: str, name: str, value: Any, kind: type) -> None:
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: {name} takes a stepwell.{kind.__name__}, not {value!r}")
