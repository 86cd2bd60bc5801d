"""Control flow that user code must never swallow: derives from ``BaseException``, not exported."""

from __future__ import annotations


class Interrupt(BaseException):
    """Root of the SDK's internal control flow."""


class NestedStepError(Interrupt):
    """A step API was called from inside a ``step.run`` body."""
