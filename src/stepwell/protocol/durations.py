"""Durations and points in time as they appear in configuration and on the wire.

Durations are Go-style strings (``"500ms"``, ``"30s"``, ``"1h30m"``, ``"1.5h"``) extended with
days and weeks (``"3d"``, ``"1w"``), which is what Inngest's SDKs send. Inside stepwell every
duration is an ``int`` of milliseconds and every point in time an ``int`` of epoch milliseconds.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from stepwell.errors import ConfigError

_MS_PER_UNIT: dict[str, int] = {
    "ms": 1,
    "s": 1_000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
}

# Largest first; weeks are accepted but never emitted, since "7d" reads more plainly than "1w".
_FORMAT_UNITS: tuple[tuple[str, int], ...] = (
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
)

_NUMBER_CHARS = frozenset("0123456789.")
_UNIT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZµ")

_DURATION_HINT = (
    'use a Go-style duration such as "500ms", "30s", "1h30m", "1.5h" or "3d" '
    "(units ms, s, m, h, d, w), a number of seconds, or a timedelta"
)
_TIME_HINT = (
    "use a timezone-aware datetime, an ISO-8601 string with an offset "
    '(e.g. "2030-01-01T09:00:00Z") or epoch milliseconds'
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def parse_duration(value: str | int | float | timedelta, *, field: str = "duration") -> int:
    """Convert a configured duration to milliseconds.

    Args:
        value: a Go-style string with the extra units ``d`` (24 h) and ``w`` (7 d) (``"1h30m"``);
            an ``int`` or ``float`` number of **seconds**; or a ``timedelta``. Sub-millisecond
            remainders are dropped, as Go drops sub-nanosecond ones.
        field: the name of the option being parsed, quoted in error messages.

    Returns:
        The duration in milliseconds, never negative.

    Raises:
        ConfigError: the value is empty, negative, not finite, has an unknown unit, or is not a
            duration at all.
    """
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise _duration_error(field, value, "it is negative")
        return value // _ONE_MS
    if isinstance(value, bool):
        # bool is an int subclass; True seconds is surely a mistake.
        raise _duration_error(field, value, "a bool is not a duration")
    if isinstance(value, int | float):
        return _seconds_to_ms(value, field)
    if isinstance(value, str):
        return _parse_duration_string(value, field)
    raise _duration_error(field, value, f"a {type(value).__name__} is not a duration")


def format_duration(ms: int) -> str:
    """Format milliseconds as a compact Go-style string, largest unit first.

    Uses the units ``d``, ``h``, ``m``, ``s`` and ``ms`` (``90_000`` → ``"1m30s"``, ``0`` →
    ``"0s"``); :func:`parse_duration` reads the result back to the same value.

    Raises:
        ValueError: ``ms`` is negative.
    """
    if ms < 0:
        raise ValueError(f"cannot format a negative duration: {ms} ms")
    if ms == 0:
        return "0s"
    parts: list[str] = []
    rest = ms
    for unit, size in _FORMAT_UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_time(value: datetime | str | int | float, *, field: str = "time") -> int:
    """Convert a configured point in time to epoch milliseconds.

    Args:
        value: a timezone-aware ``datetime``; an ISO-8601 string carrying an offset or ``Z``
            (``"2030-01-01T09:00:00+02:00"``); or an ``int``/``float`` of epoch **milliseconds**.
        field: the name of the option being parsed, quoted in error messages.

    Raises:
        ConfigError: the datetime or string has no time zone, the string is not ISO-8601, or
            the number is not finite.
    """
    if isinstance(value, datetime):
        return _aware_to_ms(value, field, value)
    if isinstance(value, bool):
        raise _time_error(field, value, "a bool is not a point in time")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _time_error(field, value, "it is not a finite number")
        return math.floor(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _time_error(field, value, "it is not an ISO-8601 date and time") from None
        return _aware_to_ms(parsed, field, value)
    raise _time_error(field, value, f"a {type(value).__name__} is not a point in time")


def _aware_to_ms(moment: datetime, field: str, original: object) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive time means a different instant on every host; refuse to guess the zone.
        raise _time_error(field, original, "it has no time zone")
    return (moment - _EPOCH) // _ONE_MS


def _seconds_to_ms(seconds: int | float, field: str) -> int:
    if isinstance(seconds, float) and not math.isfinite(seconds):
        raise _duration_error(field, seconds, "it is not a finite number")
    if seconds < 0:
        raise _duration_error(field, seconds, "it is negative")
    if isinstance(seconds, int):
        return seconds * 1000
    # The float's shortest repr is what the author typed; 0.57 * 1000 in binary is 569.99….
    return int(Decimal(repr(seconds)) * 1000)


def _parse_duration_string(text: str, field: str) -> int:
    if not text:
        raise _duration_error(field, text, "it is empty")
    if text.startswith("-"):
        raise _duration_error(field, text, "it is negative")
    if text == "0":
        # Go's one unit-less form.
        return 0
    total = Decimal(0)
    pos = 0
    while pos < len(text):
        start = pos
        number, pos = _take(text, pos, _NUMBER_CHARS)
        unit, pos = _take(text, pos, _UNIT_CHARS)
        if not number:
            raise _duration_error(field, text, f"unexpected {text[start]!r} at position {start}")
        if number == "." or number.count(".") > 1:
            raise _duration_error(field, text, f"{number!r} is not a number")
        if not unit:
            raise _duration_error(field, text, f"{number!r} has no unit")
        size = _MS_PER_UNIT.get(unit)
        if size is None:
            raise _duration_error(field, text, f"unknown unit {unit!r}")
        total += Decimal(number) * size
    return int(total)


def _take(text: str, pos: int, allowed: frozenset[str]) -> tuple[str, int]:
    end = pos
    while end < len(text) and text[end] in allowed:
        end += 1
    return text[pos:end], end


def _duration_error(field: str, value: object, reason: str) -> ConfigError:
    return ConfigError(f"{field}: invalid duration {value!r}: {reason}; {_DURATION_HINT}")


def _time_error(field: str, value: object, reason: str) -> ConfigError:
    return ConfigError(f"{field}: invalid time {value!r}: {reason}; {_TIME_HINT}")
