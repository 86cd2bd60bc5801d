"""JSON responses and errors in one shape: ``{"error": "...", "code": "...", "status": N}``."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from stepwell.errors import NotFound, PayloadTooLarge, StepwellError


class JSON(Response):
    """A JSON response serialised with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(status: int, message: str, code: str = "invalid_request", **extra: Any) -> JSON:
    """An error body that both official SDKs understand (TS reads ``status`` from the body)."""
    return JSON({"error": message, "code": code, "status": status, **extra}, status_code=status)


def from_exception(exc: StepwellError) -> JSON:
    """Map a stepwell error to its HTTP status."""
    if isinstance(exc, NotFound):
        return error(404, str(exc), exc.code)
    if isinstance(exc, PayloadTooLarge):
        return error(413, str(exc), exc.code)
    return error(400, str(exc), exc.code)
