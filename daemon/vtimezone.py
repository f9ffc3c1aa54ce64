"""VTIMEZONE definitions every reader takes alike (icalendar, vobject, ical.js).

icalendar's own ``Timezone.from_tzid`` lists the transitions of a fixed range of years as
comma-separated RDATEs ("only works from 2025-01-01 to 2028-01-01"): a reminder outside that
range reads an hour off, and vobject takes only the first value of such an RDATE. Here the
rules in force at the end of the range become yearly RRULEs (valid as long as the zone keeps
them); transitions before that, or without a yearly pattern, are one RDATE value per line.
Observance onsets are local times before the change (``TZOFFSETFROM``), as RFC 5545 says.
"""

from __future__ import annotations

import calendar
import copy
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar

_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
#: the scan step: shorter than any gap between two transitions of a modern zone
_STEP = timedelta(hours=12)
#: years after the range a yearly rule must still hold for to be written as an RRULE
_VERIFY = 40


@dataclass(frozen=True, slots=True)
class _Onset:
    """One change of a zone's offset: the local time it happens (before it) and what follows."""

    local: datetime
    before: timedelta
    after: timedelta
    name: str
    dst: bool


def _state(zone: ZoneInfo, moment: datetime) -> tuple[timedelta, timedelta, str]:
    local = moment.astimezone(zone)
    return local.utcoffset() or timedelta(0), local.dst() or timedelta(0), local.tzname() or ""


def _is_dst(dst: timedelta) -> bool:
    # Europe/Dublin's winter time has a negative DST offset: it is standard time all the same
    return dst > timedelta(0)


def _onsets(zone: ZoneInfo, start: datetime, end: datetime) -> list[_Onset]:
    """Every transition between two UTC instants, found by scanning and bisecting."""
    out: list[_Onset] = []
    moment, state = start, _state(zone, start)
    while moment < end:
        step = min(moment + _STEP, end)
        following = _state(zone, step)
        if following != state:
            low, high = moment, step
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if _state(zone, middle) == state:
                    low = middle
                else:
                    high = middle
            high = high.replace(microsecond=0)
            local = (high + state[0]).replace(tzinfo=None)
            out.append(_Onset(local, state[0], following[0], following[2],
                              _is_dst(following[1])))
        moment, state = step, following
    return out


def _week_specs(day: date) -> set[str]:
    """The BYDAY prefixes that name this weekday of its month: its number, and -1 if last."""
    specs = {str((day.day - 1) // 7 + 1)}
    if day.day + 7 > calendar.monthrange(day.year, day.month)[1]:
        specs.add("-1")
    return specs


def _runs(onsets: list[_Onset]) -> list[tuple[list[_Onset], set[str]]]:
    """Split one kind of transition into runs that follow one yearly rule each."""
    runs: list[tuple[list[_Onset], set[str]]] = []
    for onset in onsets:
        if runs:
            items, specs = runs[-1]
            last = items[-1].local
            common = specs & _week_specs(onset.local.date())
            if (onset.local.year == last.year + 1 and onset.local.month == last.month
                    and onset.local.weekday() == last.weekday()
                    and onset.local.time() == last.time() and common):
                items.append(onset)
                runs[-1] = (items, common)
                continue
        runs.append(([onset], _week_specs(onset.local.date())))
    return runs


def _observance(first: _Onset) -> icalendar.cal.Component:
    part = icalendar.TimezoneDaylight() if first.dst else icalendar.TimezoneStandard()
    part.add("dtstart", first.local)
    part.add("tzoffsetfrom", first.before)
    part.add("tzoffsetto", first.after)
    if first.name:
        part.add("tzname", first.name)
    return part


def _rrule(run: list[_Onset], specs: set[str]) -> dict[str, str | int]:
    spec = "-1" if "-1" in specs else min(specs)
    day = run[0].local
    return {"freq": "YEARLY", "bymonth": day.month,
            "byday": f"{spec}{_WEEKDAYS[day.weekday()]}"}


def _rule_day(year: int, month: int, weekday: int, spec: str) -> date:
    """The day a BYMONTH/BYDAY rule names in ``year``."""
    days = calendar.monthrange(year, month)[1]
    if spec == "-1":
        last = date(year, month, days)
        return last - timedelta(days=(last.weekday() - weekday) % 7)
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (int(spec) - 1))


def _holds(zone: ZoneInfo, run: list[_Onset], rule: dict[str, str | int], years: range) -> bool:
    """Whether the zone really changes as the yearly rule says in each of ``years``."""
    first = run[0]
    byday = str(rule["byday"])
    spec, weekday = byday[:-2], _WEEKDAYS.index(byday[-2:])
    for year in years:
        day = _rule_day(year, first.local.month, weekday, spec)
        moment = datetime.combine(day, first.local.time()) - first.before
        moment = moment.replace(tzinfo=UTC)
        if (_state(zone, moment - timedelta(seconds=1))[0] != first.before
                or _state(zone, moment)[0] != first.after
                or _state(zone, moment)[2] != first.name):
            return False
    return True


def build(tzid: str, first_year: int, last_year: int) -> icalendar.Timezone | None:
    """A VTIMEZONE for an IANA zone, right for every instant of ``first_year..last_year``
    and, where the zone's current rules are yearly, for every year after."""
    try:
        zone = ZoneInfo(tzid)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    start = datetime(first_year, 1, 1, tzinfo=UTC)
    end = datetime(last_year + 1, 1, 1, tzinfo=UTC)
    onsets = _onsets(zone, start, end)
    offset, dst, name = _state(zone, start)
    tz = icalendar.Timezone()
    tz.add("tzid", tzid)
    tz.add_component(_observance(_Onset((start + offset).replace(tzinfo=None), offset, offset,
                                        name, _is_dst(dst))))
    kinds: dict[tuple[timedelta, timedelta, str, bool], list[_Onset]] = {}
    for onset in onsets:
        kinds.setdefault((onset.before, onset.after, onset.name, onset.dst), []).append(onset)
    for items in kinds.values():
        *older, (run, specs) = _runs(items)
        rest = [o for r, _ in older for o in r]
        rule = _rrule(run, specs)
        if (len(run) >= 2 and run[-1].local.year >= last_year
                and _holds(zone, run, rule, range(last_year + 1, last_year + 1 + _VERIFY))):
            part = _observance(run[0])
            part.add("rrule", rule)
            tz.add_component(part)
        else:
            rest.extend(run)
        if rest:
            part = _observance(rest[0])
            for onset in rest[1:]:
                part.add("rdate", onset.local)
            tz.add_component(part)
    return tz


@lru_cache(maxsize=128)
def cached(tzid: str, first_year: int, last_year: int) -> icalendar.Timezone | None:
    """``build``, made once per zone and range (the caller must not change the result)."""
    return build(tzid, first_year, last_year)


def for_years(tzid: str, years: list[int]) -> icalendar.Timezone | None:
    """The definition for a zone used by events in ``years``: from the year before the first
    to two years after the last (a fresh copy, free to add to a calendar)."""
    made = cached(tzid, min(years) - 1, max(years) + 2)
    return None if made is None else copy.deepcopy(made)
