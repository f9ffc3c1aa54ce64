"""Screening VTIMEZONEs before icalendar sees them.

Every offset lookup walks a zone's rules from their DTSTART (Outlook writes 1601) to the
date asked, so a zone with a rule more frequent than yearly, or thousands of transitions a
year, hangs whoever reads one event in it. Such a zone is judged from its text alone and
replaced by the IANA zone its TZID names, or UTC.
"""

from __future__ import annotations

import functools
import re
from zoneinfo import available_timezones

from icalendar.timezone import tzp
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from daemon.icsread.recurrence import rule_problem

#: Transitions a VTIMEZONE may have in one year (real zones have two, a few four), and
#: transitions one offset lookup may walk: dateutil walks each rule from its DTSTART (Outlook
#: writes 1601) up to the date asked, anew for nearly every lookup. A zone past either is
#: replaced by the IANA zone of its TZID, or UTC.
ZONE_TRANSITIONS_PER_YEAR = 8
ZONE_TRANSITIONS_WALKED = 2000
_RRULE_LINE = re.compile(r"\n(?i:RRULE)[^:\r\n]*:([^\r\n]*)")


def zone_problem(block: str, last_year: int) -> str | None:
    """Why a VTIMEZONE would hang whoever computes its offsets, or None.

    Each offset lookup walks the zone's rules from their DTSTART (often 1601) on: a rule
    more frequent than yearly means millions of steps per event, and so does a yearly rule
    that fires thousands of times a year (every hour of 28 days of every month). Real zones
    change a few times a year; ``last_year`` is as far as lookups go (the window's end).
    """
    for match in _RRULE_LINE.finditer(block):
        parts = _rule_parts(match.group(1))
        freq = ",".join(parts.get("FREQ", [""])).strip().upper()
        if freq != "YEARLY":
            return f"RRULE FREQ={freq or '?'} (a zone changes yearly)"
        problem = rule_problem(parts)
        if problem:
            return f"RRULE {problem}"
    changes: dict[int, int] = {}  # year -> change of the transitions a year from then on
    onsets: set[str] = set()  # the single transitions (DTSTART, RDATE), each counted once
    walked = 0
    for part in _ZONE_PART.finditer(block):
        text = part.group(0)
        starts = _ZONE_START.findall(text)
        # the earliest DTSTART in it (a line of something nested must not move it later)
        first = min((int(start[:4]) for start in starts), default=1)
        rules = _RRULE_LINE.findall(text)
        if not rules:
            onsets.update(start[:15] for start in starts)
        for rule in rules:
            parts = _rule_parts(rule)
            per_year, count = _yearly_bound(parts), _first_int(parts.get("COUNT"))
            if count is not None:
                per_year = min(per_year, max(count, 0))
            until = _first_int([value[:4] for value in parts.get("UNTIL", ())])
            last = min(last_year, until if until is not None else last_year)
            _count_transitions(changes, first, last, per_year)
            years = max(last - first + 1, 0)
            walked += per_year * years if count is None else min(per_year * years, count)
        for dates in _RDATE_LINE.findall(text):
            onsets.update(value.strip()[:15] for value in dates.split(",") if value.strip())
    for onset in onsets:
        year = _first_int([onset[:4]])
        if year is not None:
            _count_transitions(changes, year, year, 1)
            walked += year <= last_year
    busiest, year = _busiest_year(changes)
    if busiest > ZONE_TRANSITIONS_PER_YEAR:
        return (f"up to {busiest} transitions in {year} (a zone has a few a year, at most "
                f"{ZONE_TRANSITIONS_PER_YEAR})")
    if walked > ZONE_TRANSITIONS_WALKED:
        return (f"each offset lookup walks up to {walked} transitions (at most "
                f"{ZONE_TRANSITIONS_WALKED})")
    return None


# one STANDARD or DAYLIGHT, up to the next (all of it: what icalendar reads as its lines)
_ZONE_PART = re.compile(r"\n(?i:BEGIN:(?:STANDARD|DAYLIGHT))\r?$.*?"
                        r"(?=\n(?i:BEGIN:(?:STANDARD|DAYLIGHT))\r?$|\Z)", re.M | re.S)

_ZONE_START = re.compile(r"\n(?i:DTSTART)[^:\r\n]*:(\d{4}[^\r\n]*)")
_RDATE_LINE = re.compile(r"\n(?i:RDATE)[^:\r\n]*:([^\r\n]*)")


def iana_name(tzid: str) -> str | None:
    """The IANA zone icalendar finds for a TZID by name, as it looks (the name, a Windows
    name, or after a vendor prefix like ``/citadel.org/.../Europe/Berlin``), or None."""
    cleaned = tzp.clean_timezone_id(tzid.strip())
    names = [cleaned, WINDOWS_TO_OLSON.get(cleaned, "")]
    if tzid.strip().startswith("/"):
        parts = cleaned.split("/")
        names += ["/".join(parts[start:]) for start in range(1, len(parts))]
    known = _iana_names()
    return next((name for name in names if name in known), None)


@functools.cache
def _iana_names() -> frozenset[str]:
    return frozenset(available_timezones())


def utc_zone(tzid: str) -> str:
    """A VTIMEZONE of UTC under ``tzid`` (its raw value), to stand in for a hostile one."""
    return (f"BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
            "TZOFFSETFROM:+0000\r\nTZOFFSETTO:+0000\r\nTZNAME:UTC\r\nEND:STANDARD\r\n"
            "END:VTIMEZONE\r\n")


def _rule_parts(rule: str) -> dict[str, list[str]]:
    """An RRULE value as its parts (``FREQ=YEARLY;BYMONTH=3`` -> {"FREQ": ["YEARLY"], ...})."""
    parts: dict[str, list[str]] = {}
    for part in rule.split(";"):
        key, _, value = part.partition("=")
        parts[key.strip().upper()] = value.split(",")
    return parts


def _first_int(values: list[str] | None) -> int | None:
    try:
        return int(values[0]) if values else None
    except ValueError:
        return None


def _yearly_bound(parts: dict[str, list[str]]) -> int:
    """The most times a FREQ=YEARLY rule can fire in one year, as dateutil reads BYxxx: the
    days it can fall on (the fewest any BYxxx allows) times the times of day."""

    def count(key: str) -> int:
        return len({value.strip().upper() for value in parts.get(key, ()) if value.strip()})

    months = count("BYMONTH")
    days: list[int] = []
    if count("BYMONTHDAY"):
        days.append((months or 12) * count("BYMONTHDAY"))
    if count("BYYEARDAY"):
        days.append(count("BYYEARDAY"))
    if count("BYWEEKNO"):
        days.append(7 * count("BYWEEKNO"))
    if count("BYDAY"):
        # "-1SU" is one day a month (of BYMONTH) or a year; "SU" is every Sunday of those
        nth = len({v.strip() for v in parts["BYDAY"] if v.strip()[:1] in set("+-0123456789")})
        every = count("BYDAY") - nth
        days.append((months or 1) * nth + (5 * months if months else 53) * every)
        if count("BYMONTHDAY"):  # "BYMONTHDAY=21,...,27;BYDAY=SU": one Sunday a month
            days.append((months or 12) * (every * _same_weekday(parts["BYMONTHDAY"]) + nth))
    if months:
        days.append(31 * months if days else months)  # alone: DTSTART's day of each month
    per_year = min([366, *days]) if days else 1
    times = max(count("BYHOUR"), 1) * max(count("BYMINUTE"), 1) * max(count("BYSECOND"), 1)
    if count("BYSETPOS"):
        return min(per_year * times, count("BYSETPOS"))
    return per_year * times


def _same_weekday(monthdays: list[str]) -> int:
    """The most of these days of a month that can fall on one weekday (days 7 apart do; a
    day counted from the month's end may fall on any)."""
    classes = [0] * 7
    from_end = 0
    for value in {value.strip() for value in monthdays if value.strip()}:
        day = _first_int([value])
        if day is None or day < 0:
            from_end += 1
        else:
            classes[day % 7] += 1
    return max(classes) + from_end


def _count_transitions(changes: dict[int, int], first: int, last: int, per_year: int) -> None:
    if first <= last and per_year:
        changes[first] = changes.get(first, 0) + per_year
        changes[last + 1] = changes.get(last + 1, 0) - per_year


def _busiest_year(changes: dict[int, int]) -> tuple[int, int]:
    """The most transitions of any year, and that year."""
    busiest, busiest_year, running = 0, 0, 0
    for year in sorted(changes):
        running += changes[year]
        if running > busiest:
            busiest, busiest_year = running, year
    return busiest, busiest_year
