"""Every error stepwell raises on purpose.

The tree::

    StepwellError                  root; each class has a wire ``code`` and a ``retriable`` flag
    ├── ConfigError                bad function, trigger, cron, expression or option
    ├── EventError                 an event that cannot be accepted (name, data, size, type)
    │   └── EventValidationError   event data rejected by its pydantic model
    ├── PayloadTooLarge            a body, event or step output past its configured limit
    ├── NotFound                   unknown run, event, function or app
    ├── NonRetriableError          raised by user code: fail now, no more attempts
    ├── RetryAfterError            raised by user code: try again at a given time
    ├── StepError                  a step failed for good; raised at the step call site on replay
    ├── InvokeTimeoutError         ``step.invoke`` waited longer than its timeout (a StepError)
    ├── NonDeterminismError        replay met a step order that contradicts the memo
    ├── StoreError                 the store could not do what was asked (closed, locked, corrupt)
    └── ExpressionError            a CEL expression failed to evaluate (engine.expressions)

Engine control flow (suspending a handler while a run sleeps or waits) derives from
``BaseException`` in :mod:`stepwell.sdk.interrupts` so that user ``except Exception`` blocks can
never swallow it; it is not exported.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any


class StepwellError(Exception):
    """Root of every stepwell error."""

    code: str = "stepwell_error"
    retriable: bool = True


class ConfigError(StepwellError):
    """A function, trigger or option is invalid; raised when it is registered."""

    code = "config_invalid"
    retriable = False


class EventError(StepwellError):
    """An event cannot be accepted."""

    code = "event_invalid"
    retriable = False


class EventValidationError(EventError):
    """Event data does not match the pydantic model declared for it."""

    code = "event_data_invalid"


class PayloadTooLarge(StepwellError):
    """A body, event or step output is past its configured limit."""

    code = "payload_too_large"
    retriable = False


class NotFound(StepwellError):
    """An unknown run, event, function or app."""

    code = "not_found"
    retriable = False


class NonRetriableError(StepwellError):
    """Raise from a handler or step to fail at once, without further attempts."""

    code = "non_retriable_error"
    retriable = False


class RetryAfterError(StepwellError):
    """Raise from a handler or step to be retried at a given time.

    Args:
        message: what went wrong.
        retry_after: a delay (``timedelta``, seconds as a number, or a duration string such as
            ``"30s"``) or an absolute ``datetime``.
    """

    code = "retry_after_error"

    def __init__(self, message: str, retry_after: timedelta | datetime | float | str) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StepError(StepwellError):
    """A step failed for good (its retries are spent, or it raised ``NonRetriableError``).

    Raised where the handler awaits the step, so the handler may catch it. If uncaught it fails
    the run without further retries.

    Attributes:
        step_id: the step's id as the author wrote it.
        name: the original error's class name.
        stack: the original error's formatted traceback, when known.
    """

    code = "step_errored"
    retriable = False

    def __init__(self, step_id: str, name: str, message: str, stack: str | None = None) -> None:
        super().__init__(f"step {step_id!r} failed: {name}: {message}")
        self.step_id = step_id
        self.name = name
        self.error_message = message
        self.stack = stack

    @classmethod
    def from_wire(cls, step_id: str, error: dict[str, Any]) -> StepError:
        """Build from a serialised error ``{"name", "message", "stack"?}``."""
        if error.get("name") == "InngestInvokeTimeoutError":
            return InvokeTimeoutError(step_id, error.get("name", "Error"), error.get("message", ""))
        return cls(
            step_id,
            str(error.get("name", "Error")),
            str(error.get("message", "")),
            error.get("stack"),
        )


class InvokeTimeoutError(StepError):
    """``step.invoke`` waited longer than its timeout for the invoked run to finish."""

    code = "invoke_timeout"


class NonDeterminismError(StepwellError):
    """Replay met a step that contradicts the memo: handler code between steps changed."""

    code = "non_deterministic_function"
    retriable = False


class StoreError(StepwellError):
    """The store could not do what was asked."""

    code = "store_error"
