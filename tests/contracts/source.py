"""The Source contract of ``providers/base.py`` as a base class every source backend runs.

A backend's test class subclasses :class:`SourceContract`, gives a ``backend`` fixture (a
:class:`SourceBackend`: the source under test and the calendar behind it, played as the
user would) and sets the capability flags that say what the protocol allows. The tests
only use the contract: a cursor is opaque, a ``ChangeSet`` is applied the way the state
applies it (:class:`Mirror`), events are compared by what they say (summary and instant),
never by a backend's identifiers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest

from daemon.model import ChangeSet, Event, ReadScope
from providers.base import CursorExpired, Source

TZ = ZoneInfo("Europe/London")
#: The read window of every test: a quarter, in the configured zone.
WINDOW = (datetime(2026, 10, 1, tzinfo=TZ), datetime(2027, 1, 1, tzinfo=TZ))
CLIENT = "jane.doe@acme.example"
NEEDLES = ("acme.example",)


@dataclass(frozen=True, slots=True)
class Meeting:
    """One event of the user's calendar, as a backend writes it in its own format."""

    uid: str
    start: datetime
    summary: str
    #: an RRULE value (``FREQ=WEEKLY;COUNT=20``) for a series
    rrule: str | None = None
    duration: timedelta = timedelta(hours=1)
    attendee: str = CLIENT


REVIEW = Meeting("acme-review", datetime(2026, 11, 16, 10, 0, tzinfo=UTC), "Acme review")
PLANNING = Meeting("acme-planning", datetime(2026, 11, 20, 14, 0, tzinfo=UTC), "Acme planning")
WORKSHOP = Meeting("acme-workshop", datetime(2026, 12, 2, 9, 0, tzinfo=UTC), "Acme workshop")
#: Mondays from before the window to after it: 13 of its 20 occurrences fall inside.
WEEKLY = Meeting("acme-weekly", datetime(2026, 9, 7, 9, 0, tzinfo=UTC), "Acme weekly",
                 rrule="FREQ=WEEKLY;COUNT=20")


def occurrences(meeting: Meeting) -> list[datetime]:
    """The starts of a meeting inside the window (its weekly series expanded by hand)."""
    if meeting.rrule is None:
        return [meeting.start]
    assert meeting.rrule.startswith("FREQ=WEEKLY;COUNT=")
    count = int(meeting.rrule.rpartition("=")[2])
    starts = [meeting.start + timedelta(weeks=n) for n in range(count)]
    return [s for s in starts if WINDOW[0] <= s < WINDOW[1]]


Seen = tuple[str, datetime | date]


def seen(events: Iterable[Event]) -> set[Seen]:
    """Events as the contract compares them: summary and start instant."""
    return {(e.summary, e.start.astimezone(UTC) if isinstance(e.start, datetime) else e.start)
            for e in events}


def expected(*meetings: Meeting) -> set[Seen]:
    return {(m.summary, s) for m in meetings for s in occurrences(m)}


class SourceBackend:
    """The hooks a backend implements. The calendar starts empty for every test."""

    #: the source's name, which its warnings start with
    name: str

    def source(self) -> Source:
        """A fresh source instance, as a new process would make it."""
        raise NotImplementedError

    def put(self, meeting: Meeting) -> None:
        """The user adds an event."""
        raise NotImplementedError

    def change(self, meeting: Meeting) -> None:
        """The user edits the event with ``meeting.uid``: it now says what ``meeting`` says."""
        raise NotImplementedError

    def delete(self, uid: str) -> None:
        """The user deletes the event (every occurrence of a series)."""
        raise NotImplementedError

    def put_broken(self, uid: str) -> None:
        """The calendar gains an event the reader cannot read (the server took it)."""
        raise NotImplementedError

    def expire(self, cursor: str) -> str:
        """Make ``cursor`` one the server no longer honours; the cursor to pass next."""
        raise NotImplementedError

    def shown_uid(self, uid: str) -> str:
        """How a warning names the event put with ``uid`` (the id the source reads)."""
        return uid


class Mirror:
    """The events of one source as the state keeps them, from the ChangeSets it is handed
    (the same rules as ``State.apply_changes``: full replaces, ``deleted`` names idents or
    bare UIDs, upserts replace by ident)."""

    def __init__(self) -> None:
        self.events: dict[str, Event] = {}

    def apply(self, changes: ChangeSet, upserted: list[Event]) -> None:
        if changes.full:
            self.events.clear()
        for ident in changes.deleted:
            for key in [k for k, e in self.events.items() if ident in (k, e.uid)]:
                del self.events[key]
        for event in upserted:
            self.events[event.ident] = event

    def seen(self) -> set[Seen]:
        return seen(self.events.values())


@dataclass
class Read:
    """One call of ``changes``: what it returned, its events (consumed once) and warnings."""

    changes: ChangeSet
    events: list[Event]
    warnings: list[str]

    @property
    def cursor(self) -> str | None:
        return self.changes.cursor

    @property
    def empty(self) -> bool:
        return not self.changes.full and not self.events and not self.changes.deleted


def scope(needles: tuple[str, ...] = NEEDLES) -> ReadScope:
    return ReadScope(start=WINDOW[0], end=WINDOW[1], tz=TZ, needles=needles)


class SourceContract:
    """Every source keeps these promises (``providers/base.py``, Source)."""

    #: after the first read, changes come as a delta (``full=False``) holding only them
    incremental: ClassVar[bool] = False
    #: a delta names what is gone in ``deleted`` (otherwise a full read says so by absence)
    reports_deletions: ClassVar[bool] = False
    #: the server may stop honouring a cursor it issued (a sync token expires)
    cursor_can_expire: ClassVar[bool] = False

    @pytest.fixture
    def backend(self) -> SourceBackend:
        raise NotImplementedError("a backend's test class gives its own `backend` fixture")

    # -- helpers -----------------------------------------------------------------------------
    def read(self, source: Source, cursor: str | None, mirror: Mirror | None = None,
             read_scope: ReadScope | None = None) -> Read:
        used = read_scope or scope()
        changes = source.changes(cursor, used)
        events = list(changes.upserted)
        assert changes.cursor, "every read leaves a cursor for the next"
        assert all(e.source == source.name for e in events)
        if mirror is not None:
            mirror.apply(changes, events)
        return Read(changes, events, list(used.warnings))

    def first(self, backend: SourceBackend, *meetings: Meeting) -> tuple[Source, Mirror, Read]:
        for meeting in meetings:
            backend.put(meeting)
        source, mirror = backend.source(), Mirror()
        read = self.read(source, None, mirror)
        assert read.changes.full and mirror.seen() == expected(*meetings)
        return source, mirror, read

    # -- the contract ------------------------------------------------------------------------
    def test_first_read_is_full_and_gives_the_events(self, backend: SourceBackend):
        backend.put(REVIEW)
        backend.put(PLANNING)
        read = self.read(backend.source(), None)
        assert read.changes.full and not read.changes.deleted
        assert seen(read.events) == expected(REVIEW, PLANNING)
        assert read.warnings == []
        assert {e.attendees[0].email for e in read.events} == {CLIENT}

    def test_an_empty_calendar_reads_as_empty(self, backend: SourceBackend):
        backend.put(REVIEW)
        backend.delete(REVIEW.uid)
        read = self.read(backend.source(), None)
        assert read.changes.full and read.events == []

    def test_unchanged_read_gives_nothing_new(self, backend: SourceBackend):
        _source, mirror, first = self.first(backend, REVIEW, PLANNING)
        again = self.read(backend.source(), first.cursor, mirror)  # a new process, same cursor
        assert again.empty, again.changes
        third = self.read(backend.source(), again.cursor, mirror)  # the renewed cursor works
        assert third.empty, third.changes
        assert mirror.seen() == expected(REVIEW, PLANNING)

    def test_changed_read_gives_the_change(self, backend: SourceBackend):
        source, mirror, first = self.first(backend, REVIEW, PLANNING)
        moved = replace(PLANNING, summary="Acme planning (moved)",
                        start=PLANNING.start + timedelta(days=1))
        backend.change(moved)
        backend.put(WORKSHOP)
        read = self.read(source, first.cursor, mirror)
        assert mirror.seen() == expected(REVIEW, moved, WORKSHOP)
        if self.incremental:
            assert not read.changes.full
            assert seen(read.events) == expected(moved, WORKSHOP)
        else:
            assert read.changes.full
        assert self.read(source, read.cursor, mirror).empty

    def test_deleted_event_is_gone(self, backend: SourceBackend):
        source, mirror, first = self.first(backend, REVIEW, PLANNING)
        backend.delete(PLANNING.uid)
        read = self.read(source, first.cursor, mirror)
        assert mirror.seen() == expected(REVIEW)
        if self.reports_deletions:
            assert not read.changes.full and read.changes.deleted
            assert read.events == []
        else:
            assert read.changes.full
        assert self.read(source, read.cursor, mirror).empty

    def test_an_unusable_cursor_means_a_full_read(self, backend: SourceBackend):
        """A cursor from an older version, or garbage: read in full, never fail."""
        backend.put(REVIEW)
        for cursor in ("not json", "", "{}", '{"token": 5}', '{"mode": "sync"}'):
            read = self.read(backend.source(), cursor)
            assert read.changes.full and seen(read.events) == expected(REVIEW), cursor

    def test_a_cursor_of_another_shape_means_a_full_read(self, backend: SourceBackend):
        """JSON that is no object (a damaged state row): read in full, never fail."""
        backend.put(REVIEW)
        for cursor in ("[1, 2]", "null", '"text"', "7"):
            read = self.read(backend.source(), cursor)
            assert read.changes.full and seen(read.events) == expected(REVIEW), cursor

    def test_a_new_scope_means_a_full_read(self, backend: SourceBackend):
        """The cursor remembers what it was read for: other needles read again."""
        source, _mirror, first = self.first(backend, REVIEW)
        read = self.read(source, first.cursor,
                         read_scope=scope(needles=(*NEEDLES, "globex.example")))
        assert read.changes.full and seen(read.events) == expected(REVIEW)

    def test_expired_cursor_falls_back_to_a_full_read(self, backend: SourceBackend):
        if not self.cursor_can_expire:
            pytest.skip("this source's cursor never expires")
        source, mirror, first = self.first(backend, REVIEW, PLANNING)
        backend.delete(PLANNING.uid)
        backend.put(WORKSHOP)
        stale = backend.expire(first.cursor)
        try:
            read = self.read(source, stale, mirror)
        except CursorExpired:  # the contract allows the engine to be told instead
            read = self.read(source, None, mirror)
        assert read.changes.full
        assert mirror.seen() == expected(REVIEW, WORKSHOP)
        assert self.read(source, read.cursor, mirror).empty

    def test_a_broken_event_gives_a_warning_and_never_fails_the_read(
            self, backend: SourceBackend):
        backend.put(REVIEW)
        backend.put_broken("acme-broken")
        backend.put(PLANNING)
        read = self.read(backend.source(), None)
        assert read.changes.full and seen(read.events) == expected(REVIEW, PLANNING)
        self.assert_warned(backend, read, "acme-broken")

    def test_a_broken_event_in_a_later_read(self, backend: SourceBackend):
        source, mirror, first = self.first(backend, REVIEW)
        backend.put_broken("acme-broken")
        backend.put(PLANNING)
        read = self.read(source, first.cursor, mirror)
        assert mirror.seen() == expected(REVIEW, PLANNING)
        self.assert_warned(backend, read, "acme-broken")

    @staticmethod
    def assert_warned(backend: SourceBackend, read: Read, uid: str) -> None:
        shown = backend.shown_uid(uid)
        mine = [w for w in read.warnings if w.startswith(f"{backend.name}: ") and shown in w]
        assert mine, f"no warning naming {backend.name} and {shown}: {read.warnings}"

    def test_recurrence_is_expanded_within_the_scope(self, backend: SourceBackend):
        backend.put(WEEKLY)
        backend.put(REVIEW)
        read = self.read(backend.source(), None)
        series = [e for e in read.events if e.summary == WEEKLY.summary]
        assert len(series) == 13 == len({e.ident for e in series})
        assert seen(read.events) == expected(WEEKLY, REVIEW)
        assert all(WINDOW[0] <= e.start < WINDOW[1] for e in series)  # type: ignore[operator]

    def test_a_changed_series_keeps_its_occurrences(self, backend: SourceBackend):
        source, mirror, first = self.first(backend, WEEKLY, REVIEW)
        renamed = replace(WEEKLY, summary="Acme weekly sync")
        backend.change(renamed)
        read = self.read(source, first.cursor, mirror)
        assert mirror.seen() == expected(renamed, REVIEW)
        assert len(mirror.events) == 14
        if self.incremental:
            assert not read.changes.full

    def test_a_deleted_series_is_gone(self, backend: SourceBackend):
        source, mirror, first = self.first(backend, WEEKLY, REVIEW)
        backend.delete(WEEKLY.uid)
        self.read(source, first.cursor, mirror)
        assert mirror.seen() == expected(REVIEW)
