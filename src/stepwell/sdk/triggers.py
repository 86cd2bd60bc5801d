"""What starts a function (event and cron triggers) and what cancels its runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from stepwell.errors import ConfigError
from stepwell.protocol.durations import format_duration, parse_duration
from stepwell.sdk.events import EventModel


@dataclass(frozen=True, slots=True)
class Trigger:
    """Start a run for each event named ``event``.

    Attributes:
        event: an event name; a trailing wildcard matches a prefix (``"app/*"``, ``"app/user.*"``).
        if_exp: optional CEL expression over ``event``; the run starts only when it is true.
    """

    event: str
    if_exp: str | None = None

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"event": self.event}
        if self.if_exp:
            config["expression"] = self.if_exp
        return config


@dataclass(frozen=True, slots=True)
class Cron:
    """Start a run on a schedule.

    Attributes:
        spec: five-field cron, optionally prefixed with a time zone: ``"TZ=Europe/Paris 0 9 * * *"``.
            Without a prefix the schedule is in UTC.
    """

    spec: str

    def to_config(self) -> dict[str, Any]:
        return {"cron": self.spec}


@dataclass(frozen=True, slots=True)
class CancelOn:
    """Cancel a run when a matching event arrives.

    Attributes:
        event: the name of the cancelling event.
        match: a dotted path compared between the trigger and the cancelling event
            (``"data.order_id"``); shorthand for ``if_exp="event.data.order_id == async.data.order_id"``.
        if_exp: CEL over ``event`` (the run's trigger) and ``async`` (the cancelling event).
        timeout: how long after the run starts the condition stays armed; default: as long as the run.
    """

    event: str
    match: str | None = None
    if_exp: str | None = None
    timeout: timedelta | str | int | None = None

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"event": self.event}
        expression = condition_expression(self.match, self.if_exp, what="cancel_on")
        if expression:
            config["if"] = expression
        if self.timeout is not None:
            config["timeout"] = format_duration(
                parse_duration(self.timeout, field="cancel_on.timeout")
            )
        return config


TriggerLike = str | Trigger | Cron | type[EventModel]


def normalise_trigger(value: object, *, function_id: str) -> Trigger | Cron:
    """Accept the forms ``@app.function(trigger=...)`` takes and return a trigger object."""
    if isinstance(value, Trigger | Cron):
        return value
    if isinstance(value, str):
        return Trigger(value)
    if isinstance(value, type) and issubclass(value, EventModel):
        if not value.event_name:
            raise ConfigError(
                f"function {function_id!r}: trigger {value.__name__} has no event name; "
                "declare it as class X(stepwell.EventModel, name='app/event')"
            )
        return Trigger(value.event_name)
    raise ConfigError(
        f"function {function_id!r}: trigger must be an event name, stepwell.Trigger, "
        f"stepwell.Cron or an EventModel class, not {type(value).__name__}"
    )


def condition_expression(match: str | None, if_exp: str | None, *, what: str) -> str | None:
    """The CEL condition for ``match`` or ``if_exp`` (at most one of them)."""
    if match and if_exp:
        raise ConfigError(f"{what}: pass either match or if_exp, not both")
    if match:
        path = match.removeprefix("event.").removeprefix("async.")
        if not all(part.isidentifier() for part in path.split(".")):
            raise ConfigError(
                f"{what}: match must be a dotted path like 'data.order_id', not {match!r}"
            )
        return f"event.{path} == async.{path}"
    return if_exp or None
