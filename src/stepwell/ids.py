"""Identifiers: ULIDs, sortable by creation time, for events, runs, waits and nodes.

Ids are generated in ULID's monotonic mode: the 80 random bits are drawn once per millisecond,
and every later id of the same millisecond is the previous one plus one. So ids of one process
are strictly increasing, in creation order, also as strings (event ids order events by arrival),
and a clock that steps back does not reorder them: the generator stays on the last millisecond
it used. Two processes stay apart by their random draws (2^79 values each millisecond; the draw
keeps the top bit clear, so counting up never runs past the random field). A forked child draws
afresh instead of repeating its parent's sequence.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base 32
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
"""Two characters for each 10-bit value."""
_LOW_BITS = 20
"""The last four characters, re-encoded on every id; the 22 before them only when they change."""
_LOW_MASK = (1 << _LOW_BITS) - 1


def encode(value: int) -> str:
    """A 128-bit value as 26 Crockford base-32 characters (ULID's text form)."""
    return _encode(value, 26)


def _encode(value: int, chars: int) -> str:
    out = []
    for _ in range(chars // 2):
        out.append(_PAIRS[value & 0x3FF])
        value >>= 10
    if chars % 2:
        out.append(_ALPHABET[value & 0x1F])
    return "".join(reversed(out))


class MonotonicIds:
    """A thread-safe source of ULIDs in monotonic mode (see the module docstring)."""

    __slots__ = ("_high", "_last_ms", "_lock", "_prefix", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._value = 0
        self._high = -1
        self._prefix = ""

    def reseed(self) -> None:
        """Forget the current millisecond, so that the next id draws new random bits."""
        self._last_ms = -1
        self._lock = threading.Lock()  # a fork may have copied it held

    def new(self, now_ms: int | None = None) -> str:
        """The next id; ``now_ms`` (epoch milliseconds) defaults to the wall clock."""
        ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        with self._lock:
            if ms > self._last_ms:
                self._last_ms = ms
                random = int.from_bytes(os.urandom(10), "big") >> 1
                value = (ms << 80) | random
            else:
                value = self._value + 1  # same millisecond, or the clock stepped back
            self._value = value
            high = value >> _LOW_BITS
            if high != self._high:
                self._high = high
                self._prefix = _encode(high, 22)
            low = value & _LOW_MASK
            return self._prefix + _PAIRS[low >> 10] + _PAIRS[low & 0x3FF]


_IDS = MonotonicIds()
os.register_at_fork(after_in_child=_IDS.reseed)


def new_id() -> str:
    """A new ULID as 26 Crockford base-32 characters, greater than every id this process made."""
    return _IDS.new()
