"""Step keys: how a step id written by the author becomes the key of its memo entry.

The key is the lowercase hex SHA-1 of the id; the n-th repeat of an id within one execution
(n >= 1) hashes ``"<id>:<n>"``. This is exactly how Inngest's SDKs hash, so memos written by
stepwell's SDK and by the official SDKs are interchangeable.
"""

from __future__ import annotations

import hashlib

COMPLETE_KEY = hashlib.sha1(b"complete").hexdigest()


def hash_step_id(step_id: str) -> str:
    """The memo key for an already de-duplicated step id."""
    return hashlib.sha1(step_id.encode()).hexdigest()


class StepCounter:
    """Assigns keys in call order, suffixing repeats of the same id (``id``, ``id:1``, ``id:2``)."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def next_key(self, step_id: str) -> tuple[str, str]:
        """Return ``(key, unique_id)`` for the next use of ``step_id``."""
        n = self._seen.get(step_id, 0)
        self._seen[step_id] = n + 1
        unique = step_id if n == 0 else f"{step_id}:{n}"
        return hash_step_id(unique), unique
