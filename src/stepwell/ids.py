"""Identifiers: ULIDs, sortable by creation time, for events, runs, waits and nodes."""

from __future__ import annotations

from ulid import ULID


def new_id() -> str:
    """A new ULID as 26 Crockford base-32 characters."""
    return str(ULID())
