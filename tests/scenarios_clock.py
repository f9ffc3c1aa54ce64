"""Clock and time-zone scenarios (docs/design.md sections 3 and 5), each returning a ScenarioResult.

- :func:`run_clock_and_zones`: a consultant's history around the 2026 DST changes in several
  zones (Santiago too: its clocks change at midnight), the clock stepped through every day
  around each change (00:30, 01:30, 02:30, 09:30 and 23:45 local, both sides of a fold),
  each plan compared with an independent reference implementation of the counter
  (:func:`reference_plan`) and each reminder's DTSTART and alarm with one of the placement
  rule (:func:`reference_spot`), remembering across cycles where each reminder was placed
  (:class:`Placements`).
- :func:`run_clock_jumps`: the clock jumps forward and back between cycles while the history
  changes; nothing lost, nothing duplicated, past reminders never rewritten.
- :func:`run_need_marker_quoted`: the reminder after a ``#need`` contact quotes it in its
  prep note; once past it must count as a check-in, not as another reset.
- :func:`run_two_instances`: two states, one target (CalDAV or Google), cycles run at once.
- :func:`run_mass_change_guard`: a source or target suddenly empty, through ``clientlove sync``.

Every scenario counts its cycles and adds what it finds wrong to ``violations``; the tests in
``test_clock_zones.py`` assert there is none.
"""

from __future__ import annotations

import calendar as calendar_module
import dataclasses
import hashlib
import json
import logging
import os
import random
import re
import threading
import time as wallclock
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import requests
import yaml
from click.testing import CliRunner
from dateutil.relativedelta import relativedelta

from daemon.cli import cli
from daemon.config import parse_config
from daemon.cycle import run_cycle
from daemon.identity import parse_key, slug
from daemon.model import Attendee, Event, PartStat
from daemon.reminder_ical import HASH_PROP, key_of
from daemon.retry import Backoff
from daemon.state import State
from providers.memory import MemorySource, MemoryTarget
from tests.invariants import ScenarioResult, check_state, check_target

#: The zones of the brief, plus Santiago, whose clocks change at midnight (a gap at 00:00).
ZONES = ("Europe/London", "America/New_York", "Australia/Sydney", "Asia/Kolkata",
         "Pacific/Auckland", "America/Sao_Paulo", "America/Santiago")
#: Stand-in "change" days for zones without DST in 2026 (the EU dates).
NO_DST_DAYS = (date(2026, 3, 29), date(2026, 10, 25))
DAY_TIMES = (time(0, 30), time(1, 30), time(2, 30), time(9, 30), time(23, 45))
REMINDER_TIME = time(9, 30)
ME = "me@myfirm.example"
NO_WAIT = Backoff(attempts=2, base=0.0, cap=0.0)
STAMP = datetime(2026, 1, 1, tzinfo=UTC)

# the rule of docs/design.md section 3 with the defaults (reference implementation below)
BASE_DAYS = 7
EARLY_DAYS = 2
MAX_MONTHS = 2
WORKDAYS = frozenset(range(5))  # Monday to Friday

CLIENTS = ("Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Soylent", "Tyrell", "Wayne")
OTHER_ZONES = (ZoneInfo("UTC"), ZoneInfo("Asia/Tokyo"), ZoneInfo("America/Los_Angeles"))
EMPTY_CALENDAR = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//user//their app//EN\r\n"
                  b"END:VCALENDAR\r\n")


@dataclass
class ClockResult(ScenarioResult):
    """A ScenarioResult that also counts refusals handled and keeps observations."""

    handled: int = 0
    notes: list[str] = field(default_factory=list)


# -- the reference counter (docs/design.md section 3, written independently of daemon/) ------


def add_months(day: date, months: int) -> date:
    """Calendar-month arithmetic: the same day of the month, else the month's last day."""
    years, month0 = divmod(day.month - 1 + months, 12)
    year, month = day.year + years, month0 + 1
    return date(year, month, min(day.day, calendar_module.monthrange(year, month)[1]))


@dataclass(frozen=True)
class RefPlan:
    """What the rule says for one client on one day."""

    last: date | None
    interval: int | None
    due: date
    booked: date | None
    reminder: date | None

    def row(self) -> dict[str, Any]:
        return {"last_contact": _iso(self.last), "interval_days": self.interval,
                "due": _iso(self.due), "booked": _iso(self.booked),
                "reminder": _iso(self.reminder)}


def reference_plan(contacts: Iterable[date], future: Iterable[date], today: date,
                   workdays: frozenset[int] = WORKDAYS,
                   resets: Iterable[date] = ()) -> RefPlan:
    """The due date by the rule: base 7 days, back to base on a reset (``resets``: the days
    of contacts marked ``#need``), doubled when on schedule (gap >= I - 2), at most two
    calendar months from the contact, overdue -> today, to the next work day, and no
    reminder when a meeting is booked on or before it. No announcements and no skips (the
    generated histories have none)."""
    days = sorted({d for d in contacts if d <= today})
    reset_days = set(resets)
    interval: int | None = None
    previous: date | None = None
    for day in days:
        if previous is None or interval is None or day in reset_days:
            interval = BASE_DAYS
        elif (day - previous).days >= interval - EARLY_DAYS:
            interval = 2 * interval
        interval = min(interval, (add_months(day, MAX_MONTHS) - day).days)
        previous = day
    due = today if previous is None or interval is None else previous + timedelta(days=interval)
    due = max(due, today)
    while due.weekday() not in workdays:
        due += timedelta(days=1)
    ahead = sorted(d for d in future if d > today)
    booked = ahead[0] if ahead else None
    reminder = None if booked is not None and booked <= due else due
    return RefPlan(previous, interval, due, booked, reminder)


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def plan_rows(plans: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """The engine's plans (``CycleReport.plans``) as the rows ``status --json`` prints."""
    return {
        p.client: {"last_contact": _iso(p.last_contact.day if p.last_contact else None),
                   "interval_days": p.counter.interval_days, "due": _iso(p.due),
                   "booked": _iso(p.booked), "reminder": _iso(p.reminder_day)}
        for p in plans
    }


# -- the reference placement (docs/design.md section 3 "placement", written independently) ---------

#: the placement defaults: a new or moved reminder starts at least ``LEAD`` after the cycle,
#: at the slot, else on a quarter hour up to ``LATEST`` the same day, else the next work day
LEAD = timedelta(minutes=15)
QUARTER = timedelta(minutes=15)
LATEST = time(17, 0)
ALARM_BEFORE = timedelta(days=1)
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Spot:
    """Where a reminder is: its start (aware) and how long before it the alarm fires."""

    start: datetime
    alarm: timedelta | None


def _ceil(moment: datetime, step: timedelta) -> datetime:
    """``moment`` rounded up to a multiple of ``step`` of its own wall clock."""
    hour = moment.replace(minute=0, second=0, microsecond=0)
    steps = -((hour - moment) // step)
    return hour + steps * step


def reference_start(day: date, now: datetime, tz: ZoneInfo,
                    workdays: frozenset[int] = WORKDAYS) -> datetime:
    """The start of a new or moved reminder for ``day`` by the rule (instants compared in
    UTC): the slot if at least 15 minutes ahead; on today, the next quarter hour at least 15
    minutes ahead while it is no later than 17:00; else the slot of the next work day."""
    earliest = now.astimezone(UTC) + LEAD
    slot = datetime.combine(day, REMINDER_TIME, tzinfo=tz)
    if slot.astimezone(UTC) >= earliest:
        return slot
    if day == now.astimezone(tz).date():
        wall = _ceil(earliest.astimezone(tz).replace(tzinfo=None), QUARTER)
        if wall.date() == day and wall.time() <= LATEST:
            return wall.replace(tzinfo=tz)
    following = day + timedelta(days=1)
    while True:
        slot = datetime.combine(following, REMINDER_TIME, tzinfo=tz)
        if following.weekday() in workdays and slot.astimezone(UTC) >= earliest:
            return slot
        following += timedelta(days=1)


def alarm_moment(start: datetime, alarm: timedelta, tz: tzinfo) -> datetime:
    """When an alarm ``alarm`` before ``start`` fires: ``TRIGGER:-P1D`` is a nominal day (the
    same wall time the day before, RFC 5545 3.3.6), hours and minutes are exact."""
    if alarm == timedelta(days=alarm.days):
        local = start.astimezone(tz)
        return datetime.combine(local.date() - alarm, local.time(), tzinfo=tz)
    return start.astimezone(UTC) - alarm


def reference_alarm(start: datetime, now: datetime, tz: tzinfo) -> timedelta:
    """A day ahead if that moment is still to come (from the next whole minute), else as soon
    as possible: whole minutes from the next whole minute to the start, never negative."""
    soonest = _ceil(now.astimezone(UTC), MINUTE)
    if alarm_moment(start, ALARM_BEFORE, tz) >= soonest:
        return ALARM_BEFORE
    left = start.astimezone(UTC) - soonest
    return max(timedelta(0), (left // MINUTE) * MINUTE)


def reference_spot(day: date, now: datetime, tz: ZoneInfo, held: Spot | None) -> Spot:
    """Where the rule puts the reminder for ``day``. ``held`` is our unchanged pending
    reminder as last seen: it stays where it is when it is on ``day`` and that day is today,
    or when it already sits where the rule would place it now (after the working day, the next
    work day's slot; a clock set back moves one elsewhere); its alarm stays too once a day
    ahead has passed."""
    fresh = reference_start(day, now, tz)
    today = now.astimezone(tz).date()
    if held is not None and (held.start.astimezone(tz).date() == day == today
                             or held.start == fresh):
        alarm = reference_alarm(held.start, now, tz)
        if alarm != ALARM_BEFORE and held.alarm is not None and \
                timedelta(0) <= held.alarm <= ALARM_BEFORE:
            alarm = held.alarm
        return Spot(held.start, alarm)
    return Spot(fresh, reference_alarm(fresh, now, tz))


# -- DST changes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A clock change in a zone: the local day, and the middle of its gap or fold."""

    zone: str
    day: date
    odd: time  # a wall time inside the gap or fold (or 02:30 without DST)
    kind: str  # "gap", "fold" or "none"

    @property
    def label(self) -> str:
        return f"{self.zone} {self.kind} {self.day}"


def dst_changes(zone: str, year: int = 2026) -> list[Change]:
    """The zone's clock changes in ``year``, found from the tz database, or two stand-ins."""
    tz = ZoneInfo(zone)
    out: list[Change] = []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    offset = moment.astimezone(tz).utcoffset()
    while moment < end:
        following = moment + timedelta(hours=1)
        new = following.astimezone(tz).utcoffset()
        if new != offset:
            assert offset is not None and new is not None
            instant = moment
            while instant.astimezone(tz).utcoffset() == offset:
                instant += timedelta(minutes=15)
            wall = (instant + offset).replace(tzinfo=None)  # the clock as it hits the change
            span = abs(new - offset)
            start = wall if new > offset else wall - span
            middle = start + span / 2
            out.append(Change(zone, middle.date(), middle.time(),
                              "gap" if new > offset else "fold"))
            offset = new
        moment = following
    if not out:
        out = [Change(zone, day, time(2, 30), "none") for day in NO_DST_DAYS]
    return out


def local_moments(day: date, wall: time, tz: ZoneInfo) -> list[datetime]:
    """The instants a wall clock shows ``wall`` on ``day``: two in a fold, one otherwise (for a
    time in a gap, the one RFC 5545 gives: read with the offset before the gap)."""
    first = datetime.combine(day, wall, tzinfo=tz)
    second = first.replace(fold=1)
    exists = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == \
        first.replace(tzinfo=None)
    if exists and first.astimezone(UTC) != second.astimezone(UTC):
        return [first, second]
    return [first]


# -- histories -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Meeting:
    """A meeting with a client. ``day`` is the local date it counts on, by construction."""

    uid: str
    client: str
    day: date
    wall: time | None  # None: an all-day event
    fold: int = 0
    style: str = "zone"  # zone, utc, other (another zone's TZID) or floating
    visible_from: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    other: int = 0  # which of OTHER_ZONES
    reset: bool = False  # "#need" in the title
    note: str = ""  # the description

    @property
    def title(self) -> str:
        return f"Call with {self.client}" + (" #need" if self.reset else "")

    @property
    def resets(self) -> bool:
        """Whether the meeting carries a reset marker (title or description)."""
        return self.reset or "#need" in self.note.lower()

    def aware(self, tz: ZoneInfo) -> datetime:
        assert self.wall is not None
        return datetime.combine(self.day, self.wall, tzinfo=tz).replace(fold=self.fold)

    def start(self, tz: ZoneInfo, *, floating: bool) -> date | datetime:
        """The DTSTART as a source would carry it (the same instant in every style)."""
        if self.wall is None:
            return self.day
        moment = self.aware(tz)
        if self.style == "utc":
            return moment.astimezone(UTC)
        if self.style == "other":
            return moment.astimezone(OTHER_ZONES[self.other])
        if self.style == "floating" and floating:
            return moment.replace(tzinfo=None)
        return moment

    @property
    def email(self) -> str:
        return f"contact@{slug(self.client)}.example"


def client_config(names: Sequence[str] = CLIENTS) -> list[dict[str, Any]]:
    return [{"name": n, "domains": [f"{slug(n)}.example"]} for n in names]


def memory_event(meeting: Meeting, tz: ZoneInfo, source: str = "work") -> Event:
    return Event(source=source, uid=meeting.uid, start=meeting.start(tz, floating=False),
                 summary=meeting.title, description=meeting.note,
                 attendees=(Attendee(meeting.email, PartStat.ACCEPTED),))


def ics_history(meetings: Iterable[Meeting], tz: ZoneInfo) -> bytes:
    """The meetings as a calendar file a consultant's app would export (with VTIMEZONEs)."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//user//their app//EN")
    cal.add("version", "2.0")
    years: list[int] = []
    for meeting in meetings:
        event = icalendar.Event()
        event.add("uid", meeting.uid)
        event.add("dtstamp", STAMP)
        start = meeting.start(tz, floating=True)
        event.add("dtstart", start)
        if isinstance(start, datetime):
            event.add("dtend", start + timedelta(hours=1))
        else:
            event.add("dtend", start + timedelta(days=1))
        event.add("summary", meeting.title)
        if meeting.note:
            event.add("description", meeting.note)
        event.add("attendee", f"mailto:{meeting.email}", parameters={"PARTSTAT": "ACCEPTED"})
        cal.add_component(event)
        years.append(meeting.day.year)
    if years:
        cal.add_missing_timezones(first_date=date(min(years) - 1, 1, 1),
                                  last_date=date(max(years) + 2, 1, 1))
    return cal.to_ical()


def dst_history(change: Change, rng: random.Random, days_around: int,
                allow_floating: bool) -> list[Meeting]:
    """A history for the eight clients around a clock change.

    Acme Corp near midnight (23:30, 23:59), Globex just after it (00:00 to 00:45, gaps on
    either side of "on schedule"), Initech in the gap or fold itself and around it, Umbrella
    all-day workshops (in the window: a ``#need``, then gaps of exactly I - 2), Hooli never
    met, Soylent on schedule up to the two-month cap, Tyrell booked far ahead every ten days,
    Wayne met once long ago (overdue). Most meetings appear in the calendar a few days
    before they happen.
    """
    tz = ZoneInfo(change.zone)
    first = change.day - timedelta(days=days_around)
    last = change.day + timedelta(days=days_around)
    begin, end = first - timedelta(days=100), last + timedelta(days=30)
    styles = ["zone", "zone", "utc", "other"] + (["floating"] if allow_floating else [])
    out: list[Meeting] = []

    def add(client: str, day: date, wall: time | None, lead_days: float,
            fold: int = 0, reset: bool = False) -> None:
        if wall is None:
            at = datetime.combine(day, time(0), tzinfo=tz)
        else:
            at = datetime.combine(day, wall, tzinfo=tz).replace(fold=fold)
        style = rng.choice(styles)
        out.append(Meeting(f"{slug(client)}-{len(out)}@clock.test", client, day, wall, fold,
                           style, (at - timedelta(days=lead_days)).astimezone(UTC),
                           rng.randrange(len(OTHER_ZONES)), reset))

    day = begin + timedelta(days=rng.randrange(5))
    while day <= end:
        add("Acme Corp", day, rng.choice([time(23, 30), time(23, 59)]), 3)
        day += timedelta(days=rng.randint(6, 16))
    day = begin + timedelta(days=rng.randrange(5))
    while day <= end:
        add("Globex", day, rng.choice([time(0, 0), time(0, 15), time(0, 45)]), 1)
        day += timedelta(days=rng.choice([4, 5, 6, 7, 11, 12, 13, 25, 26, 27]))
    add("Initech", begin + timedelta(days=20), time(10), 5)
    for offset, wall in ((-1, time(1, 30)), (0, change.odd), (1, time(2, 30)),
                         (8, change.odd), (days_around + 3, time(2, 30))):
        moments = local_moments(change.day + timedelta(days=offset), wall, tz)
        for moment in moments:
            add("Initech", moment.date(), wall, 5, fold=moment.fold)
    day = begin + timedelta(days=rng.randrange(10))
    while day <= first - timedelta(days=20):
        add("Umbrella", day, None, 7)
        day += timedelta(days=rng.randint(14, 28))
    day = first - timedelta(days=rng.randint(2, 4))
    for gap in (0, 5, 12, 26, 4):  # a reset, then exactly "I - early" (doubles), then held
        day += timedelta(days=gap)
        add("Umbrella", day, None, 7, reset=not gap)
    last = first - timedelta(days=rng.randint(45, 62))
    for back in (105, 98, 84, 56, 0):  # gaps 7, 14, 28, 56: doubling to the cap
        add("Soylent", last - timedelta(days=back), time(12), 1)
    add("Wayne", begin - timedelta(days=10), time(12), 1)
    day = begin
    while day <= end:
        add("Tyrell", day, time(9), 400)
        day += timedelta(days=10)
    return out


def read_window(today: date) -> tuple[date, date]:
    """The days a file or CalDAV source is read for (``history_window`` of 12 months back to
    the first of the month; forward the two-month maximum plus 62 days, to the next first of a
    month): a meeting that starts outside is not read at all."""
    start = add_months(today, -12).replace(day=1)
    ahead = add_months(today, MAX_MONTHS) + timedelta(days=62)
    end = add_months(ahead.replace(day=1), 1)
    return start, end


def expected_plans(meetings: Iterable[Meeting], ours: Iterable[tuple[str, date]],
                   today: date, now: datetime, *, windowed: bool = False) -> dict[str, RefPlan]:
    """The reference plan of every client: meetings seen by ``now`` (on or before today are
    contact, after it booked) and our own reminders before today (contact). ``windowed``:
    only meetings in the read window count (ICS and CalDAV sources read no more; the
    in-memory source hands out everything)."""
    contacts: dict[str, list[date]] = {c: [] for c in CLIENTS}
    future: dict[str, list[date]] = {c: [] for c in CLIENTS}
    resets: dict[str, list[date]] = {c: [] for c in CLIENTS}
    start, end = read_window(today)
    for meeting in meetings:
        if meeting.visible_from > now:
            continue
        if windowed and not start <= meeting.day < end:
            continue
        (contacts if meeting.day <= today else future)[meeting.client].append(meeting.day)
        if meeting.resets:
            resets[meeting.client].append(meeting.day)
    for client, day in ours:
        if day < today:
            contacts.setdefault(client, []).append(day)
    return {c: reference_plan(contacts[c], future[c], today, resets=resets[c])
            for c in contacts}


# -- looking at a target's events -------------------------------------------------------------

_BY_SLUG = {slug(c): c for c in CLIENTS}


def client_of(key: str) -> str | None:
    parsed = parse_key(key)
    return _BY_SLUG.get(parsed[0]) if parsed else None


def event_day(event: icalendar.cal.Component, tz: tzinfo) -> date | None:
    start = event.get("dtstart")
    if start is None:
        return None
    value = start.dt
    return value.astimezone(tz).date() if isinstance(value, datetime) else value


def fingerprint(event: icalendar.cal.Component) -> str:
    """What a user sees of one of our events (never the bytes: a re-render may reorder)."""
    start = event["dtstart"].dt
    when = start.astimezone(UTC).isoformat() if isinstance(start, datetime) else str(start)
    parts = [when, str(event.get("summary", "")), str(event.get("description", "")),
             str(event.get(HASH_PROP, "")), str(event.get("sequence", "")),
             str(event.get("status", ""))]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def ours_of(events: Iterable[icalendar.cal.Component]) -> dict[str, icalendar.cal.Component]:
    return {k: e for e in events if (k := key_of(e)) is not None}


def vtimezones(data: bytes) -> dict[str, tzinfo]:
    """Each VTIMEZONE of a calendar file as a tzinfo built from the file's own rules."""
    cal = icalendar.Calendar.from_ical(data)
    out: dict[str, tzinfo] = {}
    for component in cal.walk("VTIMEZONE"):
        try:
            out[str(component["tzid"])] = component.to_tz(lookup_tzid=False)
        except Exception as exc:  # a VTIMEZONE a calendar app cannot use is a problem too
            raise AssertionError(f"unreadable VTIMEZONE {component['tzid']}: {exc}") from None
    return out


def alarms_of(event: icalendar.cal.Component) -> list[timedelta]:
    """How long before the start each DISPLAY alarm of an event fires (relative TRIGGERs)."""
    out = []
    for alarm in event.walk("VALARM"):
        trigger = alarm.get("trigger")
        value = getattr(trigger, "dt", None)
        if str(alarm.get("action", "")).upper() == "DISPLAY" and isinstance(value, timedelta):
            out.append(-value)
    return out


@dataclass
class Seen:
    """One of our reminders as a person saw it, and the cycle that gave it that start and
    alarm."""

    start: datetime
    alarm: timedelta | None
    placed: datetime
    cancelled: bool


class Placements:
    """What the person remembers of our reminders across the cycles of a scenario: the start
    and alarm each was given when it was placed. Before a cycle it says where the rule puts
    each due client's reminder (one already on its day stays); after it, it checks what was
    newly placed: at least 15 minutes after that cycle, the alarm one DISPLAY VALARM firing
    at or after that cycle (to the minute), not after the start, at most a day ahead."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.seen: dict[str, Seen] = {}

    def held(self, client: str, today: date) -> Spot | None:
        """The client's pending reminder the engine keeps: its latest generation whose day is
        today or later (one set back into the future by the clock counts too)."""
        best: tuple[int, Seen] | None = None
        for key, seen in self.seen.items():
            parsed = parse_key(key)
            if parsed is None or client_of(key) != client or seen.cancelled:
                continue
            if seen.start.astimezone(self.tz).date() >= today and \
                    (best is None or parsed[1] > best[0]):
                best = (parsed[1], seen)
        return Spot(best[1].start, best[1].alarm) if best is not None else None

    def expect(self, plans: dict[str, RefPlan], now: datetime) -> dict[str, Spot]:
        """Where the rule puts each planned reminder in the cycle at ``now``."""
        today = now.astimezone(self.tz).date()
        return {c: reference_spot(p.reminder, now, self.tz, self.held(c, today))
                for c, p in plans.items() if p.reminder is not None}

    def placed(self, plans: dict[str, RefPlan], spots: dict[str, Spot]) -> dict[str, RefPlan]:
        """The plans with the day each reminder is placed on (the status shows that day)."""
        return {c: dataclasses.replace(p, reminder=spots[c].start.astimezone(self.tz).date())
                if c in spots else p for c, p in plans.items()}

    def observe(self, events: Iterable[icalendar.cal.Component], now: datetime,
                label: str) -> list[str]:
        """Remember the target after the cycle at ``now``; check what that cycle placed."""
        problems: list[str] = []
        seen: dict[str, Seen] = {}
        for key, event in ours_of(events).items():
            start = event["dtstart"].dt
            if not isinstance(start, datetime) or start.tzinfo is None:
                continue  # check_reminders reports it
            alarms = alarms_of(event)
            alarm = alarms[0] if len(alarms) == 1 else None
            cancelled = str(event.get("status", "")).upper() == "CANCELLED"
            old = self.seen.get(key)
            if old is not None and (old.start, old.alarm) == (start, alarm):
                seen[key] = dataclasses.replace(old, cancelled=cancelled)
                continue
            seen[key] = Seen(start, alarm, now, cancelled)
            problems += [f"{label}: {key}: {p}" for p in self._placement(start, alarms, now)]
        self.seen = seen
        return problems

    def _placement(self, start: datetime, alarms: list[timedelta], now: datetime) -> list[str]:
        problems = []
        if start < now + LEAD:
            problems.append(f"placed at {now.isoformat()} to start "
                            f"{start.astimezone(self.tz).isoformat()}, less than 15 minutes "
                            "ahead")
        if len(alarms) != 1:
            return [*problems, f"{len(alarms)} DISPLAY alarms, not one"]
        (alarm,) = alarms
        fires = alarm_moment(start, alarm, self.tz)
        if not timedelta(0) <= alarm <= ALARM_BEFORE:
            problems.append(f"alarm {alarm} before the start, not between 0 and a day")
        if fires < now.replace(second=0, microsecond=0):
            problems.append(f"alarm fires {fires.astimezone(self.tz).isoformat()}, before the "
                            f"cycle that wrote it ({now.astimezone(self.tz).isoformat()})")
        if fires > start:
            problems.append(f"alarm fires {fires.isoformat()}, after the start")
        return problems


def check_reminders(events: Iterable[icalendar.cal.Component], today: date, tz: ZoneInfo,
                    plans: dict[str, RefPlan], label: str,
                    zones: dict[str, tzinfo] | None = None,
                    spots: dict[str, Spot] | None = None) -> list[str]:
    """Each due client has exactly one pending reminder on the reference day (``plans`` as
    :meth:`Placements.placed` gives them), at the start and with the alarm of ``spots`` when
    given, the others none; every reminder of ours starts on a quarter hour from 09:30 to
    17:00 local wall time (also by the file's own VTIMEZONE when ``zones`` is given)."""
    problems: list[str] = []
    pending: dict[str, list[tuple[datetime, list[timedelta]]]] = {c: [] for c in plans}
    for key, event in ours_of(events).items():
        start = event["dtstart"].dt
        if not isinstance(start, datetime) or start.tzinfo is None:
            problems.append(f"{label}: {key} starts {start!r}, not a zoned date-time")
            continue
        local = start.astimezone(tz)
        clock = local.time()
        if not REMINDER_TIME <= clock <= LATEST or local.minute % 15 or local.second:
            problems.append(f"{label}: {key} starts at {local.isoformat()}, not on a quarter "
                            "hour from 09:30 to 17:00 local")
        tzid = event["dtstart"].params.get("TZID")
        if zones is not None and tzid:
            rules = zones.get(str(tzid))
            if rules is None:
                problems.append(f"{label}: {key} names TZID {tzid} without a VTIMEZONE")
            else:
                wall = start.replace(tzinfo=None)
                own = wall.replace(tzinfo=rules).utcoffset()
                if own != local.utcoffset():
                    problems.append(f"{label}: {key} at {wall} is UTC{own} by the file's "
                                    f"VTIMEZONE but UTC{local.utcoffset()} in {tz}")
        day = local.date()
        client = client_of(key)
        if client is None or str(event.get("status", "")).upper() == "CANCELLED":
            continue
        if day >= today:
            pending.setdefault(client, []).append((local, alarms_of(event)))
    for client, plan in plans.items():
        found = sorted(pending.get(client, []), key=lambda item: item[0])
        days = [start.date() for start, _alarms in found]
        want = [plan.reminder] if plan.reminder is not None else []
        if days != want:
            problems.append(f"{label}: {client} has pending reminders on "
                            f"{[d.isoformat() for d in days]}, the rule says "
                            f"{[d.isoformat() for d in want]}")
        elif spots is not None and client in spots and found:
            (start, alarms), spot = found[0], spots[client]
            if start != spot.start or alarms != [spot.alarm]:
                problems.append(
                    f"{label}: {client}'s reminder starts {start.isoformat()} with alarms "
                    f"{[str(a) for a in alarms]} before; the rule says "
                    f"{spot.start.astimezone(tz).isoformat()}, {spot.alarm} before")
    return problems


def compare_plans(engine: dict[str, dict[str, Any]], reference: dict[str, RefPlan],
                  label: str) -> list[str]:
    problems = []
    for client, plan in reference.items():
        got = engine.get(client)
        want = plan.row()
        if got is None:
            problems.append(f"{label}: no plan for {client}")
            continue
        diff = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
        if diff:
            problems.append(f"{label}: {client} status differs from the rule "
                            f"(field: (engine, rule)): {diff}")
    return problems


class PastLedger:
    """Remembers every reminder of ours once its day is past; past ones must never change."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def check(self, events: Iterable[icalendar.cal.Component], today: date, tz: tzinfo,
              label: str) -> list[str]:
        problems = []
        ours = ours_of(events)
        for key, event in ours.items():
            day = event_day(event, tz)
            if day is None or day >= today:
                continue
            print_ = fingerprint(event)
            if key in self.seen and self.seen[key] != print_:
                problems.append(f"{label}: past reminder {key} ({day}) was rewritten")
            self.seen[key] = print_
        problems += [f"{label}: past reminder {key} was deleted" for key in self.seen
                     if key not in ours]
        return problems


def snapshot_past(events: Iterable[icalendar.cal.Component], today: date,
                  tz: tzinfo) -> dict[str, str]:
    """Fingerprints of our reminders whose day is before ``today``."""
    return {k: fingerprint(e) for k, e in ours_of(events).items()
            if (d := event_day(e, tz)) is not None and d < today}


def past_untouched(before: dict[str, str], events: Iterable[icalendar.cal.Component],
                   label: str) -> list[str]:
    after = {k: fingerprint(e) for k, e in ours_of(events).items()}
    return [f"{label}: past reminder {k} was {'deleted' if k not in after else 'rewritten'}"
            for k, fp in before.items() if after.get(k) != fp]


# -- driving the CLI -------------------------------------------------------------------------


class CliWorkspace:
    """A config, an ICS history and an ICS reminders file, driven through ``clientlove``."""

    def __init__(self, root: Path, zone: str, *, source: dict[str, Any] | None = None,
                 target: dict[str, Any] | None = None, clients: Sequence[str] = CLIENTS,
                 env: dict[str, str] | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.tz = ZoneInfo(zone)
        self.config = root / "config.yaml"
        self.history = root / "history.ics"
        self.reminders = root / "reminders.ics"
        self.state_path = root / "state.sqlite"
        self.runner = CliRunner()
        self.env = env or {}
        self._mtime = 0
        self.config.write_text(yaml.safe_dump({
            "timezone": zone,
            "me": [ME],
            "state_path": str(self.state_path),
            "sources": [source or {"type": "ics", "path": "history.ics", "name": "work"}],
            "target": target or {"type": "ics", "path": "reminders.ics"},
            "clients": client_config(clients),
        }))

    def write_history(self, data: bytes) -> None:
        """Replace the history; a distinct mtime each time, as after a real edit."""
        self.history.write_bytes(data)
        self._mtime = max(self._mtime + 1_000_000_000, wallclock.time_ns())
        os.utime(self.history, ns=(self._mtime, self._mtime))

    def invoke(self, *args: str, now: str) -> Any:
        return self.runner.invoke(cli, ["--config", str(self.config), "--now", now, *args],
                                  env=self.env)

    def status(self, now: str) -> tuple[int, dict[str, dict[str, Any]], str]:
        result = self.invoke("status", "--json", now=now)
        if result.exit_code != 0:
            return result.exit_code, {}, result.output
        rows = json.loads(result.stdout)
        return 0, {row["client"]: row for row in rows}, ""

    def events(self) -> list[icalendar.cal.Component]:
        if not self.reminders.exists():
            return []
        return list(icalendar.Calendar.from_ical(self.reminders.read_bytes()).walk("VEVENT"))


def now_argument(moment: datetime) -> str:
    """``--now`` as a user would type it: naive local time, with the offset only when the
    wall time is the second one of a fold."""
    if moment.fold:
        return moment.isoformat()
    return moment.replace(tzinfo=None).isoformat()


def writes_of(output: str) -> int | None:
    match = re.search(r"(\d+) writes", output)
    return int(match.group(1)) if match else None


# -- scenario 1: clock and zones --------------------------------------------------------------


def step_moments(change: Change, days_around: int, times: Sequence[time]) -> list[datetime]:
    """Every step of the clock around a change, in order (both instants of a fold)."""
    tz = ZoneInfo(change.zone)
    out: set[datetime] = set()
    for offset in range(-days_around, days_around + 1):
        day = change.day + timedelta(days=offset)
        walls = set(times) | ({change.odd} if offset == 0 else set())
        for wall in walls:
            out.update(m.astimezone(UTC) for m in local_moments(day, wall, tz))
    return [m.astimezone(tz) for m in sorted(out)]


def run_clock_and_zones(workdir: Path, *, zones: Sequence[str] = ZONES,
                        targets: Sequence[str] = ("memory", "ics"), days_around: int = 10,
                        times: Sequence[time] = DAY_TIMES, ics_days_around: int | None = None,
                        ics_times: Sequence[time] | None = None, seed: int = 2026) -> ClockResult:
    """Step the clock through each zone's 2026 clock changes and check every cycle.

    ``memory`` runs ``run_cycle`` on the in-memory providers; ``ics`` runs ``clientlove sync``
    and ``clientlove status --json`` with ``--now`` on an ICS history and an ICS target
    (``ics_days_around``/``ics_times`` may make it smaller: each step is two processes' work).
    """
    result = ClockResult("clock and zones")
    for zone in zones:
        for n, change in enumerate(dst_changes(zone)):
            for kind in targets:
                rng = random.Random(f"{seed}/{zone}/{n}/{kind}")
                if kind == "memory":
                    _zones_memory(result, change, rng, days_around, times)
                else:
                    _zones_ics(result, workdir / f"{slug(zone)}-{n}", change, rng,
                               ics_days_around if ics_days_around is not None else days_around,
                               ics_times or times)
    return result


def _zones_memory(result: ClockResult, change: Change, rng: random.Random, days_around: int,
                  times: Sequence[time]) -> None:
    tz = ZoneInfo(change.zone)
    config = parse_config({
        "timezone": change.zone, "me": [ME],
        "sources": [{"type": "ics", "path": "unused.ics", "name": "work"}],
        "target": {"type": "ics", "path": "unused-out.ics"},
        "clients": client_config(),
    }, Path("/nonexistent"))
    meetings = dst_history(change, rng, days_around, allow_floating=False)
    state = State(":memory:")
    source, target = MemorySource("work"), MemoryTarget(stamp=lambda: STAMP)
    ledger = PastLedger()
    placements = Placements(tz)
    visible: frozenset[str] | None = None
    for moment in step_moments(change, days_around, times):
        now = moment.astimezone(UTC)
        seen = frozenset(m.uid for m in meetings if m.visible_from <= now)
        if seen != visible:
            source.set_events(memory_event(m, tz) for m in meetings if m.uid in seen)
            visible = seen
        label = f"memory {change.label} now={moment.isoformat()}"
        report = run_cycle(config, state, [source], target, now, backoff=NO_WAIT)
        result.cycles += 1
        today = moment.date()
        if report.today != today:
            result.violations.append(f"{label}: the cycle's today is {report.today}")
        if not report.ok:
            result.violations.append(f"{label}: {report.errors or report.refused}")
        events = [event for event, _etag in target.objects.values()]
        _check_cycle(result, label, events, today, now, tz, meetings, plan_rows(report.plans),
                     ledger, placements, None)
    state.close()


def _zones_ics(result: ClockResult, root: Path, change: Change, rng: random.Random,
               days_around: int, times: Sequence[time]) -> None:
    tz = ZoneInfo(change.zone)
    ws = CliWorkspace(root, change.zone)
    meetings = dst_history(change, rng, days_around, allow_floating=True)
    ledger = PastLedger()
    placements = Placements(tz)
    visible: frozenset[str] | None = None
    for moment in step_moments(change, days_around, times):
        now = moment.astimezone(UTC)
        seen = frozenset(m.uid for m in meetings if m.visible_from <= now)
        if seen != visible:
            ws.write_history(ics_history([m for m in meetings if m.uid in seen], tz))
            visible = seen
        argument = now_argument(moment)
        label = f"ics {change.label} --now {argument}"
        synced = ws.invoke("sync", now=argument)
        result.cycles += 1
        if synced.exit_code != 0:
            result.violations.append(f"{label}: sync exit {synced.exit_code}: "
                                     f"{synced.output[-400:]}")
            continue
        code, rows, output = ws.status(argument)
        if code != 0:
            result.violations.append(f"{label}: status exit {code}: {output[-400:]}")
            continue
        data = ws.reminders.read_bytes() if ws.reminders.exists() else b""
        try:
            zones = vtimezones(data) if data else {}
        except AssertionError as exc:
            result.violations.append(f"{label}: {exc}")
            zones = {}
        _check_cycle(result, label, ws.events(), moment.date(), now, tz, meetings, rows,
                     ledger, placements, zones)


def _check_cycle(result: ClockResult, label: str, events: list[icalendar.cal.Component],
                 today: date, now: datetime, tz: ZoneInfo, meetings: Sequence[Meeting],
                 rows: dict[str, dict[str, Any]], ledger: PastLedger, placements: Placements,
                 zones: dict[str, tzinfo] | None) -> None:
    result.add(f"{label}: {p}" for p in check_target(events, today, tz))
    ours = [(client_of(k), d) for k, e in ours_of(events).items()
            if (d := event_day(e, tz)) is not None and client_of(k) is not None
            and str(e.get("status", "")).upper() != "CANCELLED"]
    reference = expected_plans(meetings, ours, today, now,  # type: ignore[arg-type]
                               windowed=zones is not None)
    spots = placements.expect(reference, now)
    reference = placements.placed(reference, spots)
    result.add(compare_plans(rows, reference, label))
    result.add(check_reminders(events, today, tz, reference, label, zones, spots))
    result.add(placements.observe(events, now, label))
    result.add(ledger.check(events, today, tz, label))


# -- scenario 2: clock jumps -----------------------------------------------------------------

JUMPS: tuple[tuple[str, relativedelta], ...] = (
    ("+2h", relativedelta(hours=2)),
    ("+45m30s", relativedelta(minutes=45, seconds=30)),  # off the hour and back: the lead,
    ("-45m30s", relativedelta(minutes=-45, seconds=-30)),  # the quarters, seconds, 17:00
    ("+7h", relativedelta(hours=7)),
    ("+1d", relativedelta(days=1)),
    ("+3w", relativedelta(weeks=3)),
    ("+4mo", relativedelta(months=4)),
    ("-1h", relativedelta(hours=-1)),
    ("-1d", relativedelta(days=-1)),
    ("-2w", relativedelta(weeks=-2)),
)


def _change_history(meetings: list[Meeting], rng: random.Random, today: date,
                    counter: list[int], clients: Sequence[str] = CLIENTS,
                    resets: bool = True) -> str:
    """One edit by the consultant: a meeting added (past or booked ahead, now and then marked
    ``#need`` when ``resets``), one removed, an all-day workshop, or nothing. Hooli is never
    met. Returns what was done."""
    roll = rng.random()
    client = rng.choice([c for c in clients if c != "Hooli"])
    counter[0] += 1
    uid = f"change-{counter[0]}@clock.test"
    if roll < 0.45:
        day = today + timedelta(days=rng.randint(-6, 21))
        wall = rng.choice([time(0, 15), time(9), time(14), time(23, 30)])
        reset = resets and rng.random() < 0.15
        meetings.append(Meeting(uid, client, day, wall, 0, rng.choice(["zone", "utc", "other"]),
                                other=rng.randrange(len(OTHER_ZONES)), reset=reset))
        return f"meeting {client} {day} {wall}{' #need' if reset else ''}"
    if roll < 0.6 and meetings:
        gone = meetings.pop(rng.randrange(len(meetings)))
        return f"removed {gone.client} {gone.day}"
    if roll < 0.8:
        day = today + timedelta(days=rng.randint(-3, 10))
        meetings.append(Meeting(uid, client, day, None))
        return f"all-day {client} {day}"
    return "no change"


def run_clock_jumps(workdir: Path, *, zones: Sequence[str] = ("Europe/London",
                                                               "Pacific/Auckland"),
                    targets: Sequence[str] = ("memory", "ics"), rounds: int = 3,
                    resets: bool = False, seed: int = 7) -> ClockResult:
    """The clock jumps (+2h, +45m30s, +7h, +1d, +3w, +4mo, -1h, -45m30s, -1d, -2w, shuffled
    each round) while the history changes. After each cycle: the invariants, the rule's plan,
    exactly one pending reminder per due client where the placement rule puts it (one
    already on its day stays) with the alarm it gives, past reminders (before the new today)
    untouched; and a second cycle at the same moment writes nothing. ``resets``: some new
    meetings carry ``#need``."""
    result = ClockResult("clock jumps" + (" with #need" if resets else ""))
    for zone in zones:
        for kind in targets:
            rng = random.Random(f"{seed}/{zone}/{kind}")
            _jumps(result, workdir / f"jumps-{slug(zone)}-{kind}", zone, kind, rounds, rng,
                   resets)
    return result


def _jumps(result: ClockResult, root: Path, zone: str, kind: str, rounds: int,
           rng: random.Random, resets: bool) -> None:
    tz = ZoneInfo(zone)
    start = datetime(2026, 1, 5, 9, 0, tzinfo=tz)
    meetings = [
        Meeting("seed-acme@clock.test", "Acme Corp", date(2025, 12, 15), time(23, 30)),
        Meeting("seed-globex@clock.test", "Globex", date(2026, 1, 2), time(0, 15)),
        Meeting("seed-initech@clock.test", "Initech", date(2025, 11, 3), None),
        Meeting("seed-umbrella@clock.test", "Umbrella", date(2026, 1, 12), time(10)),
    ]
    counter = [0]
    ws: CliWorkspace | None = None
    state: State | None = None
    config = None
    source = target = None
    if kind == "ics":
        ws = CliWorkspace(root, zone)
    else:
        config = parse_config({
            "timezone": zone, "me": [ME],
            "sources": [{"type": "ics", "path": "unused.ics", "name": "work"}],
            "target": {"type": "ics", "path": "unused-out.ics"},
            "clients": client_config(),
        }, Path("/nonexistent"))
        state = State(":memory:")
        source, target = MemorySource("work"), MemoryTarget(stamp=lambda: STAMP)

    def events() -> list[icalendar.cal.Component]:
        if ws is not None:
            return ws.events()
        assert target is not None
        return [event for event, _etag in target.objects.values()]

    def cycle(moment: datetime, label: str) -> tuple[bool, int | None, dict[str, Any]]:
        now = moment.astimezone(UTC)
        if ws is not None:
            ws.write_history(ics_history(meetings, tz))
            synced = ws.invoke("sync", now=moment.isoformat())
            result.cycles += 1
            if synced.exit_code != 0:
                result.violations.append(f"{label}: sync exit {synced.exit_code}: "
                                         f"{synced.output[-400:]}")
                return False, None, {}
            code, rows, output = ws.status(moment.isoformat())
            if code != 0:
                result.violations.append(f"{label}: status exit {code}: {output[-400:]}")
                return False, None, {}
            return True, writes_of(synced.stdout), rows
        assert config is not None and state is not None and source is not None
        source.set_events(memory_event(m, tz) for m in meetings)
        report = run_cycle(config, state, [source], target, now, backoff=NO_WAIT)
        result.cycles += 1
        if not report.ok:
            result.violations.append(f"{label}: {report.errors or report.refused}")
        return report.ok, report.writes, plan_rows(report.plans)

    placements = Placements(tz)

    def check(moment: datetime, label: str, rows: dict[str, Any]) -> None:
        """The rule's plan and placement after the cycle at ``moment``, then remember it."""
        after = events()
        today = moment.date()
        result.add(f"{label}: {p}" for p in check_target(after, today, tz))
        ours = [(client_of(k), d) for k, e in ours_of(after).items()
                if (d := event_day(e, tz)) is not None and client_of(k) is not None]
        reference = expected_plans(meetings, ours, today, moment,  # type: ignore[arg-type]
                                   windowed=ws is not None)
        spots = placements.expect(reference, moment)
        reference = placements.placed(reference, spots)
        result.add(compare_plans(rows, reference, label))
        result.add(check_reminders(after, today, tz, reference, label, spots=spots))
        result.add(placements.observe(after, moment, label))

    moment = start
    ok, _writes, rows = cycle(moment, f"{kind} {zone} start")
    if ok:
        check(moment, f"{kind} {zone} start", rows)
    for round_ in range(rounds):
        jumps = list(JUMPS)
        rng.shuffle(jumps)
        for name, jump in jumps:
            moment = (moment + jump).astimezone(tz)
            today = moment.date()
            change = _change_history(meetings, rng, today, counter, resets=resets)
            label = f"{kind} {zone} round {round_} jump {name} to {moment.isoformat()} ({change})"
            before = snapshot_past(events(), today, tz)
            ok, _writes, rows = cycle(moment, label)
            if not ok:
                continue
            result.add(past_untouched(before, events(), label))
            check(moment, label, rows)
            again_ok, again, _rows = cycle(moment, label + " (again)")
            if again_ok and again:
                result.violations.append(f"{label}: a second cycle at the same moment made "
                                         f"{again} writes")
            result.add(placements.observe(events(), moment, label + " (again)"))
    if state is not None:
        state.close()


def run_need_marker_quoted(*, days: int = 60, zone: str = "Europe/London") -> ClockResult:
    """A meeting marked ``#need`` (in its title for Acme Corp, in its description for
    Globex), then only our reminders, the clock stepped daily at 09:00: the reminder after
    the meeting is an on-schedule check-in (the interval doubles), not another reset, even
    though its prep note quotes the meeting."""
    result = ClockResult("#need quoted in a prep note")
    tz = ZoneInfo(zone)
    config = parse_config({
        "timezone": zone, "me": [ME],
        "sources": [{"type": "ics", "path": "unused.ics", "name": "work"}],
        "target": {"type": "ics", "path": "unused-out.ics"},
        "clients": client_config(CLIENTS[:2]),
    }, Path("/nonexistent"))
    meetings = [
        Meeting("need-acme@clock.test", "Acme Corp", date(2026, 3, 2), time(10), reset=True),
        Meeting("need-globex@clock.test", "Globex", date(2026, 3, 3), time(15),
                note="Jane needs help with the migration #need"),
    ]
    state = State(":memory:")
    source = MemorySource("work", [memory_event(m, tz) for m in meetings])
    target = MemoryTarget(stamp=lambda: STAMP)
    placements = Placements(tz)
    for offset in range(days):
        moment = datetime.combine(date(2026, 3, 3) + timedelta(days=offset), time(9), tzinfo=tz)
        report = run_cycle(config, state, [source], target, moment.astimezone(UTC),
                           backoff=NO_WAIT)
        result.cycles += 1
        today = moment.date()
        events = [event for event, _etag in target.objects.values()]
        ours = [(client_of(k), d) for k, e in ours_of(events).items()
                if (d := event_day(e, tz)) is not None and client_of(k) is not None]
        reference = {c: p for c, p in expected_plans(meetings, ours, today,  # type: ignore[arg-type]
                                                     moment).items() if c in CLIENTS[:2]}
        label = f"{today}"
        spots = placements.expect(reference, moment)
        reference = placements.placed(reference, spots)
        result.add(compare_plans(plan_rows(report.plans), reference, label))
        result.add(check_reminders(events, today, tz, reference, label, spots=spots))
        result.add(placements.observe(events, moment, label))
    state.close()
    return result


# -- scenario 3: two instances ---------------------------------------------------------------


def google_vevents(api: Any, calendar_id: str) -> list[icalendar.cal.Component]:
    """The Google calendar's live events as VEVENTs with DTSTART, for ``check_target``."""
    from providers.google import KEY_FIELD

    out = []
    for item in api.events(calendar_id):
        event = icalendar.Event()
        event.add("uid", item["id"])
        start = item.get("start") or {}
        if start.get("dateTime"):
            event.add("dtstart", datetime.fromisoformat(start["dateTime"]))
        elif start.get("date"):
            event.add("dtstart", date.fromisoformat(start["date"]))
        for attendee in item.get("attendees") or ():
            event.add("attendee", f"mailto:{attendee['email']}")
        organizer = item.get("organizer") or {}
        if organizer and not organizer.get("self"):
            event.add("organizer", f"mailto:{organizer.get('email')}")
        private = (item.get("extendedProperties") or {}).get("private") or {}
        if private.get(KEY_FIELD):
            event.add("x-clientlove-key", private[KEY_FIELD])
            event["uid"] = f"{private[KEY_FIELD]}@clientlove"
        out.append(event)
    return out


class _Conflicts(logging.Handler):
    """Counts the write races the engine met and settled (seen in its log lines)."""

    PATTERNS = ("already exists on the target", "changed on the target meanwhile",
                "was deleted by the user earlier")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts = {p: 0 for p in self.PATTERNS}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for pattern in self.PATTERNS:
            if pattern in message:
                self.counts[pattern] += 1


def run_two_instances(target_kind: str, server: Any, workdir: Path, *, rounds: int = 20,
                      zone: str = "Europe/London", seed: int = 11) -> ClockResult:
    """Two instances (two ``State`` files) run ``run_cycle`` at once against one target.

    ``target_kind`` is ``caldav`` (``server``: a running Radicale/Xandikos) or ``google``
    (``server``: the local Calendar API). An ICS file is left out: two processes writing one
    file is undefined. Each round both threads are released together (one of them now and
    then a few milliseconds late, for other interleavings); between rounds the clock moves
    and the history changes (meetings added, booked ahead, marked ``#need``, removed; now and
    then the user deletes a pending reminder). After each round: at most one pending
    reminder per client and no duplicate; after a final clean cycle of one instance, the
    state check. Races the engine settled and rounds where the two keep rewriting each
    other are kept in ``notes``.
    """
    from tests.harness import CalDavHarness, GoogleHarness

    result = ClockResult(f"two instances ({target_kind})")
    tz = ZoneInfo(zone)
    names = CLIENTS[:6]
    config = parse_config({
        "timezone": zone, "me": [ME],
        "sources": [{"type": "ics", "path": "unused.ics", "name": "work"}],
        "target": {"type": "ics", "path": "unused-out.ics"},
        "clients": client_config(names),
    }, workdir)
    harness: Any
    if target_kind == "caldav":
        harness = CalDavHarness(server)

        def listing() -> list[icalendar.cal.Component]:
            return harness.all_events()
    elif target_kind == "google":
        harness = GoogleHarness(server)
        harness.tz = tz

        def listing() -> list[icalendar.cal.Component]:
            return google_vevents(server, harness.calendar_id)
    else:
        raise ValueError(f"unknown target kind {target_kind!r}")
    rng = random.Random(f"{seed}/{target_kind}")
    states = [State(workdir / "instance-a.sqlite"), State(workdir / "instance-b.sqlite")]
    sources = [MemorySource("work"), MemorySource("work")]
    meetings = [Meeting(f"seed-{slug(n)}@clock.test", n, date(2026, 2, 2) + timedelta(days=i),
                        time(23, 30) if i % 2 else time(0, 15)) for i, n in enumerate(names[:4])]
    counter = [0]
    moment = datetime(2026, 2, 9, 8, 0, tzinfo=tz)
    writes_per_round: list[int] = []
    conflicts = _Conflicts()
    logger = logging.getLogger("clientlove.cycle")
    level = logger.level
    propagate = logger.propagate
    logger.addHandler(conflicts)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # counted here, not printed
    try:
        for round_ in range(rounds):
            moment = (moment + rng.choice([timedelta(hours=3), timedelta(days=1),
                                           timedelta(days=2), timedelta(days=5)])).astimezone(tz)
            changes = [_change_history(meetings, rng, moment.date(), counter, names)
                       for _ in range(rng.randint(1, 3))] if round_ else ["none"]
            today = moment.date()
            if round_ and rng.random() < 0.2:
                pending = [k for k, e in ours_of(listing()).items()
                           if (d := event_day(e, tz)) is not None and d >= today]
                if pending:
                    key = rng.choice(sorted(pending))
                    harness.user_delete(key)
                    changes.append(f"user deleted {key}")
            for source in sources:
                source.set_events(memory_event(m, tz) for m in meetings)
            label = f"{target_kind} round {round_} at {moment.isoformat()} ({'; '.join(changes)})"
            late = rng.choice([0.0, 0.0, 0.002, 0.01, 0.03])
            reports, crashes = _together(config, states, sources, harness.target, moment, late)
            result.cycles += 2
            for crash in crashes:
                result.crashes += 1
                result.violations.append(f"{label}: an instance raised {crash}")
            for report in reports:
                if report is not None and report.errors:
                    result.notes.append(f"{label}: {report.errors}")
            writes_per_round.append(sum(r.writes for r in reports if r is not None))
            result.add(f"{label}: {p}" for p in check_target(listing(), today, tz))
        # nothing changes now: do the two instances settle, or keep rewriting each other?
        quiet = []
        for _ in range(3):
            reports, crashes = _together(config, states, sources, harness.target, moment)
            result.cycles += 2
            result.crashes += len(crashes)
            result.violations += [f"quiet round: an instance raised {c}" for c in crashes]
            quiet.append(sum(r.writes for r in reports if r is not None))
            result.add(f"quiet round: {p}" for p in check_target(listing(), moment.date(), tz))
        if quiet[-1]:
            result.notes.append(f"with nothing changing, the two instances still write: {quiet}")
        # a final clean cycle of one instance: the state check holds
        report = run_cycle(config, states[0], [sources[0]], harness.target(),
                           moment.astimezone(UTC), backoff=NO_WAIT)
        result.cycles += 1
        if not report.ok:
            result.violations.append(f"final cycle: {report.errors or report.refused}")
    finally:
        logger.removeHandler(conflicts)
        logger.setLevel(level)
        logger.propagate = propagate
    listed = harness.target().list_ours()
    today = moment.date()
    pending_keys = {r.key for r in listed
                    if (r.start.astimezone(tz).date() if isinstance(r.start, datetime)
                        else r.start) >= today}
    result.add(f"final: {p}" for p in check_state({r.key for r in states[0].reminders()},
                                                  {r.key for r in listed}, pending_keys))
    result.add(f"final: {p}" for p in check_target(listing(), today, tz))
    result.notes.append(f"writes per round: {writes_per_round}, quiet rounds: {quiet}, "
                        f"races settled: {conflicts.counts}")
    for state in states:
        state.close()
    return result


def _together(config: Any, states: Sequence[State], sources: Sequence[MemorySource],
              make_target: Callable[[], Any], moment: datetime,
              late: float = 0.0) -> tuple[list[Any], list[str]]:
    """Run one cycle per instance in threads released at the same instant (the second
    ``late`` seconds after the first)."""
    barrier = threading.Barrier(len(states))
    reports: list[Any] = [None] * len(states)
    crashes: list[str] = []
    targets = [make_target() for _ in states]

    def work(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            if index and late:
                wallclock.sleep(late)
            reports[index] = run_cycle(config, states[index], [sources[index]], targets[index],
                                       moment.astimezone(UTC), backoff=NO_WAIT)
        except Exception as exc:
            crashes.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(states))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return reports, crashes


# -- scenario 4: the mass-change guard, through the CLI ----------------------------------------

GUARD_KINDS = ("ics-source", "ics-target", "ics-target-missing", "caldav-target",
               "caldav-source", "google-source")
GUARD_CLIENTS = CLIENTS[:5]


def _guard_meetings() -> list[Meeting]:
    """Twelve meetings in February 2026 (so the source guard's minimum of ten is met)."""
    out = []
    for i in range(12):
        client = GUARD_CLIENTS[i % 5]
        day = date(2026, 2, 2) + timedelta(days=2 * i)
        out.append(Meeting(f"guard-{i}@clock.test", client, day, time(10), 0, "zone"))
    return out


def _dav_event(meeting: Meeting, tz: ZoneInfo) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", meeting.uid)
    event.add("dtstamp", STAMP)
    start = meeting.start(tz, floating=False)
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(hours=1))
    event.add("summary", f"Call with {meeting.client}")
    event.add("attendee", f"mailto:{meeting.email}", parameters={"PARTSTAT": "ACCEPTED"})
    return event


def run_mass_change_guard(workdir: Path, kind: str, *, dav: Any = None,
                          google: Any = None) -> ClockResult:
    """A source or target suddenly empty, through ``clientlove sync`` (``kind`` in
    :data:`GUARD_KINDS`): the cycle must refuse (exit 3), say so on stderr naming the source
    or target, write nothing (target, reminders and state untouched), and ``sync --force``
    must then act. Each correct refusal counts as handled."""
    from tests.harness import CalDavHarness

    result = ClockResult(f"mass-change guard ({kind})")
    zone = "Europe/London"
    tz = ZoneInfo(zone)
    meetings = _guard_meetings()
    source_cfg: dict[str, Any] | None = None
    target_cfg: dict[str, Any] | None = None
    env: dict[str, str] = {}
    source_harness = target_harness = None
    google_calendar = ""
    if kind == "caldav-target":
        target_harness = CalDavHarness(dav)
        target_cfg = {"type": "caldav", "url": target_harness.url}
        foreign = icalendar.Event()
        foreign.add("uid", "dentist@user.test")
        foreign.add("dtstamp", STAMP)
        foreign.add("dtstart", datetime(2026, 3, 4, 15, tzinfo=tz))
        foreign.add("summary", "Dentist")
        target_harness.put_foreign(foreign)
    elif kind == "caldav-source":
        source_harness = CalDavHarness(dav)
        source_cfg = {"type": "caldav", "name": "work", "url": source_harness.url}
        for meeting in meetings:
            source_harness.put_foreign(_dav_event(meeting, tz))
    elif kind == "google-source":
        from providers.google import SCOPES

        google_calendar = google.add_calendar("Work")
        for meeting in meetings:
            start = meeting.aware(tz)
            google.add_event(google_calendar, {
                "summary": f"Call with {meeting.client}",
                "start": {"dateTime": start.isoformat(), "timeZone": zone},
                "end": {"dateTime": (start + timedelta(hours=1)).isoformat(), "timeZone": zone},
                "attendees": [{"email": meeting.email, "responseStatus": "accepted"}],
            })
        creds = workdir / "creds"
        creds.mkdir(parents=True, exist_ok=True)
        (creds / "google-me").write_text(json.dumps({
            "token": "t", "refresh_token": "r", "token_uri": f"{google.base_url}/token",
            "client_id": "c", "client_secret": "s", "scopes": SCOPES}))
        env["CREDENTIALS_DIRECTORY"] = str(creds)
        source_cfg = {"type": "google", "name": "work", "calendar": google_calendar,
                      "credential": "google-me", "api_base": google.base_url}
    elif kind not in ("ics-source", "ics-target", "ics-target-missing"):
        raise ValueError(f"unknown kind {kind!r}")
    ws = CliWorkspace(workdir / "ws", zone, source=source_cfg, target=target_cfg,
                      clients=GUARD_CLIENTS, env=env)
    if source_cfg is None:
        ws.write_history(ics_history(meetings, tz))

    first = "2026-03-02T08:00"  # a Monday: every client met in February has a reminder due
    synced = ws.invoke("sync", now=first)
    result.cycles += 1
    if synced.exit_code != 0:
        result.violations.append(f"first sync exit {synced.exit_code}: {synced.output[-500:]}")
        return result

    def target_view() -> Any:
        if target_harness is not None:
            return {href: etag for href, (etag, _cal) in target_harness.objects().items()}
        if ws.reminders.exists():
            return (ws.reminders.read_bytes(), ws.reminders.stat().st_mtime_ns)
        return None

    def state_view() -> Any:
        state = State(ws.state_path)
        try:
            return (sorted(state.reminders(), key=lambda r: r.key), sorted(state.tombstones()))
        finally:
            state.close()

    # the mass change
    where = ""
    if kind == "ics-source":
        ws.write_history(EMPTY_CALENDAR)
        where = "source work"
    elif kind == "ics-target":
        ws.reminders.write_bytes(EMPTY_CALENDAR)
        where = "target"
    elif kind == "ics-target-missing":
        ws.reminders.unlink()
        where = "target"
    elif kind == "caldav-target":
        assert target_harness is not None
        for key in list(ours_of(target_harness.all_events())):
            target_harness.user_delete(key)
        where = "target"
    elif kind == "caldav-source":
        assert source_harness is not None
        http = requests.Session()
        for href in source_harness.objects():
            reply = http.delete(source_harness._absolute(href))
            assert reply.status_code in (200, 204), reply.status_code
        where = "source work"
    else:
        for item in google.events(google_calendar):
            google.user_delete(google_calendar, item["id"])
        where = "source work"
    result.faults += 1
    before_target, before_state = target_view(), state_view()
    later = "2026-03-03T08:00"
    refused = ws.invoke("sync", now=later)
    result.cycles += 1
    problems = []
    if refused.exit_code != 3:
        problems.append(f"sync after the mass change exited {refused.exit_code}, not 3: "
                        f"{refused.output[-500:]}")
    if "refus" not in refused.stderr.lower() or where not in refused.stderr:
        problems.append(f"stderr does not say the cycle refused, naming {where!r}: "
                        f"{refused.stderr[-500:]!r}")
    if target_view() != before_target:
        problems.append("the target was written while refusing")
    if state_view() != before_state:
        problems.append("the state's reminders or skips changed while refusing")
    forced = ws.invoke("sync", "--force", now=later)
    result.cycles += 1
    writes = writes_of(forced.stdout)
    if forced.exit_code != 0 or not writes:
        problems.append(f"sync --force did not act (exit {forced.exit_code}, {writes} writes): "
                        f"{forced.output[-500:]}")
    again = ws.invoke("sync", now=later)
    result.cycles += 1
    if again.exit_code != 0 or writes_of(again.stdout):
        problems.append(f"a sync after --force: exit {again.exit_code}, "
                        f"{writes_of(again.stdout)} writes: {again.output[-300:]}")
    if target_harness is not None:
        events = target_harness.all_events()
        result.add(check_target(events, date(2026, 3, 3), tz))
        if not ours_of(events):
            problems.append("after --force the CalDAV target holds none of our reminders")
    result.add(f"{kind}: {p}" for p in problems)
    if not problems:
        result.handled += 1
    result.notes.append(f"refused with: {refused.stderr.strip()[:300]}")
    return result
