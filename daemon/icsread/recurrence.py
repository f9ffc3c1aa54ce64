"""Expanding a UID group (a series and its overrides) into occurrences in the window.

recurring_ical_events does the RFC 5545 work (RRULE, RDATE, EXDATE, RECURRENCE-ID); the
classes here hook into it so each occurrence keeps its source component (nothing copied per
occurrence), every rule is walked lazily and stops past the window, and every step is
charged to the event's budget (:mod:`daemon.icsread.budget`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import dateutil.rrule
import recurring_ical_events
from icalendar import Component

from daemon.icsread.budget import Meter, ReadBudget

#: Occurrences kept per series and read; an endless MINUTELY rule must not hang a read.
MAX_OCCURRENCES = 20_000


class _Adapter(recurring_ical_events.EventAdapter):
    """An event adapter that keeps its component at hand for reading the occurrence."""

    def __init__(self, component) -> None:
        super().__init__(component)
        self.component = component


class Occurrence(recurring_ical_events.Occurrence):
    """An occurrence that knows its source component, so nothing is copied per occurrence."""

    def __init__(self, adapter: _Adapter, start=None, end=None, sequence: int = -1) -> None:
        super().__init__(adapter, start, end, sequence)
        self.component = adapter.component
        # recurring_ical_events passes no start exactly when the occurrence is a
        # RECURRENCE-ID component itself rather than a slot computed from a rule.
        self.is_override = start is None and "RECURRENCE-ID" in adapter.component


class MeteredSeries(recurring_ical_events.Series):
    """A series whose occurrences are ``Occurrence`` (the hook Series offers for this) and
    whose rules charge every step of their expansion to ``meter``."""

    def __init__(self, components, meter: Meter) -> None:
        super().__init__(components)
        rules = getattr(self.recurrence, "rrules", None)
        if rules is not None:
            self.recurrence.rrules = [_StoppedRule(rule, meter) for rule in rules]

    def occurrence(self, adapter, start=None, end=None) -> Occurrence:
        return Occurrence(adapter, start, end, sequence=self.sequence)


class _StoppedRule:
    """A dateutil rule (or rule set) whose ``between`` yields lazily and stops past the window.

    dateutil's own ``between`` walks every occurrence from DTSTART on and returns them all
    as a list: a rule every minute since 2015 means millions before the window starts.
    This one yields lazily, so the reader's cap on occurrences ends the walk too. An RRULE is
    rebuilt as a metered copy without dateutil's cache (which kept every value it walked:
    gigabytes for a rule every second); the rule set holds only DTSTART and the RDATEs, so
    its cost is bounded by the text.
    """

    def __init__(self, rule, meter: Meter) -> None:
        self.until = getattr(rule, "until", None)
        self.meter = meter if isinstance(rule, dateutil.rrule.rrule) else None
        self.rule = rule
        self.metered = self.meter is None

    def between(self, after, before, inc: bool = False) -> Iterator:
        meter = self.meter
        if meter is not None and not self.metered:  # built when first needed: past the
            self.rule, self.metered = meter.metered(self.rule), True  # budget, the rest never are
        zone: object = False
        low = high = inner_low = inner_high = None
        for value in self.rule:
            if meter is not None:
                meter.value()
            if value.tzinfo is not zone:  # bounds a day off, in the values' own zone: a
                zone = value.tzinfo  # comparison within one zone needs no UTC offset
                low, high = _widened(after, zone, -_DAY), _widened(before, zone, _DAY)
                inner_low, inner_high = _widened(after, zone, _DAY), _widened(before, zone, -_DAY)
            if value > high:
                return
            if value < low:
                continue
            if inner_low < value < inner_high:
                yield value
                continue
            if value > before or (value == before and not inc):
                return
            if value > after or (value == after and inc):
                yield value


_DAY = timedelta(days=1)


def _widened(bound: datetime, zone, by: timedelta) -> datetime:
    """``bound + by`` in ``zone`` when both are zoned (dateutil's custom zones compute each
    offset anew, slowly), else ``bound`` itself."""
    if zone is None or bound.tzinfo is None:
        return bound
    try:
        return bound.astimezone(zone) + by
    except (OverflowError, ValueError):
        return bound


_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def rule_problem(rule) -> str | None:
    """What makes a rule unusable before dateutil tries it, or None.

    dateutil loops for ever on INTERVAL=0, and walks to the year 9999 (seconds, for a
    minutely rule) looking for a day like 30 February that never comes.
    """
    if not isinstance(rule, dict):
        return None
    try:
        if any(int(value) < 1 for value in rule.get("INTERVAL", ())):
            return "INTERVAL must be 1 or more"
        months = [int(value) for value in rule.get("BYMONTH", ())]
        days = [int(value) for value in rule.get("BYMONTHDAY", ())]
    except (TypeError, ValueError):
        return None  # dateutil says what is wrong
    if months and days and all(1 <= m <= 12 for m in months) and not any(
        1 <= abs(day) <= _MONTH_DAYS[month - 1] for month in months for day in days
    ):
        return "no day of BYMONTH is in BYMONTHDAY"
    return None


def occurrence_id(occurrence: Occurrence) -> str:
    """The slot an occurrence fills: an override's RECURRENCE-ID, else its computed start."""
    if occurrence.is_override:
        return _stamp(occurrence.component["RECURRENCE-ID"].dt)
    return _stamp(occurrence.start)


def _stamp(value: date) -> str:
    """RECURRENCE-ID style text: UTC for zoned times, so a zone's spelling cannot change it."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.strftime("%Y%m%dT%H%M%S")
        return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return value.strftime("%Y%m%d")


def expand_series(components: list[Component], budget: ReadBudget, start: datetime,
                  stop: datetime) -> list[Occurrence]:
    """The occurrences of one UID group between ``start`` and ``stop``, at most
    ``MAX_OCCURRENCES + 1`` (one more tells the caller the series was cut).

    Raises :class:`~daemon.icsread.budget.OverBudget` past the budget, and whatever
    dateutil or recurring_ical_events raise on bad input; what was spent is booked either way.
    """
    meter = Meter(budget)
    try:
        series = MeteredSeries([_Adapter(component) for component in components], meter)
        return list(itertools.islice(series.between(start, stop), MAX_OCCURRENCES + 1))
    finally:
        meter.close()
