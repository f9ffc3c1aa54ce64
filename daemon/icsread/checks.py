"""Which parsed VEVENTs can be read, and the tidying they need before expansion.

icalendar parses garbage without raising: a bad line becomes an entry in
``component.errors`` or a ``vBroken`` value. An event whose broken part is one this reader
uses is skipped with the reason, so a half-read event never counts as contact; a few
harmless oddities are repaired instead, so recurring_ical_events reads the event as
RFC 5545 means it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta

from icalendar import Component
from icalendar.prop.broken import vBroken

from daemon.icsread.fields import uid_of
from daemon.icsread.recurrence import rule_problem

# Properties this reader (or the recurrence expansion) uses: a parse error in one of them makes
# the event unreliable, so it is skipped. Errors elsewhere (GEO, X-...) cannot change the result.
_USED = frozenset(
    {
        "ATTENDEE",
        "CATEGORIES",
        "DESCRIPTION",
        "DTEND",
        "DTSTART",
        "DURATION",
        "EXDATE",
        "ORGANIZER",
        "RDATE",
        "RECURRENCE-ID",
        "RRULE",
        "SEQUENCE",
        "STATUS",
        "SUMMARY",
        "UID",
        "X-CLIENTLOVE-KEY",
    }
)

# How icalendar reports a line it could not split ("...into parts: 'NAME;...'"): the name
# tells whether the line mattered (a broken DTSTART) or not (Apple's stray X-APPLE-RADIUS=).
_BROKEN_LINE = re.compile(r"parts: '([A-Za-z0-9-]+)[;:]")


def _same_kind(a: date, b: date) -> bool:
    """Whether two values compare without error: both dates, or datetimes alike in zone use."""
    if isinstance(a, datetime) != isinstance(b, datetime):
        return False
    if isinstance(a, datetime) and isinstance(b, datetime):
        return (a.tzinfo is None) == (b.tzinfo is None)
    return True


def why_unreadable(component: Component, warn: Callable[[str], None]) -> str | None:
    """Why this component cannot be read, or None; also tidies what the expansion reads."""
    for name, message in component.errors:
        if name is None:  # a line icalendar could not split; guess its property name
            guess = _BROKEN_LINE.search(message)
            name = guess.group(1) if guess else ""
            if name.upper() not in _USED:
                warn("ignored unreadable lines in events (none of the properties read)")
        if name.upper() in _USED:
            return f"bad {name.upper()}: {message}"
    for name in _USED:  # unreadable values the errors above do not list (a copy made
        value = component.get(name)  # for X-WR-TIMEZONE has no errors), and bad rules
        for item in value if isinstance(value, list) else () if value is None else (value,):
            if isinstance(item, vBroken):
                return f"bad {name}: {item.parse_error or str(item)}"
            if name == "RRULE" and (problem := rule_problem(item)):
                return f"bad RRULE: {problem}"
    start = component.get("DTSTART")
    if start is None:
        return "no DTSTART"
    if isinstance(start, list):
        return "several DTSTART"
    value = getattr(start, "dt", None)
    if not isinstance(value, date):
        return f"bad DTSTART {value!r}"
    for name in ("DTEND", "DURATION", "RECURRENCE-ID"):
        if isinstance(component.get(name), list):
            return f"several {name}"
    tzid = start.params.get("TZID")
    if tzid and isinstance(value, datetime) and value.tzinfo is None:
        warn(f"unknown time zone {str(tzid)!r} without VTIMEZONE, read as local time")
    _tidy_end(component, value)
    _tidy_rule(component, value, warn)
    return None


def _tidy_rule(component: Component, start: date, warn: Callable[[str], None]) -> None:
    """A rule that ends before the event starts leaves no occurrence at all in
    recurring_ical_events; RFC 5545 counts DTSTART as the first one always. Drop such a
    rule (and say so), so the event is read once, as it starts."""
    rules = component.get("RRULE")
    rules = rules if isinstance(rules, list) else [rules] if rules is not None else []
    first = start.date() if isinstance(start, datetime) else start
    for rule in rules:
        for until in rule.get("UNTIL", ()) if isinstance(rule, dict) else ():
            last = until.date() if isinstance(until, datetime) else until
            if isinstance(last, date) and last < first:
                warn(f"event {uid_of(component) or '?'}: RRULE ends before DTSTART; "
                     "read DTSTART alone")
                del component["RRULE"]
                return


def _tidy_end(component: Component, start: date) -> None:
    """Drop an end that would change the start's type or come before it.

    recurring_ical_events turns an all-day start into a datetime when the end is one, and
    swaps start and end when the end comes first; the start must stay what DTSTART says.
    """
    end = component.get("DTEND")
    if end is not None:
        value = getattr(end, "dt", None)
        if not isinstance(value, date) or not _same_kind(start, value) or value < start:
            del component["DTEND"]
    duration = component.get("DURATION")
    if duration is not None:
        value = getattr(duration, "dt", None)
        if (
            not isinstance(value, timedelta)
            or value < timedelta(0)
            or (not isinstance(start, datetime) and value % timedelta(days=1))
        ):
            del component["DURATION"]
