from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stepwell.errors import ConfigError
from stepwell.protocol.durations import format_duration, parse_duration, parse_time


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("500ms", 500),
        ("30s", 30_000),
        ("5m", 300_000),
        ("1h30m", 5_400_000),
        ("2h45m10s", 9_910_000),
        ("3d", 259_200_000),
        ("1w", 604_800_000),
        ("1w2d", 777_600_000),
        ("1.5h", 5_400_000),
        ("0.25s", 250),
        (".5s", 500),
        ("1.s", 1_000),
        ("0", 0),
        ("0s", 0),
        ("1h1h", 7_200_000),
        ("1m500ms", 60_500),
    ],
)
def test_go_style_strings_parse_to_milliseconds(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


def test_sub_millisecond_remainders_are_dropped() -> None:
    assert parse_duration("1.0005s") == 1_000
    assert parse_duration("0.9ms") == 0


@pytest.mark.parametrize(
    ("seconds", "ms"),
    [(0, 0), (1, 1_000), (90, 90_000), (1.5, 1_500), (0.57, 570), (1.1, 1_100), (2.57, 2_570)],
)
def test_numbers_are_seconds(seconds: float, ms: int) -> None:
    assert parse_duration(seconds) == ms


def test_timedeltas_are_accepted() -> None:
    assert parse_duration(timedelta(hours=1, minutes=30)) == 5_400_000
    assert parse_duration(timedelta(microseconds=1_500)) == 1
    assert parse_duration(timedelta(0)) == 0


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "it is empty"),
        ("-1s", "it is negative"),
        ("-0.5h", "it is negative"),
        (-1, "it is negative"),
        (-0.5, "it is negative"),
        (timedelta(seconds=-1), "it is negative"),
        ("5", "'5' has no unit"),
        ("5x", "unknown unit 'x'"),
        ("1H", "unknown unit 'H'"),
        ("1us", "unknown unit 'us'"),
        ("1e3s", "unknown unit 'e'"),
        ("1h 30m", "unexpected ' ' at position 2"),
        (" 1h", "unexpected ' ' at position 0"),
        ("h", "unexpected 'h' at position 0"),
        ("1..2s", "'1..2' is not a number"),
        (".s", "'.' is not a number"),
        ("PT1H", "unexpected 'P' at position 0"),
        (float("nan"), "it is not a finite number"),
        (float("inf"), "it is not a finite number"),
        (True, "a bool is not a duration"),
        (None, "a NoneType is not a duration"),
    ],
)
def test_bad_durations_raise_config_error_naming_field_value_and_example(
    value: object, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(value, field="timeouts.finish")  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith(f"timeouts.finish: invalid duration {value!r}: {reason};")
    assert '"1h30m"' in message


def test_default_field_name_is_duration() -> None:
    with pytest.raises(ConfigError, match=r"^duration: invalid duration 'soon'"):
        parse_duration("soon")


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0s"),
        (1, "1ms"),
        (500, "500ms"),
        (1_000, "1s"),
        (90_000, "1m30s"),
        (5_400_000, "1h30m"),
        (259_200_000, "3d"),
        (604_800_000, "7d"),
        (90_061_001, "1d1h1m1s1ms"),
        (86_400_500, "1d500ms"),
    ],
)
def test_format_duration_is_compact_and_largest_unit_first(ms: int, text: str) -> None:
    assert format_duration(ms) == text


def test_format_duration_refuses_negative_values() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(-1)


@given(st.integers(min_value=0, max_value=10**15))
def test_format_then_parse_round_trips(ms: int) -> None:
    assert parse_duration(format_duration(ms)) == ms


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10**6),
            st.sampled_from(["ms", "s", "m", "h", "d", "w"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_parse_sums_every_component(parts: list[tuple[int, str]]) -> None:
    sizes = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
    text = "".join(f"{count}{unit}" for count, unit in parts)
    assert parse_duration(text) == sum(count * sizes[unit] for count, unit in parts)


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10_000)))
def test_timedelta_parses_to_whole_milliseconds(value: timedelta) -> None:
    assert parse_duration(value) == value // timedelta(milliseconds=1)


# 2030-01-01T09:00:00Z
_NINE_UTC = 1_893_488_400_000


@pytest.mark.parametrize(
    "value",
    [
        datetime(2030, 1, 1, 9, tzinfo=UTC),
        datetime(2030, 1, 1, 10, tzinfo=ZoneInfo("Europe/Paris")),
        datetime(2030, 1, 1, 4, tzinfo=timezone(timedelta(hours=-5))),
        "2030-01-01T09:00:00Z",
        "2030-01-01T09:00:00+00:00",
        "2030-01-01T11:00:00+02:00",
        "2030-01-01T09:00:00.000Z",
        _NINE_UTC,
        float(_NINE_UTC),
    ],
)
def test_parse_time_gives_epoch_milliseconds(value: datetime | str | int | float) -> None:
    assert parse_time(value) == _NINE_UTC


def test_parse_time_keeps_milliseconds_and_drops_finer_digits() -> None:
    assert parse_time("2030-01-01T09:00:00.123456Z") == _NINE_UTC + 123
    assert parse_time(_NINE_UTC + 0.9) == _NINE_UTC
    assert parse_time(datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC)) == -1


@pytest.mark.parametrize("value", [datetime(2030, 1, 1, 9), "2030-01-01T09:00:00", "2030-01-01"])
def test_parse_time_refuses_naive_times(value: datetime | str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_time(value, field="sleep_until")
    message = str(caught.value)
    assert message.startswith("sleep_until: invalid time")
    assert "it has no time zone" in message
    assert "timezone-aware datetime" in message


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("tomorrow", "it is not an ISO-8601 date and time"),
        ("", "it is not an ISO-8601 date and time"),
        (float("nan"), "it is not a finite number"),
        (True, "a bool is not a point in time"),
        (timedelta(hours=1), "a timedelta is not a point in time"),
    ],
)
def test_parse_time_rejects_what_is_not_a_time(value: object, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_time(value)  # type: ignore[arg-type]
    assert str(caught.value).startswith(f"time: invalid time {value!r}: {reason};")


@given(st.datetimes(timezones=st.timezones()))
def test_parse_time_agrees_with_the_timestamp(moment: datetime) -> None:
    expected = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert parse_time(moment) == expected
    assert parse_time(moment.isoformat()) == expected
