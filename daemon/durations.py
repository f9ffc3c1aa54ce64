"""Durations as people write them in a config file: ``P1W``, ``2mo``, ``15 minutes``.

The contact counter works in calendar terms ("two months" after 17 April is 17 June, not 61
days later), so a :class:`Span` keeps calendar months apart from days and seconds, and only
turns into a ``timedelta`` when it has no months. Days are calendar days: adding a span to a
``date`` never goes through a time zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from dateutil.relativedelta import relativedelta

__all__ = ["Span", "parse_span"]

_D = TypeVar("_D", date, datetime)

#: Seconds in a day, a week, and the average Gregorian month (365.2425 / 12 days).
_DAY = 86_400
_WEEK = 7 * _DAY
_MONTH_APPROX = 365.2425 / 12 * _DAY

_HINT = "use ISO 8601 like P1W or a short form like 7d, 2mo, 15min"


@dataclass(frozen=True, slots=True)
class Span:
    """A non-negative length of time: calendar months, then days, then seconds.

    Months are applied first with :mod:`dateutil.relativedelta` semantics (31 January plus one
    month is 28 or 29 February), then days and seconds, the same order ISO 8601 reads them.
    """

    months: int = 0
    days: int = 0
    seconds: int = 0

    def __post_init__(self) -> None:
        for name in ("months", "days", "seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Span.{name} must be an int, not {type(value).__name__}")
            if value < 0:
                raise ValueError(f"Span.{name} must not be negative (use Span.before to go back)")

    # -- arithmetic ----------------------------------------------------------------------

    def after(self, d: _D) -> _D:
        """``d`` plus this span; a plain ``date`` only takes whole days."""
        return self._shift(d, 1)

    def before(self, d: _D) -> _D:
        """``d`` minus this span; a plain ``date`` only takes whole days."""
        return self._shift(d, -1)

    def _shift(self, d: _D, sign: int) -> _D:
        if not isinstance(d, datetime) and self.seconds % _DAY:
            raise ValueError(f"cannot add {self} to a date: it has a time part")
        return d + sign * relativedelta(months=self.months, days=self.days, seconds=self.seconds)

    def __add__(self, other: object) -> Span:
        if not isinstance(other, Span):
            return NotImplemented
        return Span(
            self.months + other.months, self.days + other.days, self.seconds + other.seconds
        )

    def __mul__(self, factor: object) -> Span:
        """Scale by a whole factor (the counter doubles its interval)."""
        if isinstance(factor, bool) or not isinstance(factor, int):
            return NotImplemented
        return Span(self.months * factor, self.days * factor, self.seconds * factor)

    __rmul__ = __mul__

    # -- conversions -----------------------------------------------------------------------

    def to_timedelta(self) -> timedelta:
        """The exact length, which only exists without calendar months."""
        if self.months:
            raise ValueError(f"{self} has calendar months, which have no fixed length")
        return timedelta(days=self.days, seconds=self.seconds)

    def whole_days(self) -> int:
        """The number of days, for spans that are plain calendar days (or weeks)."""
        if self.months or self.seconds:
            raise ValueError(f"{self} is not a whole number of days")
        return self.days

    def total_seconds_approx(self) -> float:
        """A rough length for ordering and display: a month counts as 30.44 days."""
        return self.months * _MONTH_APPROX + self.days * _DAY + self.seconds

    def __bool__(self) -> bool:
        return bool(self.months or self.days or self.seconds)

    def __str__(self) -> str:
        """The ISO 8601 form, which :func:`parse_span` reads back."""
        if not self.months and not self.seconds and self.days and self.days % 7 == 0:
            return f"P{self.days // 7}W"
        years, months = divmod(self.months, 12)
        hours, rest = divmod(self.seconds, 3600)
        minutes, seconds = divmod(rest, 60)
        date_part = "".join(
            f"{n}{unit}" for n, unit in ((years, "Y"), (months, "M"), (self.days, "D")) if n
        )
        time_part = "".join(
            f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n
        )
        if not date_part and not time_part:
            return "PT0S"
        return f"P{date_part}" + (f"T{time_part}" if time_part else "")


# -- parsing ----------------------------------------------------------------------------------

_NUM = r"\d+(?:[.,]\d+)?"
_ISO = re.compile(
    rf"""
    P(?!$)
    (?:(?P<Y>{_NUM})Y)?
    (?:(?P<MO>{_NUM})M)?
    (?:(?P<W>{_NUM})W)?
    (?:(?P<D>{_NUM})D)?
    (?:T(?=\d)
        (?:(?P<H>{_NUM})H)?
        (?:(?P<MI>{_NUM})M)?
        (?:(?P<S>{_NUM})S)?
    )?
    """,
    re.VERBOSE | re.IGNORECASE,
)

#: Unit words of the short form, each to (calendar months, seconds) per unit.
_UNITS: dict[str, tuple[int, int]] = {}
for _words, _value in (
    (("y", "yr", "yrs", "year", "years"), (12, 0)),
    (("mo", "mos", "month", "months"), (1, 0)),
    (("w", "wk", "wks", "week", "weeks"), (0, _WEEK)),
    (("d", "day", "days"), (0, _DAY)),
    (("h", "hr", "hrs", "hour", "hours"), (0, 3600)),
    (("m", "min", "mins", "minute", "minutes"), (0, 60)),
    (("s", "sec", "secs", "second", "seconds"), (0, 1)),
):
    for _word in _words:
        _UNITS[_word] = _value

_TERM = re.compile(rf"({_NUM})\s*([a-z]+)")
_SEPARATOR = re.compile(r"\s*(?:,|\band\b)?\s*")


def _number(text: str) -> Decimal:
    return Decimal(text.replace(",", "."))


def _build(original: object, months: Decimal, seconds: Decimal) -> Span:
    """Turn unit totals into a Span, keeping whole days apart from the time of day."""
    if months != months.to_integral_value():
        raise ValueError(f"not a duration: {original!r} (months and years must be whole)")
    if seconds != seconds.to_integral_value():
        raise ValueError(f"not a duration: {original!r} (the smallest unit is a second)")
    days, rest = divmod(int(seconds), _DAY)
    span = Span(months=int(months), days=days, seconds=rest)
    if not span:
        raise ValueError(f"duration must be longer than zero: {original!r}")
    return span


def _parse_iso(text: str, original: object) -> Span | None:
    match = _ISO.fullmatch(text)
    if match is None:
        return None
    parts = {k: _number(v) for k, v in match.groupdict().items() if v is not None}
    if not parts:
        return None
    months = parts.get("Y", Decimal(0)) * 12 + parts.get("MO", Decimal(0))
    seconds = (
        parts.get("W", Decimal(0)) * _WEEK
        + parts.get("D", Decimal(0)) * _DAY
        + parts.get("H", Decimal(0)) * 3600
        + parts.get("MI", Decimal(0)) * 60
        + parts.get("S", Decimal(0))
    )
    return _build(original, months, seconds)


def _parse_short(text: str, original: object) -> Span | None:
    lowered = text.lower()
    months = Decimal(0)
    seconds = Decimal(0)
    pos = 0
    seen = False
    while pos < len(lowered):
        if seen:
            separator = _SEPARATOR.match(lowered, pos)
            pos = separator.end() if separator else pos
        match = _TERM.match(lowered, pos)
        if match is None or match.group(2) not in _UNITS:
            return None
        unit_months, unit_seconds = _UNITS[match.group(2)]
        amount = _number(match.group(1))
        months += amount * unit_months
        seconds += amount * unit_seconds
        pos = match.end()
        seen = True
    if not seen:
        return None
    return _build(original, months, seconds)


def parse_span(text: str | int | timedelta | Span) -> Span:
    """Read a positive duration from a config value.

    Accepts ISO 8601 (``P1W``, ``P2M``, ``P1Y``, ``PT15M``, ``P1DT2H``), short forms
    (``7d``, ``1w``, ``2mo``, ``1y``, ``15min``, ``15m`` = minutes, ``1h``, ``30s``, also
    combined like ``1h30m``) and words (``2 weeks``, ``1 month``, ``15 minutes``). An ``int``
    is a number of seconds, as pydantic reads a ``timedelta``. Zero and negative spans are
    refused because every duration in the config is a gap that must move time forward.
    """
    if isinstance(text, Span):
        if not text:
            raise ValueError("duration must be longer than zero")
        return text
    if isinstance(text, timedelta):
        if text <= timedelta(0):
            raise ValueError(f"duration must be longer than zero: {text}")
        if text.microseconds:
            raise ValueError(f"not a duration: {text} (the smallest unit is a second)")
        return Span(days=text.days, seconds=text.seconds)
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(f"not a duration: {text!r} ({_HINT})")
    if isinstance(text, int):
        if text <= 0:
            raise ValueError(f"duration must be longer than zero: {text!r}")
        return _build(text, Decimal(0), Decimal(text))

    stripped = text.strip()
    if stripped.startswith("-"):
        body = stripped[1:].strip()
        if _parse_iso(body, text) or _parse_short(body, text):
            raise ValueError(f"duration must be longer than zero: {text!r}")
    elif stripped.startswith("+"):
        stripped = stripped[1:].strip()
    span = _parse_iso(stripped, text) or _parse_short(stripped, text)
    if span is None:
        if re.fullmatch(_NUM, stripped):
            raise ValueError(f"not a duration: {text!r} (add a unit, like {stripped}d; {_HINT})")
        raise ValueError(f"not a duration: {text!r} ({_HINT})")
    return span
