"""The driver seam: how the engine invokes a handler (in-process call, or HTTP)."""

from __future__ import annotations

from typing import Protocol

from stepwell.engine.registry import FunctionSpec
from stepwell.protocol.invocation import Checkpointer
from stepwell.protocol.ops import CallRequest, CallResult


class FunctionUnavailable(Exception):
    """The driver has no handler for the function right now (its app is not loaded)."""


class Driver(Protocol):
    """Invokes functions of one app."""

    async def invoke(
        self, spec: FunctionSpec, request: CallRequest, checkpointer: Checkpointer
    ) -> CallResult:
        """Invoke once. A driver that cannot checkpoint step by step ignores ``checkpointer``
        and reports every step in the result's ops."""
        ...
