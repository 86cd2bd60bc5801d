"""The in-process driver: calls handlers living in the engine's own process."""

from __future__ import annotations

from collections.abc import Mapping

from stepwell.engine.drivers.base import FunctionUnavailable
from stepwell.engine.registry import FunctionSpec
from stepwell.protocol.invocation import Checkpointer, Handler
from stepwell.protocol.ops import CallRequest, CallResult


class InProcessDriver:
    """Direct calls, with step-by-step checkpointing: consecutive steps run in one invocation."""

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self.handlers = dict(handlers)

    async def invoke(
        self, spec: FunctionSpec, request: CallRequest, checkpointer: Checkpointer
    ) -> CallResult:
        handler = self.handlers.get(spec.function_id)
        if handler is None:
            raise FunctionUnavailable(
                f"function {spec.function_id!r} is not loaded in this process"
            )
        return await handler(request, checkpointer)
