"""Our reminder as an iCalendar VEVENT, and back (docs/design.md section 4).

Shared by every iCalendar target (the ICS file, CalDAV) so the marks, the alarm and the
content hash are written and read one way only. Never an ORGANIZER or ATTENDEE.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, date, datetime, timedelta, tzinfo

import icalendar

from daemon import vtimezone as tzdefs
from daemon.identity import content_hash, key_from_uid, parse_key, reminder_hash
from daemon.model import Reminder, RemoteReminder

PRODID = "-//clientlove//clientlove//EN"
KEY_PROP = "X-CLIENTLOVE-KEY"
HASH_PROP = "X-CLIENTLOVE-HASH"
#: marks our VALARM, so an alarm the user added beside it is never taken for ours
ALARM_PROP = "X-CLIENTLOVE-ALARM"
#: The properties of an event that are ours to write; a merge leaves every other one alone.
OUR_PROPS = ("dtstart", "dtend", "duration", "summary", "description", "sequence", "dtstamp",
             "last-modified", KEY_PROP, HASH_PROP)


def _our_alarm(reminder: Reminder) -> icalendar.Alarm:
    alarm = icalendar.Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("trigger", -reminder.alarm_before)
    alarm.add("description", ical_safe(reminder.alarm_text, one_line=True))
    alarm.add(ALARM_PROP, "1")
    return alarm


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
    event.add_component(_our_alarm(reminder))
    return event


def merge_vevent(held: icalendar.cal.Component, reminder: Reminder,
                 stamp: datetime) -> icalendar.cal.Component:
    """Our event as the target holds it, with only our properties and our alarm replaced.

    Whatever a user or their calendar app added (LOCATION, CATEGORIES such as ``#need``,
    COLOR, X- properties, alarms of their own, TRANSP) stays as it is; SEQUENCE goes up.
    """
    event = copy.deepcopy(held)
    sequence = _int(event.get("sequence")) + 1
    for name in OUR_PROPS:
        event.pop(name, None)
    moment = stamp.astimezone(UTC).replace(microsecond=0)
    event.add("dtstamp", moment)
    event.add("last-modified", moment)
    event.add("dtstart", reminder.start)
    event.add("dtend", reminder.end)
    event.add("summary", reminder.summary)
    event.add("description", reminder.description)
    event.add("sequence", sequence)
    event.add(KEY_PROP, reminder.key)
    event.add(HASH_PROP, reminder_hash(reminder))
    ours = our_alarm(event)
    fresh = _our_alarm(reminder)
    if ours is None:
        event.add_component(fresh)
    else:
        event.subcomponents[event.subcomponents.index(ours)] = fresh
    return event


def _int(value: object) -> int:
    try:
        return int(str(value)) if value is not None else 0
    except ValueError:
        return 0


def to_calendar_text(reminder: Reminder, stamp: datetime, sequence: int = 0) -> bytes:
    """A whole VCALENDAR holding one reminder and its VTIMEZONE (a CalDAV object body)."""
    cal = new_calendar()
    zone = vtimezone(reminder.start.tzinfo, reminder.start.year)
    if zone is not None:
        cal.add_component(zone)
    cal.add_component(to_vevent(reminder, stamp, sequence))
    text: bytes = cal.to_ical()  # icalendar leaves to_ical's return type open
    return text


def merge_calendar_text(held: bytes | str, reminder: Reminder, stamp: datetime) -> bytes:
    """A CalDAV object body as the server holds it, our event in it merged (``merge_vevent``);
    every other component stays, and the time zones are made to cover the new times.
    ``ValueError`` when the body is not iCalendar, ``LookupError`` when our event is not in it."""
    cal = icalendar.Calendar.from_ical(held)
    for index, component in enumerate(cal.subcomponents):
        if (component.name == "VEVENT" and key_of(component) == reminder.key
                and component.get("recurrence-id") is None):
            cal.subcomponents[index] = merge_vevent(component, reminder, stamp)
            break
    else:
        raise LookupError(f"reminder {reminder.key} is not in this object")
    add_timezones(cal)
    text: bytes = cal.to_ical()
    return text


def vtimezone(tz: tzinfo | None, year: int) -> icalendar.Timezone | None:
    """A VTIMEZONE for ``tz`` right for ``year`` and, where the zone's rules are yearly
    (``daemon.vtimezone``), for every year after."""
    tzid = getattr(tz, "key", None)
    if not tzid or tzid == "UTC":
        return None
    return tzdefs.for_years(tzid, [year])


def _years_by_tzid(cal: icalendar.Calendar) -> dict[str, list[int]]:
    """Each TZID the calendar's properties use, with the years of the values using it."""
    out: dict[str, list[int]] = {}
    for component in cal.subcomponents:
        if component.name == "VTIMEZONE":
            continue
        for _name, value in component.property_items(sorted=False):
            tzid = getattr(value, "params", {}).get("TZID")
            if not tzid:
                continue
            moments = [getattr(v, "dt", None) for v in getattr(value, "dts", [value])]
            years = out.setdefault(str(tzid), [])
            years.extend(m.year for m in moments if isinstance(m, date))
    return out


def add_timezones(cal: icalendar.Calendar) -> None:
    """Give every IANA zone the calendar uses one VTIMEZONE that covers all its events.

    A stale definition of such a zone (icalendar's "only works from ... to ...") is replaced;
    a zone that is not an IANA name (an Outlook export's, say) keeps the definition it has.
    The VTIMEZONEs go first, where every reader looks for them.
    """
    made: dict[str, icalendar.cal.Component] = {}
    for tzid, years in _years_by_tzid(cal).items():
        zone = tzdefs.for_years(tzid, years) if years else None
        if zone is not None:
            made[tzid] = zone
    if not made:
        return
    kept = [c for c in cal.subcomponents
            if c.name != "VTIMEZONE" or str(c.get("tzid", "")) not in made]
    zones = [c for c in kept if c.name == "VTIMEZONE"] + list(made.values())
    cal.subcomponents[:] = zones + [c for c in kept if c.name != "VTIMEZONE"]


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


def our_alarm(component: icalendar.cal.Component) -> icalendar.cal.Component | None:
    """Our VALARM in an event: the one with our mark, else (an event written before the mark)
    the first display alarm relative to the start; a user's own alarms are never it."""
    alarms = [c for c in component.subcomponents if c.name == "VALARM"]
    for alarm in alarms:
        if alarm.get(ALARM_PROP) is not None:
            return alarm
    for alarm in alarms:
        if str(alarm.get("action", "")).upper() != "DISPLAY":
            continue
        trigger = alarm.get("trigger")
        if trigger is not None and isinstance(getattr(trigger, "dt", trigger), timedelta):
            return alarm
    return None


def _alarm_before(component: icalendar.cal.Component) -> timedelta | None:
    alarm = our_alarm(component)
    if alarm is None:
        return None
    value = getattr(alarm["trigger"], "dt", alarm["trigger"])
    return -value if isinstance(value, timedelta) else None


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
