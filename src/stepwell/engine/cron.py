"""Cron triggers: parsing a spec and computing its ticks, pure and time-zone aware.

A spec is an optional ``TZ=<IANA zone>`` (or ``CRON_TZ=<IANA zone>``) prefix followed by a standard
5-field expression or one of the macros ``@hourly``, ``@daily``, ``@midnight``, ``@weekly``,
``@monthly``, ``@yearly`` and ``@annually``: ``"TZ=Europe/Paris 0 9 * * 1-5"``. Ticks are epoch
milliseconds; the calendar math is done by ``cronsim`` in the spec's zone.

Daylight-saving time follows Debian cron, as ``cronsim`` does:

* A job whose minute and hour are both fixed (``30 2 * * *``) fires once a day. When its local
  time does not exist (spring forward), it fires at the first existing minute after it (03:00 for
  a 02:30 job in Europe/Paris and America/New_York). When its local time occurs twice (fall
  back), it fires only at the first occurrence.
* A job with a wildcard minute or hour (``30 * * * *``) follows elapsed time: it skips the hour
  that does not exist and fires in both copies of the repeated hour.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from stepwell.errors import ConfigError

MAX_TICKS = 1000
"""The most ticks :meth:`CronSpec.ticks_between` returns, so an outage cannot flood the queue."""

_MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_TZ_PREFIXES = ("TZ=", "CRON_TZ=")
_FIELDS = "minute hour day-of-month month day-of-week"
_EXAMPLE = '"TZ=Europe/Paris 0 9 * * 1-5"'
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A parsed cron trigger."""

    source: str
    """The spec exactly as the author wrote it."""
    expression: str
    """The 5-field expression, macros expanded and whitespace collapsed."""
    timezone: str = "UTC"
    """The IANA zone the expression is read in."""

    @classmethod
    def parse(cls, spec: str) -> CronSpec:
        """Parse ``[TZ=<zone> ]<5-field expression or macro>``.

        Raises:
            ConfigError: the zone is unknown, or the expression is malformed or never fires.
        """
        words = spec.split()
        timezone = "UTC"
        if words and words[0].startswith(_TZ_PREFIXES):
            timezone = words.pop(0).partition("=")[2]
            _load_zone(spec, timezone)
        if not words:
            raise _spec_error(spec, "the cron expression is missing")
        if len(words) == 1 and words[0].startswith("@"):
            expanded = _MACROS.get(words[0].lower())
            if expanded is None:
                known = ", ".join(_MACROS)
                raise _spec_error(spec, f"unknown macro {words[0]!r} (known: {known})")
            words = expanded.split()
        if len(words) != 5:
            raise _spec_error(spec, f"expected 5 fields ({_FIELDS}), got {len(words)}")
        expression = " ".join(words)
        try:
            CronSim(expression, datetime(2000, 1, 1))
        except CronSimError as exc:
            raise _spec_error(spec, f"{str(exc).lower()} field") from None
        return cls(source=spec, expression=expression, timezone=timezone)

    def next_after(self, after_ms: int) -> int:
        """The first tick strictly after ``after_ms`` (epoch ms), in epoch ms.

        Raises:
            ConfigError: the expression has no tick in the 50 years after ``after_ms``
                (``0 0 30 2 *`` style specs that name a day that never comes).
        """
        for tick in self._ticks(after_ms):
            return tick
        raise _spec_error(self.source, "it has no tick in the next 50 years")

    def ticks_between(self, after_ms: int, until_ms: int) -> list[int]:
        """The ticks in ``(after_ms, until_ms]``, oldest first, at most :data:`MAX_TICKS`.

        When more ticks fall in the window only the first :data:`MAX_TICKS` are returned; the
        caller resumes from the last one.
        """
        ticks: list[int] = []
        if until_ms <= after_ms:
            return ticks
        for tick in self._ticks(after_ms):
            if tick > until_ms:
                break
            ticks.append(tick)
            if len(ticks) == MAX_TICKS:
                break
        return ticks

    def _ticks(self, after_ms: int) -> Iterator[int]:
        zone = _load_zone(self.source, self.timezone)
        start = (_EPOCH + after_ms * _ONE_MS).astimezone(zone)
        sim = CronSim(self.expression, start)
        last = after_ms
        while True:
            try:
                moment = next(sim)
            except (StopIteration, OverflowError):
                # cronsim gives up after 50 years without a match; datetime ends at year 9999.
                return
            tick = (moment - _EPOCH) // _ONE_MS
            # cronsim walks fixed-time jobs in naive local time, so when ``after_ms`` falls in
            # the second copy of a repeated hour it can hand back the first copy, which lies
            # before ``after_ms``: skipping it keeps "strictly after" and "fires once".
            if tick > last:
                last = tick
                yield tick


def _load_zone(spec: str, name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise _spec_error(
            spec, f"unknown time zone {name!r}; use an IANA name such as Europe/Paris or UTC"
        ) from None


def _spec_error(spec: str, reason: str) -> ConfigError:
    return ConfigError(f"invalid cron spec {spec!r}: {reason}; for example {_EXAMPLE}")
