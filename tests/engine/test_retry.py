from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stepwell.engine.retry import (
    BACKOFF_SCHEDULE_MS,
    DEFAULT_RETRIES,
    MAX_RETRIES,
    MAX_RETRY_AFTER_MS,
    MIN_RETRY_AFTER_MS,
    backoff_ms,
    retry_at_ms,
    validate_retries,
)
from stepwell.errors import ConfigError

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

# 2023-11-14T22:13:20Z
NOW = 1_700_000_000_000


# --- backoff -------------------------------------------------------------------------------


def test_schedule_is_the_documented_table() -> None:
    assert BACKOFF_SCHEDULE_MS == (
        15 * SECOND,
        30 * SECOND,
        1 * MINUTE,
        2 * MINUTE,
        5 * MINUTE,
        10 * MINUTE,
        20 * MINUTE,
        40 * MINUTE,
        1 * HOUR,
        2 * HOUR,
    )


class _NoJitter(Random):
    def randint(self, a: int, b: int) -> int:
        return a


class _MaxJitter(Random):
    def randint(self, a: int, b: int) -> int:
        return b


@pytest.mark.parametrize(
    ("attempt", "base"),
    [(0, 15 * SECOND), (1, 30 * SECOND), (4, 5 * MINUTE), (8, HOUR), (9, 2 * HOUR)],
)
def test_backoff_follows_the_table(attempt: int, base: int) -> None:
    assert backoff_ms(attempt, random=_NoJitter()) == base
    assert backoff_ms(attempt, random=_MaxJitter()) == base + base // 10


@pytest.mark.parametrize("attempt", [10, 11, 19, 1_000])
def test_backoff_stays_at_two_hours_after_the_table(attempt: int) -> None:
    assert backoff_ms(attempt, random=_NoJitter()) == 2 * HOUR


def test_first_retry_waits_fifteen_seconds_plus_at_most_one_and_a_half() -> None:
    delays = {backoff_ms(0, random=Random(seed)) for seed in range(200)}
    assert min(delays) >= 15 * SECOND
    assert max(delays) <= 16_500
    # The jitter actually spreads retries out.
    assert len(delays) > 100


def test_seeded_random_gives_repeatable_delays() -> None:
    first = [backoff_ms(n, random=Random(7)) for n in range(12)]
    again = [backoff_ms(n, random=Random(7)) for n in range(12)]
    assert first == again


def test_backoff_without_a_random_source_still_jitters_within_bounds() -> None:
    for _ in range(50):
        assert 30 * SECOND <= backoff_ms(1) <= 33 * SECOND


def test_negative_attempt_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="attempt"):
        backoff_ms(-1)


@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0))
def test_backoff_is_within_ten_percent_above_its_base(attempt: int, seed: int) -> None:
    base = BACKOFF_SCHEDULE_MS[min(attempt, len(BACKOFF_SCHEDULE_MS) - 1)]
    assert base <= backoff_ms(attempt, random=Random(seed)) <= base * 11 // 10


@given(st.integers(min_value=0, max_value=30))
def test_backoff_base_never_shrinks_between_attempts(attempt: int) -> None:
    assert backoff_ms(attempt + 1, random=_NoJitter()) >= backoff_ms(attempt, random=_NoJitter())


# --- retry after ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "delay"),
    [
        (30, 30 * SECOND),
        (1.5, 1_500),
        (timedelta(minutes=5), 5 * MINUTE),
        ("30", 30 * SECOND),
        ("120", 2 * MINUTE),
        ("30s", 30 * SECOND),
        ("1h30m", 90 * MINUTE),
        ("2023-11-14T22:15:00Z", 100 * SECOND),
        ("2023-11-14T23:15:00+01:00", 100 * SECOND),
        ("Tue, 14 Nov 2023 22:15:00 GMT", 100 * SECOND),
        (datetime(2023, 11, 14, 22, 15, tzinfo=UTC), 100 * SECOND),
        (datetime(2023, 11, 14, 17, 15, tzinfo=timezone(timedelta(hours=-5))), 100 * SECOND),
    ],
)
def test_retry_after_values_become_due_times(
    retry_after: timedelta | datetime | float | str, delay: int
) -> None:
    assert retry_at_ms(NOW, retry_after) == NOW + delay


@pytest.mark.parametrize(
    "retry_after",
    [0, -5, 0.2, "0", "0s", "500ms", timedelta(0), timedelta(hours=-1), "2000-01-01T00:00:00Z"],
)
def test_retry_after_is_at_least_one_second_away(
    retry_after: timedelta | datetime | float | str,
) -> None:
    assert retry_at_ms(NOW, retry_after) == NOW + MIN_RETRY_AFTER_MS == NOW + SECOND


@pytest.mark.parametrize(
    "retry_after",
    [86_401, 1e12, "9999999", "2d", "1w", timedelta(days=30), "2100-01-01T00:00:00Z"],
)
def test_retry_after_is_at_most_a_day_away(
    retry_after: timedelta | datetime | float | str,
) -> None:
    assert retry_at_ms(NOW, retry_after) == NOW + MAX_RETRY_AFTER_MS == NOW + 24 * HOUR


def test_exactly_a_day_is_kept() -> None:
    assert retry_at_ms(NOW, "24h") == NOW + 24 * HOUR


@pytest.mark.parametrize(
    "retry_after", ["later", "", "-", "1 hour", float("nan"), float("inf"), True, None, [30]]
)
def test_unusable_retry_after_is_a_config_error(retry_after: object) -> None:
    with pytest.raises(ConfigError, match="retry_after"):
        retry_at_ms(NOW, retry_after)  # type: ignore[arg-type]


@pytest.mark.parametrize("retry_after", ["2023-11-14T22:15:00", datetime(2023, 11, 14, 22, 15)])
def test_retry_after_dates_need_a_time_zone(retry_after: str | datetime) -> None:
    with pytest.raises(ConfigError, match="no time zone"):
        retry_at_ms(NOW, retry_after)


@given(
    st.integers(min_value=0, max_value=4_000_000_000_000),
    st.one_of(
        st.integers(min_value=-(10**9), max_value=10**9),
        st.floats(min_value=-1e9, max_value=1e9),
        st.timedeltas(),
    ),
)
def test_due_time_is_always_within_the_clamp(now: int, retry_after: float | timedelta) -> None:
    due = retry_at_ms(now, retry_after)
    assert now + MIN_RETRY_AFTER_MS <= due <= now + MAX_RETRY_AFTER_MS


# --- retry counts --------------------------------------------------------------------------


def test_defaults_match_inngest() -> None:
    assert DEFAULT_RETRIES == 4
    assert MAX_RETRIES == 20


@pytest.mark.parametrize("retries", [0, 1, DEFAULT_RETRIES, MAX_RETRIES])
def test_valid_retry_counts_pass_through(retries: int) -> None:
    assert validate_retries(retries, function_id="shop-process-order") == retries


@pytest.mark.parametrize("retries", [-1, 21, 100, True, 2.0, "3", None])
def test_invalid_retry_counts_name_the_function(retries: object) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_retries(retries, function_id="shop-process-order")  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith("function 'shop-process-order': retries must be an integer")
    assert "from 0 to 20" in message
    assert repr(retries) in message
