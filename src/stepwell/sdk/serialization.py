"""Turning step results and event data into plain JSON values.

Step results are round-tripped through JSON when first produced, so the value a handler sees the
first time is exactly the value it sees on every replay.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel

from stepwell.errors import NonRetriableError


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps(value: Any) -> bytes:
    """Serialise ``value`` (JSON types, dataclasses, datetimes, UUIDs, pydantic models)."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


def to_json_value(value: Any, *, what: str, limit: int | None = None) -> Any:
    """Return ``value`` as plain JSON values, or raise ``NonRetriableError`` naming ``what``."""
    try:
        raw = dumps(value)
    except TypeError as exc:
        raise NonRetriableError(f"{what} is not JSON serialisable: {exc}") from None
    if limit is not None and len(raw) > limit:
        raise NonRetriableError(f"{what} is {len(raw)} bytes, over the limit of {limit} bytes")
    return orjson.loads(raw)


def serialize_error(exc: BaseException) -> dict[str, Any]:
    """The wire form of an error: ``{"name", "message", "stack"}``."""
    import traceback

    return {
        "name": type(exc).__name__,
        "message": str(exc),
        "stack": "".join(traceback.format_exception(exc)),
    }
