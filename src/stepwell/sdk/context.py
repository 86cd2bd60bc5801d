"""What a handler receives: the run's event(s), ids, the step API and a replay-aware logger."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from stepwell.sdk.events import Event, EventModel
from stepwell.sdk.execution import Execution
from stepwell.sdk.step import Step


class ReplayAwareLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger that stays quiet while memoized steps are replayed, so each line appears once."""

    def __init__(self, logger: logging.Logger, execution: Execution, run_id: str) -> None:
        super().__init__(logger, {"run_id": run_id})
        self._execution = execution

    def isEnabledFor(self, level: int) -> bool:
        return not self._execution.replaying and self.logger.isEnabledFor(level)


class RunView:
    """What every handler sees of its run (the step API is added by :class:`Context`)."""

    def __init__(
        self,
        *,
        event: Event,
        events: Sequence[Event],
        data: EventModel | dict[str, Any],
        run_id: str,
        function_id: str,
        attempt: int,
        logger: logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self.event = event
        self.events = list(events)
        self.data = data
        self.run_id = run_id
        self.function_id = function_id
        self.attempt = attempt
        self.logger = logger


class Context(RunView):
    """The handler's view of its run.

    Attributes:
        event: the event that started the run (the first one of a batch).
        events: every event of the run (a batch), else ``[event]``.
        data: ``event.data``, validated into the function's :class:`~stepwell.EventModel` when
            its trigger is one, else the plain dict.
        run_id: the run's id.
        function_id: the function's composite id ``<app>-<fn>``.
        attempt: 0-based attempt of the current step (or of the handler's own code).
        step: the step API.
        logger: a logger muted during replay.
    """

    def __init__(self, *, step: Step, **view: Any) -> None:
        super().__init__(**view)
        self.step = step
