"""The public API is declared once; this pins it so a change is always deliberate."""

from __future__ import annotations

import stepwell

EXPECTED = [
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


def test_public_names_are_pinned_and_sorted() -> None:
    assert stepwell.__all__ == EXPECTED
    assert sorted(stepwell.__all__) == stepwell.__all__
    for name in stepwell.__all__:
        assert hasattr(stepwell, name)


def test_every_error_has_a_code_and_a_retriable_flag() -> None:
    errors = [
        getattr(stepwell, n)
        for n in EXPECTED
        if n.endswith("Error") or n in {"NotFound", "PayloadTooLarge"}
    ]
    for cls in errors:
        assert issubclass(cls, stepwell.StepwellError)
        assert isinstance(cls.code, str) and cls.code
        assert isinstance(cls.retriable, bool)
