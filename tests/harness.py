"""Per-provider harnesses for the target contract suite.

Each harness gives a fresh provider instance (as a new process would see it) and plays the
user behind the provider's back: adding their own events, editing or deleting ours. New
providers (CalDAV, Google) add a harness here and the whole suite runs against them.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar

from daemon.reminder_ical import key_of
from providers.base import Target
from providers.ics import IcsTarget
from providers.memory import MemoryTarget

STAMP = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class TargetHarness:
    name: str
    #: capability: writes reach the calendar only at ``flush`` (a file written whole)
    writes_on_flush: bool = False

    def target(self) -> Target:
        raise NotImplementedError

    def snapshot(self) -> object:
        """What a write would change, whoever made it: every event's version (a file's bytes
        and inode, size and mtime), so an equal snapshot means nothing was written."""
        raise NotImplementedError

    def put_foreign(self, event: icalendar.Event) -> None:
        raise NotImplementedError

    def foreign_fingerprints(self) -> dict[str, str]:
        """UID -> a fingerprint of each event that is not ours (etag or content)."""
        raise NotImplementedError

    def user_edit(self, key: str, **props: object) -> None:
        raise NotImplementedError

    def user_delete(self, key: str) -> None:
        raise NotImplementedError

    def all_events(self) -> list[icalendar.cal.Component]:
        raise NotImplementedError

    def edit_foreign(self, uid: str, summary: str) -> None:
        """The user renames one of their own events (one that is not ours)."""
        raise NotImplementedError

    def user_adds_extras(self, key: str) -> None:
        """As a calendar app would: a location, categories with ``#need``, a colour, an X-
        property and a second alarm (30 minutes ahead) on our event; nothing of ours changes."""
        raise NotImplementedError

    def extras(self, key: str) -> dict[str, object]:
        """What of our event is not ours to write, as the target holds it now; ``alarms`` lists
        the minutes ahead of every alarm (ours included)."""
        return ical_extras(self._ours(key))

    def _ours(self, key: str) -> icalendar.cal.Component:
        (event,) = [e for e in self.all_events() if key_of(e) == key]
        return event


#: what ``user_adds_extras`` adds to an iCalendar event
EXTRAS = {"location": "Acme HQ, room 4", "categories": ["#need", "Clients"], "color": "tomato",
          "x-user-note": "bring the contract"}


def add_ical_extras(event: icalendar.cal.Component) -> None:
    for name, value in EXTRAS.items():
        event.add(name, value)
    alarm = icalendar.Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("trigger", -timedelta(minutes=30))
    alarm.add("description", "Leave now")
    event.add_component(alarm)


def ical_extras(event: icalendar.cal.Component) -> dict[str, object]:
    raw = event.get("categories")
    cats: list[str] = []
    for item in raw if isinstance(raw, list) else [raw] if raw is not None else []:
        cats.extend(str(c) for c in getattr(item, "cats", [item]))
    alarms = sorted(int(-a["trigger"].dt.total_seconds() // 60) for a in event.walk("VALARM"))
    return {"location": str(event.get("location", "")), "categories": cats,
            "color": str(event.get("color", "")),
            "x-user-note": str(event.get("x-user-note", "")), "alarms": alarms}


def rename_ical(event: icalendar.cal.Component, summary: str) -> None:
    del event["summary"]
    event.add("summary", summary)


class MemoryHarness(TargetHarness):
    name = "memory"

    def __init__(self) -> None:
        self._target = MemoryTarget(stamp=lambda: STAMP)

    def target(self) -> MemoryTarget:
        return self._target

    def snapshot(self) -> object:
        return {uid: etag for uid, (_ev, etag) in self._target.objects.items()}

    def put_foreign(self, event: icalendar.Event) -> None:
        self._target.put_foreign(event)

    def foreign_fingerprints(self) -> dict[str, str]:
        return {uid: etag for uid, (ev, etag) in self._target.objects.items()
                if key_of(ev) is None}

    def _uid(self, key: str) -> str:
        return f"{key}@clientlove"

    def user_edit(self, key: str, **props: object) -> None:
        self._target.user_edit(self._uid(key), **props)

    def user_delete(self, key: str) -> None:
        self._target.user_delete(self._uid(key))

    def all_events(self) -> list[icalendar.cal.Component]:
        return [ev for ev, _ in self._target.objects.values()]

    def edit_foreign(self, uid: str, summary: str) -> None:
        self._target.user_edit(uid, summary=summary)

    def user_adds_extras(self, key: str) -> None:
        event, _ = self._target.objects[self._uid(key)]
        add_ical_extras(event)
        self._target.user_edit(self._uid(key))


class IcsHarness(TargetHarness):
    name = "ics"

    def __init__(self, path: Path, stamp: Callable[[], datetime] = lambda: STAMP) -> None:
        self.path = path
        self.stamp = stamp

    writes_on_flush = True

    def target(self) -> IcsTarget:
        return IcsTarget(self.path, stamp=self.stamp)

    def snapshot(self) -> object:
        if not self.path.exists():
            return None
        stat = self.path.stat()
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns,
                hashlib.sha256(self.path.read_bytes()).hexdigest())

    def _calendar(self) -> icalendar.Calendar:
        if self.path.exists():
            return icalendar.Calendar.from_ical(self.path.read_bytes())
        cal = icalendar.Calendar()
        cal.add("prodid", "-//user//their app//EN")
        cal.add("version", "2.0")
        return cal

    def _save(self, cal: icalendar.Calendar) -> None:
        self.path.write_bytes(cal.to_ical())

    def put_foreign(self, event: icalendar.Event) -> None:
        """Another program adds an event: a separate process appends its VEVENT to the file
        in place (or writes a new file)."""
        if not self.path.exists():
            cal = self._calendar()
            cal.add_component(event)
            self._save(cal)
            return
        subprocess.run([sys.executable, "-c", _APPEND, str(self.path)],
                       input=event.to_ical(), check=True, timeout=60)

    def foreign_fingerprints(self) -> dict[str, str]:
        return {str(ev["uid"]): hashlib.sha256(ev.to_ical()).hexdigest()
                for ev in self.all_events() if key_of(ev) is None}

    def _edit(self, key: str, change: Callable[[icalendar.cal.Component], bool]) -> None:
        cal = self._calendar()
        for component in list(cal.subcomponents):
            if component.name == "VEVENT" and key_of(component) == key and change(component):
                cal.subcomponents.remove(component)
        self._save(cal)

    def user_edit(self, key: str, **props: object) -> None:
        def change(component: icalendar.cal.Component) -> bool:
            for name, value in props.items():
                prop = name.replace("_", "-")
                if prop in component:
                    del component[prop]
                component.add(prop, value)
            return False

        self._edit(key, change)

    def user_delete(self, key: str) -> None:
        self._edit(key, lambda component: True)

    def user_adds_extras(self, key: str) -> None:
        self._edit(key, lambda component: bool(add_ical_extras(component)))

    def edit_foreign(self, uid: str, summary: str) -> None:
        cal = self._calendar()
        for component in cal.walk("VEVENT"):
            if str(component.get("uid")) == uid:
                rename_ical(component, summary)
        self._save(cal)

    def all_events(self) -> list[icalendar.cal.Component]:
        if not self.path.exists():
            return []
        return list(icalendar.Calendar.from_ical(self.path.read_bytes()).walk("VEVENT"))


#: a calendar app's append: the event's text goes in before the file's last END:VCALENDAR
_APPEND = """
import sys
path = sys.argv[1]
text = open(path, newline="").read()
at = text.rstrip().rindex("END:VCALENDAR")
event = sys.stdin.read().replace("\\r\\n", "\\n").replace("\\n", "\\r\\n")
with open(path, "w", newline="") as handle:
    handle.write(text[:at] + event + text[at:])
"""

_ALL_QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"/></C:comp-filter>
  </C:filter>
</C:calendar-query>"""


class CalDavHarness(TargetHarness):
    """A calendar collection on a real server; the user acts over plain HTTP."""

    def __init__(self, server, calendar_url: str | None = None,
                 stamp: Callable[[], datetime] = lambda: STAMP) -> None:
        self.server = server
        self.name = server.kind
        self.url = calendar_url or server.new_calendar()
        self.stamp = stamp
        self.http = server.session()

    def target(self):
        from providers.caldav import CalDavTarget

        return CalDavTarget(self.url, username=self.server.username,
                            secret=lambda: self.server.password, stamp=self.stamp,
                            name=f"{self.server.kind}-target")

    def objects(self) -> dict[str, tuple[str, icalendar.Calendar]]:
        """href -> (etag, parsed calendar) for every event object in the collection."""
        from caldav.elements import cdav, dav

        with self.server.client() as client:
            response = client.report(self.url, _ALL_QUERY, depth=1)
            found = response.expand_simple_props(props=[dav.GetEtag(), cdav.CalendarData()])
        return {href: (props[dav.GetEtag.tag],
                       icalendar.Calendar.from_ical(props[cdav.CalendarData.tag]))
                for href, props in found.items() if props.get(cdav.CalendarData.tag)}

    def snapshot(self) -> object:
        return {href: etag for href, (etag, _cal) in self.objects().items()}

    def _absolute(self, href: str) -> str:
        return self.server.base_url.rstrip("/") + href

    def put_foreign(self, event: icalendar.Event) -> None:
        cal = icalendar.Calendar()
        cal.add("prodid", "-//user//their app//EN")
        cal.add("version", "2.0")
        cal.add_component(event)
        name = hashlib.sha1(str(event["uid"]).encode()).hexdigest() + ".ics"
        reply = self.http.put(self.url + name, data=cal.to_ical(),
                              headers={"Content-Type": "text/calendar"})
        assert reply.status_code in (201, 204), reply.status_code

    def foreign_fingerprints(self) -> dict[str, str]:
        out = {}
        for _href, (etag, cal) in self.objects().items():
            for event in cal.walk("VEVENT"):
                if key_of(event) is None:
                    out[str(event["uid"])] = etag
        return out

    def _find(self, key: str) -> tuple[str, str, icalendar.Calendar]:
        for href, (etag, cal) in self.objects().items():
            if any(key_of(e) == key for e in cal.walk("VEVENT")):
                return href, etag, cal
        raise KeyError(key)

    def user_edit(self, key: str, **props: object) -> None:
        href, etag, cal = self._find(key)
        for event in cal.walk("VEVENT"):
            for name, value in props.items():
                prop = name.replace("_", "-")
                if prop in event:
                    del event[prop]
                event.add(prop, value)
        reply = self.http.put(self._absolute(href), data=cal.to_ical(),
                              headers={"Content-Type": "text/calendar", "If-Match": etag})
        assert reply.status_code in (201, 204), reply.status_code

    def user_delete(self, key: str) -> None:
        href, _etag, _cal = self._find(key)
        assert self.http.delete(self._absolute(href)).status_code in (200, 204)

    def _put_back(self, href: str, etag: str, cal: icalendar.Calendar) -> None:
        reply = self.http.put(self._absolute(href), data=cal.to_ical(),
                              headers={"Content-Type": "text/calendar", "If-Match": etag})
        assert reply.status_code in (201, 204), reply.status_code

    def user_adds_extras(self, key: str) -> None:
        href, etag, cal = self._find(key)
        for event in cal.walk("VEVENT"):
            add_ical_extras(event)
        self._put_back(href, etag, cal)

    def edit_foreign(self, uid: str, summary: str) -> None:
        for href, (etag, cal) in self.objects().items():
            events = [e for e in cal.walk("VEVENT") if str(e.get("uid")) == uid]
            for event in events:
                rename_ical(event, summary)
            if events:
                self._put_back(href, etag, cal)

    def all_events(self) -> list[icalendar.cal.Component]:
        return [e for _etag, cal in self.objects().values() for e in cal.walk("VEVENT")]


class GoogleHarness(TargetHarness):
    """A calendar on the local Calendar API server; the user acts on its data directly."""

    name = "google"

    def __init__(self, api, stamp: Callable[[], datetime] = lambda: STAMP) -> None:
        import json
        from zoneinfo import ZoneInfo

        from providers.google import SCOPES, GoogleApi

        self.api = api
        self.calendar_id = api.add_calendar("Client love")
        info = {"token": "t", "refresh_token": "r", "token_uri": f"{api.base_url}/token",
                "client_id": "c", "client_secret": "s", "scopes": SCOPES}
        self._client = lambda: GoogleApi("google-target", credentials_json=lambda: json.dumps(info),
                                         api_base=api.base_url)
        self.tz = ZoneInfo("Europe/London")

    def target(self):
        from providers.google import GoogleTarget

        return GoogleTarget(self.calendar_id, self._client(), tz=self.tz)

    def snapshot(self) -> object:
        return {e["id"]: (e["etag"], e["status"])
                for e in self.api.events(self.calendar_id, include_deleted=True)}

    def _id_of(self, key: str) -> str:
        from providers.google import google_id

        return google_id(key)

    @staticmethod
    def _foreign_id(uid: str) -> str:
        return hashlib.sha1(uid.encode()).hexdigest()[:20].translate(str.maketrans("wxyz", "0123"))

    def put_foreign(self, event: icalendar.Event) -> None:
        start = event["dtstart"].dt
        self.api.add_event(self.calendar_id, {
            "id": self._foreign_id(str(event["uid"])),
            "summary": str(event.get("summary", "")),
            "start": {"dateTime": start.isoformat()},
            "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
            "attendees": [{"email": "jane.doe@acme.example"}],
        })

    def foreign_fingerprints(self) -> dict[str, str]:
        return {e["id"]: e["etag"] for e in self.api.events(self.calendar_id, True)
                if "clientloveKey" not in ((e.get("extendedProperties") or {})
                                           .get("private") or {})}

    def user_edit(self, key: str, **props: object) -> None:
        fields: dict[str, object] = {}
        for name, value in props.items():
            if name == "summary":
                fields["summary"] = value
            elif name in ("dtstart", "dtend"):
                fields["start" if name == "dtstart" else "end"] = {
                    "dateTime": value.isoformat()}  # type: ignore[attr-defined]
        if "start" in fields and "end" not in fields:
            start = props["dtstart"]
            fields["end"] = {"dateTime": (start + timedelta(minutes=15)).isoformat()}  # type: ignore[operator]
        self.api.user_edit(self.calendar_id, self._id_of(key), **fields)

    def user_delete(self, key: str) -> None:
        self.api.user_delete(self.calendar_id, self._id_of(key))

    def edit_foreign(self, uid: str, summary: str) -> None:
        self.api.user_edit(self.calendar_id, self._foreign_id(uid), summary=summary)

    def user_adds_extras(self, key: str) -> None:
        """Google's UI: a location, a colour, a second popup; another app's private key."""
        event = self.api.event(self.calendar_id, self._id_of(key))
        overrides = [*event["reminders"].get("overrides", []), {"method": "popup", "minutes": 30}]
        self.api.user_edit(self.calendar_id, self._id_of(key), location=EXTRAS["location"],
                           colorId="11",
                           reminders={"useDefault": False, "overrides": overrides},
                           extendedProperties={"private": {"otherApp": "kept"}})

    def extras(self, key: str) -> dict[str, object]:
        event = self.api.event(self.calendar_id, self._id_of(key))
        private = (event.get("extendedProperties") or {}).get("private") or {}
        return {"location": event.get("location", ""), "colorId": event.get("colorId", ""),
                "otherApp": private.get("otherApp", ""),
                "alarms": sorted(o["minutes"] for o in event["reminders"].get("overrides", []))}

    def all_events(self) -> list[icalendar.cal.Component]:
        """Ours as VEVENT-like views: no attendee or organizer fields of ours, an alarm."""
        out = []
        for item in self.api.events(self.calendar_id):
            event = icalendar.Event()
            event.add("uid", item["id"])
            if item.get("attendees"):
                for attendee in item["attendees"]:
                    event.add("attendee", f"mailto:{attendee['email']}")
            if item.get("organizer") and not item["organizer"].get("self"):
                event.add("organizer", f"mailto:{item['organizer']['email']}")
            for override in (item.get("reminders") or {}).get("overrides") or []:
                alarm = icalendar.Alarm()
                alarm.add("action", "DISPLAY")
                alarm.add("trigger", -timedelta(minutes=override["minutes"]))
                event.add_component(alarm)
            private = (item.get("extendedProperties") or {}).get("private") or {}
            if private.get("clientloveKey"):
                event.add("x-clientlove-key", private["clientloveKey"])
                event["uid"] = f"{private['clientloveKey']}@clientlove"
            out.append(event)
        return out
