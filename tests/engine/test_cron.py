from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepwell.engine.cron import MAX_TICKS, CronSpec
from stepwell.errors import ConfigError


def utc_ms(year: int, month: int, day: int, hour: int, minute: int) -> int:
    """Epoch ms of a UTC wall time."""
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()) * 1000


def utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


# --- parsing -------------------------------------------------------------------------------


def test_plain_expression_defaults_to_utc() -> None:
    spec = CronSpec.parse("0 9 * * 1-5")
    assert spec == CronSpec(source="0 9 * * 1-5", expression="0 9 * * 1-5", timezone="UTC")


@pytest.mark.parametrize("prefix", ["TZ", "CRON_TZ"])
def test_time_zone_prefix_is_split_off(prefix: str) -> None:
    source = f"{prefix}=Europe/Paris   0  12 * *   5 "
    spec = CronSpec.parse(source)
    assert spec.source == source
    assert spec.expression == "0 12 * * 5"
    assert spec.timezone == "Europe/Paris"


@pytest.mark.parametrize(
    ("macro", "expression"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@Daily", "0 0 * * *"),
    ],
)
def test_macros_expand_to_five_fields(macro: str, expression: str) -> None:
    assert CronSpec.parse(macro).expression == expression
    assert CronSpec.parse(f"TZ=America/New_York {macro}").timezone == "America/New_York"


def test_names_of_days_and_months_are_accepted() -> None:
    spec = CronSpec.parse("0 9 * jan-mar MON-FRI")
    assert spec.next_after(utc_ms(2025, 1, 4, 0, 0)) == utc_ms(2025, 1, 6, 9, 0)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("", "the cron expression is missing"),
        ("   ", "the cron expression is missing"),
        ("TZ=Europe/Paris", "the cron expression is missing"),
        ("TZ=Mars/Olympus 0 9 * * *", "unknown time zone 'Mars/Olympus'"),
        ("TZ=Europe 0 9 * * *", "unknown time zone 'Europe'"),
        ("TZ=../../etc/passwd 0 9 * * *", "unknown time zone '../../etc/passwd'"),
        ("TZ= 0 9 * * *", "unknown time zone ''"),
        ("0 9 * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
        ("0 0 9 * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 6"),
        ("@reboot", "unknown macro '@reboot'"),
        ("@daily 0", "expected 5 fields"),
        ("61 * * * *", "bad minute field"),
        ("0 24 * * *", "bad hour field"),
        ("0 0 31 4 *", "bad day-of-month field"),
        ("0 0 * 13 *", "bad month field"),
        ("0 0 * * 8", "bad day-of-week field"),
        ("*/0 * * * *", "bad minute field"),
        ("every day at nine am", "bad minute field"),
    ],
)
def test_bad_specs_raise_config_error_quoting_the_spec(source: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CronSpec.parse(source)
    message = str(caught.value)
    assert message.startswith(f"invalid cron spec {source!r}: ")
    assert reason in message
    assert "TZ=Europe/Paris 0 9 * * 1-5" in message


def test_spec_is_frozen() -> None:
    spec = CronSpec.parse("@daily")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.timezone = "Europe/Paris"  # type: ignore[misc]


# --- ticks in UTC ---------------------------------------------------------------------------


def test_next_tick_is_strictly_after() -> None:
    spec = CronSpec.parse("0 9 * * *")
    nine = utc_ms(2025, 1, 1, 9, 0)
    assert spec.next_after(utc_ms(2025, 1, 1, 0, 0)) == nine
    assert spec.next_after(nine - 1) == nine
    assert spec.next_after(nine) == utc_ms(2025, 1, 2, 9, 0)
    assert spec.next_after(nine + 1) == utc_ms(2025, 1, 2, 9, 0)


def test_every_fifteen_minutes_in_utc() -> None:
    spec = CronSpec.parse("*/15 * * * *")
    ticks = spec.ticks_between(utc_ms(2025, 6, 1, 10, 0), utc_ms(2025, 6, 1, 11, 0))
    assert [utc(t) for t in ticks] == [
        "2025-06-01 10:15",
        "2025-06-01 10:30",
        "2025-06-01 10:45",
        "2025-06-01 11:00",
    ]


def test_leap_day_job_waits_for_the_next_leap_year() -> None:
    spec = CronSpec.parse("0 0 29 2 *")
    assert utc(spec.next_after(utc_ms(2025, 3, 1, 0, 0))) == "2028-02-29 00:00"


def test_ticks_between_is_empty_for_an_empty_window() -> None:
    spec = CronSpec.parse("* * * * *")
    start = utc_ms(2025, 1, 1, 0, 0)
    assert spec.ticks_between(start, start) == []
    assert spec.ticks_between(start, start - 60_000) == []
    assert spec.ticks_between(start, start + 59_999) == []
    assert spec.ticks_between(start, start + 60_000) == [start + 60_000]


def test_ticks_between_stops_at_max_ticks() -> None:
    spec = CronSpec.parse("* * * * *")
    start = utc_ms(2025, 1, 1, 0, 0)
    ticks = spec.ticks_between(start, start + 2 * 86_400_000)
    assert len(ticks) == MAX_TICKS == 1000
    assert ticks[0] == start + 60_000
    assert ticks[-1] == start + MAX_TICKS * 60_000


def test_no_tick_before_the_end_of_the_calendar_is_a_config_error() -> None:
    spec = CronSpec.parse("0 0 1 1 *")
    with pytest.raises(ConfigError, match="no tick in the next 50 years"):
        spec.next_after(utc_ms(9999, 6, 1, 0, 0))


# --- time zones and daylight-saving time ---------------------------------------------------


def test_nine_in_paris_is_eight_utc_in_winter_and_seven_in_summer() -> None:
    spec = CronSpec.parse("TZ=Europe/Paris 0 9 * * *")
    assert utc(spec.next_after(utc_ms(2025, 1, 15, 0, 0))) == "2025-01-15 08:00"
    assert utc(spec.next_after(utc_ms(2025, 7, 15, 0, 0))) == "2025-07-15 07:00"


def test_paris_daily_job_across_spring_forward() -> None:
    spec = CronSpec.parse("TZ=Europe/Paris 0 9 * * *")
    ticks = spec.ticks_between(utc_ms(2025, 3, 29, 0, 0), utc_ms(2025, 3, 31, 23, 0))
    assert [utc(t) for t in ticks] == ["2025-03-29 08:00", "2025-03-30 07:00", "2025-03-31 07:00"]


def test_paris_daily_job_across_fall_back() -> None:
    spec = CronSpec.parse("TZ=Europe/Paris 0 9 * * *")
    ticks = spec.ticks_between(utc_ms(2025, 10, 25, 0, 0), utc_ms(2025, 10, 27, 23, 0))
    assert [utc(t) for t in ticks] == ["2025-10-25 07:00", "2025-10-26 08:00", "2025-10-27 08:00"]


def test_paris_job_in_the_skipped_hour_fires_once_at_three() -> None:
    # 02:00-03:00 does not exist in Paris on 2025-03-30; 03:00 CEST is 01:00 UTC.
    spec = CronSpec.parse("TZ=Europe/Paris 30 2 * * *")
    ticks = spec.ticks_between(utc_ms(2025, 3, 29, 0, 0), utc_ms(2025, 3, 31, 23, 0))
    assert [utc(t) for t in ticks] == ["2025-03-29 01:30", "2025-03-30 01:00", "2025-03-31 00:30"]


def test_paris_job_in_the_repeated_hour_fires_once_at_the_first_copy() -> None:
    # 02:00-03:00 happens twice in Paris on 2025-10-26: 00:00-01:00 UTC, then 01:00-02:00 UTC.
    spec = CronSpec.parse("TZ=Europe/Paris 30 2 * * *")
    ticks = spec.ticks_between(utc_ms(2025, 10, 25, 0, 0), utc_ms(2025, 10, 27, 23, 0))
    assert [utc(t) for t in ticks] == ["2025-10-25 00:30", "2025-10-26 00:30", "2025-10-27 01:30"]


def test_paris_job_asked_from_inside_the_second_copy_waits_for_tomorrow() -> None:
    spec = CronSpec.parse("TZ=Europe/Paris 30 2 * * *")
    # 01:10 UTC is 02:10 CET, after the 02:30 CEST tick (00:30 UTC) has already fired.
    assert utc(spec.next_after(utc_ms(2025, 10, 26, 1, 10))) == "2025-10-27 01:30"


def test_new_york_job_in_the_skipped_hour_fires_once_at_three() -> None:
    spec = CronSpec.parse("TZ=America/New_York 30 2 * * *")
    ticks = spec.ticks_between(utc_ms(2025, 3, 8, 0, 0), utc_ms(2025, 3, 10, 23, 0))
    assert [utc(t) for t in ticks] == ["2025-03-08 07:30", "2025-03-09 07:00", "2025-03-10 06:30"]


def test_new_york_job_in_the_repeated_hour_fires_once() -> None:
    spec = CronSpec.parse("CRON_TZ=America/New_York 30 1 * * *")
    ticks = spec.ticks_between(utc_ms(2025, 11, 1, 0, 0), utc_ms(2025, 11, 3, 23, 0))
    assert [utc(t) for t in ticks] == ["2025-11-01 05:30", "2025-11-02 05:30", "2025-11-03 06:30"]
    # 06:10 UTC is 01:10 EST, inside the second copy of the 01:00 hour.
    assert utc(spec.next_after(utc_ms(2025, 11, 2, 6, 10))) == "2025-11-03 06:30"


def test_new_york_hourly_job_follows_elapsed_time_across_fall_back() -> None:
    spec = CronSpec.parse("TZ=America/New_York 30 * * * *")
    ticks = spec.ticks_between(utc_ms(2025, 11, 2, 4, 0), utc_ms(2025, 11, 2, 8, 0))
    # 00:30 EDT, 01:30 EDT, 01:30 EST, 02:30 EST: the repeated hour fires twice.
    assert [utc(t) for t in ticks] == [
        "2025-11-02 04:30",
        "2025-11-02 05:30",
        "2025-11-02 06:30",
        "2025-11-02 07:30",
    ]


def test_new_york_hourly_job_skips_the_missing_hour_across_spring_forward() -> None:
    spec = CronSpec.parse("TZ=America/New_York 30 * * * *")
    ticks = spec.ticks_between(utc_ms(2025, 3, 9, 5, 0), utc_ms(2025, 3, 9, 8, 0))
    # 00:30 EST, 01:30 EST, then 03:30 EDT: there is no 02:30 that day.
    assert [utc(t) for t in ticks] == ["2025-03-09 05:30", "2025-03-09 06:30", "2025-03-09 07:30"]


def test_daily_macro_in_a_zone_runs_at_local_midnight() -> None:
    spec = CronSpec.parse("TZ=Europe/Paris @daily")
    assert utc(spec.next_after(utc_ms(2025, 1, 15, 12, 0))) == "2025-01-15 23:00"
    assert utc(spec.next_after(utc_ms(2025, 7, 15, 12, 0))) == "2025-07-15 22:00"


# --- properties ----------------------------------------------------------------------------

_SPECS = [
    "0 9 * * *",
    "30 2 * * *",
    "30 1 * * *",
    "*/20 * * * *",
    "30 * * * *",
    "0 0 1 * *",
    "15 10 * * 1-5",
    "0 */6 * * *",
]
_ZONES = ["UTC", "Europe/Paris", "America/New_York"]
_AFTER = st.integers(min_value=utc_ms(2024, 1, 1, 0, 0), max_value=utc_ms(2026, 12, 31, 0, 0))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(_SPECS), st.sampled_from(_ZONES), _AFTER)
def test_next_tick_is_after_and_nothing_lies_between(
    expression: str, zone: str, after: int
) -> None:
    spec = CronSpec.parse(f"TZ={zone} {expression}")
    tick = spec.next_after(after)
    assert tick > after
    assert tick % 60_000 == 0
    # Asking again from just before the tick finds the same tick.
    assert spec.next_after(tick - 1) == tick
    assert spec.next_after(max(after, tick - 60_000)) == tick


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(_SPECS), st.sampled_from(_ZONES), _AFTER)
def test_ticks_between_equals_chained_next_after(expression: str, zone: str, after: int) -> None:
    spec = CronSpec.parse(f"TZ={zone} {expression}")
    until = after + 3 * 86_400_000
    chained: list[int] = []
    tick = spec.next_after(after)
    while tick <= until:
        chained.append(tick)
        tick = spec.next_after(tick)
    assert spec.ticks_between(after, until) == chained
