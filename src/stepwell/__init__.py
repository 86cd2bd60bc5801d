"""stepwell: durable, event-driven functions for Python, self-hosted.

Declare functions on an :class:`App`; run them with ``stepwell dev app.py`` (embedded engine on
SQLite) or serve them over HTTP; send events with :meth:`App.send`.
"""

from __future__ import annotations

from stepwell.errors import (
    ConfigError,
    EventError,
    EventValidationError,
    InvokeTimeoutError,
    NonDeterminismError,
    NonRetriableError,
    NotFound,
    PayloadTooLarge,
    RetryAfterError,
    StepError,
    StepwellError,
)
from stepwell.sdk.app import App
from stepwell.sdk.context import Context
from stepwell.sdk.events import Event, EventModel
from stepwell.sdk.flow import (
    Batch,
    Concurrency,
    Debounce,
    RateLimit,
    Singleton,
    Throttle,
    Timeouts,
)
from stepwell.sdk.function import Function
from stepwell.sdk.step import Step
from stepwell.sdk.triggers import CancelOn, Cron, Trigger

__version__ = "0.1.0"

__all__ = [
    "App",
    "Batch",
    "CancelOn",
    "Concurrency",
    "ConfigError",
    "Context",
    "Cron",
    "Debounce",
    "Event",
    "EventError",
    "EventModel",
    "EventValidationError",
    "Function",
    "InvokeTimeoutError",
    "NonDeterminismError",
    "NonRetriableError",
    "NotFound",
    "PayloadTooLarge",
    "RateLimit",
    "RetryAfterError",
    "Singleton",
    "Step",
    "StepError",
    "StepwellError",
    "Throttle",
    "Timeouts",
    "Trigger",
    "__version__",
]
