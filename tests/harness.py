"""Per-provider harnesses for the target contract suite.

Each harness gives a fresh provider instance (as a new process would see it) and plays the
user behind the provider's back: adding their own events, editing or deleting ours. New
providers (CalDAV, Google) add a harness here and the whole suite runs against them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import icalendar

from daemon.reminder_ical import key_of
from providers.base import Target
from providers.ics import IcsTarget
from providers.memory import MemoryTarget

STAMP = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class TargetHarness:
    name: str

    def target(self) -> Target:
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


class MemoryHarness(TargetHarness):
    name = "memory"

    def __init__(self) -> None:
        self._target = MemoryTarget(stamp=lambda: STAMP)

    def target(self) -> MemoryTarget:
        return self._target

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


class IcsHarness(TargetHarness):
    name = "ics"

    def __init__(self, path: Path, stamp: Callable[[], datetime] = lambda: STAMP) -> None:
        self.path = path
        self.stamp = stamp

    def target(self) -> IcsTarget:
        return IcsTarget(self.path, stamp=self.stamp)

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
        cal = self._calendar()
        cal.add_component(event)
        self._save(cal)

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

    def all_events(self) -> list[icalendar.cal.Component]:
        if not self.path.exists():
            return []
        return list(icalendar.Calendar.from_ical(self.path.read_bytes()).walk("VEVENT"))
