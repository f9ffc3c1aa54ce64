"""In-memory source and target: the reference implementation of the storage contract.

Used by the pure-engine tests and by the contract suite as the baseline every real provider
must match. The target stores real VEVENTs (rendered the same way as the ICS and CalDAV
targets) so hashes, edits and etags behave exactly like a calendar server's, and it offers
``user_edit``/``user_delete`` to play the user.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import icalendar

from daemon.model import ChangeSet, Event, ReadScope, Reminder, RemoteReminder
from daemon.reminder_ical import from_vevent, merge_vevent, to_vevent
from providers.base import (
    AlreadyExists,
    NotFound,
    PreconditionFailed,
    SequentialWrites,
    TargetLimits,
)


class MemorySource:
    """Hands out a list of events; ``events`` may be replaced between reads."""

    def __init__(self, name: str, events: Iterable[Event] = ()) -> None:
        self.name = name
        self.events = list(events)
        self.reads = 0
        self._version = 0

    def set_events(self, events: Iterable[Event]) -> None:
        self.events = list(events)
        self._version += 1

    def changes(self, cursor: str | None, scope: ReadScope) -> ChangeSet:
        self.reads += 1
        version = str(self._version)
        if cursor == version:
            return ChangeSet(cursor=version)
        return ChangeSet(upserted=tuple(self.events), full=True, cursor=version)


class MemoryTarget(SequentialWrites):
    """A dictionary of VEVENTs keyed by UID, with etags that change on every write."""

    limits = TargetLimits(max_alarms=5, batch_size=1)

    def __init__(self, name: str = "memory", stamp: Callable[[], datetime] | None = None):
        self.name = name
        self.objects: dict[str, tuple[icalendar.Event, str]] = {}
        self.writes = 0
        self._etags = itertools.count(1)
        self._stamp = stamp or (lambda: datetime(2000, 1, 1, tzinfo=UTC))

    def _put(self, uid: str, event: icalendar.Event) -> str:
        etag = f'"{next(self._etags)}"'
        self.objects[uid] = (event, etag)
        return etag

    def _store(self, uid: str, event: icalendar.Event) -> RemoteReminder:
        etag = self._put(uid, event)
        remote = from_vevent(event, ref=uid, etag=etag)
        assert remote is not None
        return remote

    def list_ours(self) -> list[RemoteReminder]:
        out = []
        for uid, (event, etag) in self.objects.items():
            remote = from_vevent(event, ref=uid, etag=etag)
            if remote is not None:
                out.append(remote)
        return out

    def create(self, reminder: Reminder) -> RemoteReminder:
        if reminder.uid in self.objects:
            raise AlreadyExists(f"{reminder.uid} exists", provider=self.name)
        self.writes += 1
        return self._store(reminder.uid, to_vevent(reminder, self._stamp()))

    def _check(self, current: RemoteReminder) -> icalendar.Event:
        held = self.objects.get(current.ref)
        if held is None:
            raise NotFound(f"{current.ref} is gone", provider=self.name)
        if current.etag is not None and held[1] != current.etag:
            raise PreconditionFailed(f"{current.ref} changed", provider=self.name)
        return held[0]

    def update(self, current: RemoteReminder, reminder: Reminder) -> RemoteReminder:
        old = self._check(current)
        self.writes += 1
        return self._store(current.ref, merge_vevent(old, reminder, self._stamp()))

    def delete(self, current: RemoteReminder) -> None:
        self._check(current)
        self.writes += 1
        del self.objects[current.ref]

    def flush(self) -> None:
        return None

    # -- playing the user ----------------------------------------------------------------
    def put_foreign(self, event: icalendar.Event) -> None:
        """Add an event that is not ours (the user's own)."""
        self._put(str(event["uid"]), event)

    def user_edit(self, uid: str, **props: object) -> None:
        """Change properties of a stored event as a calendar app would (marks kept)."""
        event, _ = self.objects[uid]
        for name, value in props.items():
            prop = name.replace("_", "-")
            if prop in event:
                del event[prop]
            event.add(prop, value)
        self._put(uid, event)

    def user_delete(self, uid: str) -> None:
        del self.objects[uid]
