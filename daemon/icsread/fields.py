"""Turning a parsed VEVENT into the fields of ``daemon.model.Event``.

A calendar says the same thing many ways (several ORGANIZERs, categories as one list or
several lines, ``MAILTO:`` in any case, a UID missing or repeated); this is the one place
that settles each, so attribution and the counter see plain, lower-cased data.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date

from icalendar import Component

from daemon.model import Attendee, Event, PartStat
from daemon.reminder_ical import owned_key

#: Longest description kept; the prep note only quotes the start of it.
DESCRIPTION_LIMIT = 2000
_MAILTO = re.compile(r"^\s*mailto:", re.I)


@dataclass(frozen=True, slots=True)
class EventFields:
    """What every occurrence of one component shares: read once per component, not once
    per occurrence (a daily series since 1990 has thousands)."""

    summary: str
    description: str
    categories: tuple[str, ...]
    cancelled: bool
    organizer: str | None
    attendees: tuple[Attendee, ...]
    clientlove_key: str | None
    classification: str

    def event(self, source: str, uid: str, start: date, occurrence: str) -> Event:
        """The Event of one occurrence of the component these fields were read from."""
        return Event(
            source=source,
            uid=uid,
            start=start,
            occurrence=occurrence,
            summary=self.summary,
            description=self.description,
            categories=self.categories,
            cancelled=self.cancelled,
            organizer=self.organizer,
            attendees=self.attendees,
            clientlove_key=self.clientlove_key,
            classification=self.classification,
        )


def read_fields(component: Component) -> EventFields:
    """The Event fields read from one component, shared by all its occurrences."""
    organizer = component.get("ORGANIZER")
    if isinstance(organizer, list):
        organizer = organizer[0] if organizer else None
    return EventFields(
        summary=_text(component, "SUMMARY"),
        description=_text(component, "DESCRIPTION")[:DESCRIPTION_LIMIT],
        categories=_categories(component),
        cancelled=_text(component, "STATUS").strip().upper() == "CANCELLED",
        organizer=(_email(organizer) or None) if organizer is not None else None,
        attendees=_attendees(component),
        # only a real reminder of ours is left out of the history: marks on a meeting with
        # people (an invitation, a copy of ours with guests added) never hide it
        clientlove_key=owned_key(component),
        classification=_text(component, "CLASS").strip().upper(),
    )


def uid_of(component: Component) -> str:
    """The UID, or the first that is not empty when a broken event has several."""
    uid = component.get("UID")
    if isinstance(uid, list):
        return next((str(item) for item in uid if str(item).strip()), "")
    return "" if uid is None else str(uid)


def made_up_uid(component: Component) -> str:
    """A stable UID for an event without one, from what a re-export does not change."""
    start = component.get("DTSTART")
    seed = f"{start.to_ical() if start is not None else b''!r}|{_text(component, 'SUMMARY')}"
    return "no-uid-" + hashlib.sha256(seed.encode()).hexdigest()[:16]


def _text(component: Component, name: str) -> str:
    value = component.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return "" if value is None else str(value)


def _categories(component: Component) -> tuple[str, ...]:
    value = component.get("CATEGORIES")
    if value is None:
        return ()
    found: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        for category in getattr(item, "cats", None) or [item]:
            text = str(category).strip()
            if text:
                found.append(text)
    return tuple(found)


def _email(address: object) -> str:
    return _MAILTO.sub("", str(address)).strip().lower()


def _attendees(component: Component) -> tuple[Attendee, ...]:
    value = component.get("ATTENDEE")
    if value is None:
        return ()
    found: list[Attendee] = []
    for attendee in value if isinstance(value, list) else [value]:
        email = _email(attendee)
        if email:
            params = getattr(attendee, "params", {})
            found.append(Attendee(email, PartStat.parse(params.get("PARTSTAT"))))
    return tuple(found)
