"""Our reminder as an iCalendar VEVENT, and back (DESIGN section 4).

Shared by every iCalendar target (the ICS file, CalDAV) so the marks, the alarm and the
content hash are written and read one way only. Never an ORGANIZER or ATTENDEE.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache

import icalendar

from daemon.identity import content_hash, key_from_uid, parse_key, reminder_hash
from daemon.model import Reminder, RemoteReminder

PRODID = "-//clientlove//clientlove//EN"
KEY_PROP = "X-CLIENTLOVE-KEY"
HASH_PROP = "X-CLIENTLOVE-HASH"


def to_vevent(reminder: Reminder, stamp: datetime, sequence: int = 0) -> icalendar.Event:
    """The VEVENT for a reminder. ``stamp`` is DTSTAMP (passed in: output is reproducible)."""
    event = icalendar.Event()
    event.add("uid", reminder.uid)
    event.add("dtstamp", stamp.astimezone(UTC).replace(microsecond=0))
    event.add("dtstart", reminder.start)
    event.add("dtend", reminder.end)
    event.add("summary", ical_safe(reminder.summary, one_line=True))
    event.add("description", ical_safe(reminder.description))
    event.add("transp", "TRANSPARENT")
    event.add("class", "PRIVATE")
    event.add("sequence", sequence)
    event.add(KEY_PROP, reminder.key)
    event.add(HASH_PROP, reminder_hash(reminder))
    alarm = icalendar.Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("trigger", -reminder.alarm_before)
    alarm.add("description", ical_safe(reminder.alarm_text, one_line=True))
    event.add_component(alarm)
    return event


def to_calendar_text(reminder: Reminder, stamp: datetime, sequence: int = 0) -> bytes:
    """A whole VCALENDAR holding one reminder and its VTIMEZONE (a CalDAV object body)."""
    cal = new_calendar()
    zone = vtimezone(reminder.start.tzinfo, reminder.start.year)
    if zone is not None:
        cal.add_component(zone)
    cal.add_component(to_vevent(reminder, stamp, sequence))
    return cal.to_ical()


@lru_cache(maxsize=64)
def vtimezone(tz: tzinfo | None, year: int) -> icalendar.Timezone | None:
    """A VTIMEZONE for ``tz`` covering the years around ``year``, made once.

    The default range (1970 to 2038) lists every transition and costs more than the rest
    of the event; a reminder only needs its own year's rules.
    """
    tzid = getattr(tz, "key", None)
    if not tzid or tzid == "UTC":
        return None
    return icalendar.Timezone.from_tzid(tzid, first_date=date(year - 1, 1, 1),
                                        last_date=date(year + 2, 1, 1))


def add_timezones(cal: icalendar.Calendar) -> None:
    """Describe every zone the calendar's events use, over the years they span."""
    years = [c["dtstart"].dt.year for c in cal.walk("VEVENT") if c.get("dtstart") is not None]
    if not years:
        return
    cal.add_missing_timezones(first_date=date(min(years) - 1, 1, 1),
                              last_date=date(max(years) + 2, 1, 1))


def new_calendar(name: str | None = None) -> icalendar.Calendar:
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if name:
        cal.add("x-wr-calname", name)
    return cal


#: Line breaks an iCalendar reader (or a JavaScript one: U+2028/2029) may take for the end of
#: a line, besides LF: they become LF, which icalendar writes as the escape ``\\n``.
_LINE_BREAKS = re.compile("\r\n?|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
#: Other control characters (NUL, ESC, C1): no TEXT value may hold them (RFC 5545 3.3.11).
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def ical_safe(text: str, *, one_line: bool = False) -> str:
    """Text from others (client names, notes, meeting titles) made fit for an ICS line.

    Every line break becomes LF (``one_line``: a space) and other control characters are
    dropped, so NUL, U+2028/2029 or U+0085 never reach a line we write. Idempotent: a
    reminder's hash, taken of its clean text, matches the text read back.
    """
    text = _LINE_BREAKS.sub("\n", text)
    text = _CONTROLS.sub("", text)
    return " ".join(text.split("\n")) if one_line else text


def owned_key(component: icalendar.cal.Component) -> str | None:
    """Our key when the event really is one of our reminders, else ``None``.

    A UID in our namespace is not enough (an invitation can carry any UID): the UID's key,
    a valid ``X-CLIENTLOVE-KEY`` equal to it, and an ``X-CLIENTLOVE-HASH`` must all be
    there, and an event with an ORGANIZER or ATTENDEE is never ours (we write neither).
    """
    if component.get("ORGANIZER") is not None or component.get("ATTENDEE") is not None:
        return None
    key, digest = component.get(KEY_PROP), component.get(HASH_PROP)
    if isinstance(key, list) or isinstance(digest, list) or digest is None:
        return None
    key_text = "" if key is None else str(key).strip()
    if not str(digest).strip() or parse_key(key_text) is None:
        return None
    uid = component.get("UID")
    if isinstance(uid, list) or key_from_uid(str(uid or "").strip()) != key_text:
        return None
    return key_text


def key_of(component: icalendar.cal.Component) -> str | None:
    """The key an event's marks name (a valid ``X-CLIENTLOVE-KEY``, else a UID in our
    namespace), else ``None``; it reads marks, it does not check ownership: for that,
    :func:`owned_key`.
    """
    raw = component.get(KEY_PROP)
    if raw is not None:
        key = str(raw).strip()
        if parse_key(key) is not None:
            return key
    return key_from_uid(str(component.get("uid", "")))


def _alarm_before(component: icalendar.cal.Component) -> timedelta | None:
    for alarm in component.walk("VALARM"):
        if str(alarm.get("action", "")).upper() != "DISPLAY":
            continue
        trigger = alarm.get("trigger")
        if trigger is None:
            continue
        value = getattr(trigger, "dt", trigger)
        if isinstance(value, timedelta):
            return -value
    return None


def _text(component: icalendar.cal.Component, name: str) -> str:
    value = component.get(name)
    return "" if value is None else str(value)


def _categories(component: icalendar.cal.Component) -> tuple[str, ...]:
    raw = component.get("categories")
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for item in items:
        cats = getattr(item, "cats", None)
        out.extend(str(c) for c in cats) if cats is not None else out.append(str(item))
    return tuple(out)


def from_vevent(
    component: icalendar.cal.Component, ref: str, etag: str | None = None
) -> RemoteReminder | None:
    """Read one of our reminders back; ``None`` when the event is not ours or unreadable."""
    key = owned_key(component)
    if key is None:
        return None
    start_prop = component.get("dtstart")
    if start_prop is None:
        return None
    start: datetime | date = start_prop.dt
    end_prop = component.get("dtend")
    if end_prop is not None:
        end: datetime | date | None = end_prop.dt
    elif component.get("duration") is not None:
        end = start + component.get("duration").dt
    else:
        end = None
    summary, description = _text(component, "summary"), _text(component, "description")
    stored = component.get(HASH_PROP)
    alarm = _alarm_before(component)
    return RemoteReminder(
        key=key,
        ref=ref,
        start=start,
        summary=summary,
        description=description,
        categories=_categories(component),
        etag=etag,
        stored_hash=None if stored is None else str(stored).strip(),
        content_hash=content_hash(summary, start, end, description, alarm),
        cancelled=_text(component, "status").upper() == "CANCELLED",
        end=end,
        alarm_before=alarm,
    )
