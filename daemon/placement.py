"""When a reminder starts and when its alarm fires (docs/design.md section 3, "placement").

A reminder is never written into the past: one the user never saw would count as a contact
the next day. Pure: the planned day, the moment of the cycle and the settings go in; the start,
the alarm offset and the alarm's words come out. Whole minutes throughout, so every target
(Google keeps popups in minutes) holds exactly what was written and the content hash matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from daemon.planning import next_workday

#: A new or moved reminder starts at least this far ahead of the cycle that writes it.
LEAD = timedelta(minutes=15)
QUARTER = 15


@dataclass(frozen=True, slots=True)
class SlotRule:
    """The reminder settings placement needs (a view of ``config.reminder``)."""

    slot: time
    latest: time
    alarm_before: timedelta
    workdays: frozenset[int]
    tz: tzinfo


@dataclass(frozen=True, slots=True)
class Placement:
    start: datetime
    #: how long before ``start`` the alarm fires (at most the configured ``alarm_before``)
    alarm_before: timedelta


def _at(day: date, clock: time, tz: tzinfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=tz)


def _next_quarter(moment: datetime) -> datetime:
    """The first quarter hour at or after ``moment`` (seconds count: 15:00:01 gives 15:15)."""
    floor = moment.replace(minute=moment.minute - moment.minute % QUARTER, second=0,
                           microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=QUARTER)


def _ceil_minute(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=1)


def start_for(day: date, now: datetime, rule: SlotRule) -> datetime:
    """The start of a new or moved reminder planned for ``day``.

    The slot of its day if still at least ``LEAD`` ahead; else the next quarter hour at least
    ``LEAD`` ahead while the working day lasts (up to ``latest``); else the slot of the next
    work day.
    """
    # instants compare in UTC: aware datetimes of one zone compare (and subtract) by wall
    # time in Python, which is an hour off across a clock change
    earliest = now.astimezone(UTC) + LEAD
    slot = _at(day, rule.slot, rule.tz)
    if slot.astimezone(UTC) >= earliest:
        return slot
    if day == now.astimezone(rule.tz).date():
        quarter = _next_quarter(earliest.astimezone(rule.tz))
        if quarter.date() == day and quarter.time() <= rule.latest:
            return quarter
    following = day + timedelta(days=1)
    for _ in range(370):
        following = next_workday(following, rule.workdays)
        candidate = _at(following, rule.slot, rule.tz)
        if candidate.astimezone(UTC) >= earliest:
            return candidate
        following += timedelta(days=1)
    return _next_quarter(earliest.astimezone(rule.tz))  # a clock far outside the calendar


def alarm_for(start: datetime, now: datetime, rule: SlotRule) -> timedelta:
    """``alarm_before`` ahead of the start, or as soon as possible once that moment has
    passed: never before now, never after the start; whole minutes."""
    soonest = _ceil_minute(now.astimezone(UTC))
    if fire_moment(start, rule.alarm_before) >= soonest:
        return rule.alarm_before
    left = start.astimezone(UTC) - soonest
    return max(timedelta(0), timedelta(minutes=int(left.total_seconds() // 60)))


def fire_moment(start: datetime, alarm_before: timedelta) -> datetime:
    """When an alarm ``alarm_before`` ahead of ``start`` fires, in UTC. Whole days are
    nominal (RFC 5545: the same wall time that many days before); anything else exact."""
    if alarm_before and alarm_before % timedelta(days=1) == timedelta(0):
        return (start - alarm_before).astimezone(UTC)
    return start.astimezone(UTC) - alarm_before


def place(
    day: date,
    now: datetime,
    rule: SlotRule,
    held: tuple[datetime, timedelta | None] | None = None,
) -> Placement:
    """Where the reminder for ``day`` goes.

    ``held`` is the start and alarm offset of our unchanged pending reminder for this client,
    when there is one. It stays where it is when it is on its day today (the user may have
    seen it already) or where this cycle would place it anyway (after the working day, the
    next work day's slot: a reminder chasing the clock would be rewritten every cycle). Its
    alarm stays as written once the configured moment has passed, so the same history gives
    the same event.
    """
    today = now.astimezone(rule.tz).date()
    start = start_for(day, now, rule)
    if held is not None:
        held_start, held_alarm = held
        on_its_day = held_start.astimezone(rule.tz).date() == day == today
        if on_its_day or held_start == start:
            start = held_start
            fresh = alarm_for(start, now, rule)
            if fresh != rule.alarm_before and held_alarm is not None and \
                    timedelta(0) <= held_alarm <= rule.alarm_before:
                return Placement(start, held_alarm)
            return Placement(start, fresh)
    return Placement(start, alarm_for(start, now, rule))


def when_text(start: datetime, alarm_before: timedelta, tz: tzinfo) -> str:
    """When the reminder is, as seen at the moment its alarm fires: "today at 15:15",
    "tomorrow at 09:30", "in 2 days (Thu 09:30)"."""
    local = start.astimezone(tz)
    fires = fire_moment(start, alarm_before).astimezone(tz)
    clock = local.strftime("%H:%M")
    days = (local.date() - fires.date()).days
    if days <= 0:
        return f"today at {clock}"
    if days == 1:
        return f"tomorrow at {clock}"
    return f"in {days} days ({local.strftime('%a')} {clock})"
