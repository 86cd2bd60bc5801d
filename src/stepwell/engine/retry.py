"""When a failed attempt runs again: the backoff table, ``RetryAfterError`` and retry counts.

A function or step gets ``retries`` more attempts after its first (``DEFAULT_RETRIES`` = 4, so
5 attempts). Attempts are numbered from 0; after attempt ``n`` fails, attempt ``n + 1`` waits
:func:`backoff_ms` (``n``), unless the error was a ``RetryAfterError``, whose time
:func:`retry_at_ms` turns into an absolute due time.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from random import Random

from stepwell.errors import ConfigError
from stepwell.protocol.durations import parse_duration, parse_time

BACKOFF_SCHEDULE_MS: tuple[int, ...] = (
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    1_200_000,
    2_400_000,
    3_600_000,
    7_200_000,
)
"""Delay before each retry, by failed attempt: 15 s, 30 s, 1 m, … 2 h; later retries repeat 2 h."""

DEFAULT_RETRIES = 4
"""Retries after the first attempt when a function does not say (5 attempts in all)."""

MAX_RETRIES = 20
"""The most retries a function may ask for."""

MIN_RETRY_AFTER_MS = 1_000
"""A ``RetryAfterError`` time is never sooner than this after now."""

MAX_RETRY_AFTER_MS = 86_400_000
"""A ``RetryAfterError`` time is never later than this after now (24 h)."""

_SYSTEM_RANDOM = Random()
_INTEGER_SECONDS = re.compile(r"\s*\d+\s*")


def backoff_ms(attempt: int, *, random: Random | None = None) -> int:
    """The delay before the attempt after ``attempt`` (0-based) failed.

    The base comes from :data:`BACKOFF_SCHEDULE_MS`, plus a uniform jitter of up to 10 % of
    it. Proportional jitter spreads the retries of runs that failed together (an outage ends and
    every run retries at once) without doubling the short early delays, as a fixed jitter of up
    to 30 s would.

    Args:
        attempt: the attempt that just failed; 0 is the first attempt.
        random: the source of jitter; pass a seeded ``Random`` for repeatable delays.

    Raises:
        ValueError: ``attempt`` is negative.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be 0 or more, got {attempt}")
    base = BACKOFF_SCHEDULE_MS[min(attempt, len(BACKOFF_SCHEDULE_MS) - 1)]
    rng = _SYSTEM_RANDOM if random is None else random
    return base + rng.randint(0, base // 10)


def retry_at_ms(now_ms: int, retry_after: timedelta | datetime | float | int | str) -> int:
    """When to run the next attempt after a ``RetryAfterError``, in epoch ms.

    Args:
        now_ms: the current time, epoch ms.
        retry_after: a delay as a ``timedelta``, a number of seconds, or a string holding
            integer seconds (as an HTTP ``Retry-After`` header does) or a duration (``"30s"``);
            or a point in time as an aware ``datetime``, an ISO-8601 string with an offset, or
            an HTTP date.

    Returns:
        The due time, clamped to between 1 s and 24 h after ``now_ms``, so that neither a past
        date nor an absurd delay stalls or spins the run.

    Raises:
        ConfigError: the value is none of the above, or a date without a time zone.
    """
    due = _due_ms(now_ms, retry_after)
    return min(max(due, now_ms + MIN_RETRY_AFTER_MS), now_ms + MAX_RETRY_AFTER_MS)


def validate_retries(n: int, *, function_id: str) -> int:
    """Check a function's ``retries`` option and return it.

    Raises:
        ConfigError: ``n`` is not an integer between 0 and :data:`MAX_RETRIES`.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_RETRIES:
        raise ConfigError(
            f"function {function_id!r}: retries must be an integer from 0 to {MAX_RETRIES}, "
            f"got {n!r}; the default is {DEFAULT_RETRIES}"
        )
    return n


def _due_ms(now_ms: int, retry_after: timedelta | datetime | float | int | str) -> int:
    if isinstance(retry_after, timedelta):
        return now_ms + retry_after // timedelta(milliseconds=1)
    if isinstance(retry_after, datetime):
        return parse_time(retry_after, field="retry_after")
    if isinstance(retry_after, bool):
        raise _retry_after_error(retry_after)
    if isinstance(retry_after, int | float):
        if not math.isfinite(retry_after):
            raise _retry_after_error(retry_after)
        return now_ms + round(retry_after * 1000)
    if isinstance(retry_after, str):
        return _string_due_ms(now_ms, retry_after)
    raise _retry_after_error(retry_after)


def _string_due_ms(now_ms: int, text: str) -> int:
    if _INTEGER_SECONDS.fullmatch(text):
        return now_ms + int(text) * 1000
    try:
        return now_ms + parse_duration(text, field="retry_after")
    except ConfigError:
        pass
    try:
        datetime.fromisoformat(text.strip())
    except ValueError:
        pass
    else:
        # parse_time refuses a time without a zone, with a message that says so.
        return parse_time(text, field="retry_after")
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        raise _retry_after_error(text) from None
    return parse_time(moment, field="retry_after")


def _retry_after_error(value: object) -> ConfigError:
    return ConfigError(
        f"retry_after: invalid value {value!r}; use a timedelta, seconds as a number, "
        'a duration such as "30s", or an aware datetime or ISO-8601 time with an offset'
    )
