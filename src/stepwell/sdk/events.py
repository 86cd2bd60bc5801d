"""Events as function authors see them, and typed event models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ValidationError

from stepwell.errors import EventError, EventValidationError

MAX_EVENT_NAME = 512


@dataclass(frozen=True, slots=True)
class Event:
    """An event: a name and JSON data.

    Attributes:
        name: e.g. ``"order/placed"``; at most 512 characters.
        data: a JSON object.
        id: optional; a user-given id de-duplicates the event for 24 hours. Accepted events
            carry the id the engine gave them.
        ts: epoch milliseconds; a future ``ts`` delays the runs it starts. Default: now.
        user: optional JSON object passed through untouched.
    """

    name: str
    data: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None
    ts: int | None = None
    user: Mapping[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """The JSON object sent to ``POST /e/{key}``."""
        wire: dict[str, Any] = {"name": self.name, "data": dict(self.data)}
        if self.id is not None:
            wire["id"] = self.id
        if self.ts is not None:
            wire["ts"] = self.ts
        if self.user:
            wire["user"] = dict(self.user)
        return wire

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> Event:
        """Build from the wire shape ``{id, name, data, user, ts}``. ``data`` is a copy: a
        handler that changes it changes nothing the engine holds."""
        data = wire.get("data")
        return cls(
            name=str(wire.get("name", "")),
            data=orjson.loads(orjson.dumps(data)) if data else {},
            id=wire.get("id"),
            ts=wire.get("ts"),
            user=wire.get("user") or {},
        )


class EventModel(BaseModel):
    """Base class for typed event data.

    Declare the event name once, as a class keyword; instances are the event's data::

        class OrderPlaced(stepwell.EventModel, name="order/placed"):
            order_id: str
            total: float

        app.send(OrderPlaced(order_id="o-1", total=9.5))

    A function triggered by ``OrderPlaced`` gets ``ctx.data`` as a validated ``OrderPlaced``.
    """

    event_name: ClassVar[str] = ""

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            validate_event_name(name)
            cls.event_name = name

    def to_event(self, *, id: str | None = None, ts: int | None = None) -> Event:
        """This data as an :class:`Event` under the model's name."""
        if not self.event_name:
            raise EventError(f"{type(self).__name__} has no event name: declare name=... on it")
        return Event(self.event_name, self.model_dump(mode="json"), id=id, ts=ts)

    @classmethod
    def parse_data(cls, data: Mapping[str, Any], *, context: str) -> EventModel:
        """Validate event data, raising :class:`EventValidationError` that names ``context``."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise EventValidationError(
                f"{context}: data of event {cls.event_name!r} does not match {cls.__name__}: "
                f"{_summarise(exc)}"
            ) from None


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def validate_event_name(name: object) -> str:
    """Return ``name`` if it is a usable event name, else raise :class:`EventError`."""
    if not isinstance(name, str) or not name.strip():
        raise EventError("event name must be a non-empty string")
    if len(name) > MAX_EVENT_NAME:
        raise EventError(
            f"event name is {len(name)} characters, over the limit of {MAX_EVENT_NAME}"
        )
    return name


def coerce_event(value: Event | EventModel | Mapping[str, Any]) -> Event:
    """Accept an :class:`Event`, a typed model instance or a wire dict."""
    if isinstance(value, Event):
        validate_event_name(value.name)
        return value
    if isinstance(value, EventModel):
        return value.to_event()
    if isinstance(value, Mapping):
        event = Event.from_wire(value)
        validate_event_name(event.name)
        return event
    raise EventError(f"cannot send {type(value).__name__}: pass stepwell.Event or an EventModel")
