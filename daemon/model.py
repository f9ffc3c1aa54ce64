"""Plain data shared by the pure core and the providers.

Everything here is immutable and free of I/O, so the counting, attribution, planning and
reconcile steps can be tested with literals. Providers turn their wire formats into these
types (and back) and nothing else crosses the boundary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum

#: The suffix of every UID we write; anything else is never ours.
UID_DOMAIN = "clientlove"


class PartStat(StrEnum):
    """RFC 5545 participation status, reduced to what attribution needs."""

    ACCEPTED = "ACCEPTED"
    DECLINED = "DECLINED"
    TENTATIVE = "TENTATIVE"
    NEEDS_ACTION = "NEEDS-ACTION"
    DELEGATED = "DELEGATED"
    OTHER = "OTHER"

    @classmethod
    def parse(cls, value: str | None) -> PartStat:
        if not value:
            return cls.NEEDS_ACTION
        value = value.strip().upper()
        for member in cls:
            if member.value == value:
                return member
        return cls.OTHER


@dataclass(frozen=True, slots=True)
class Attendee:
    """An attendee as read from a source: a lower-cased email and its response."""

    email: str
    partstat: PartStat = PartStat.NEEDS_ACTION
    #: the calendar says this attendee is the user (Google's ``self``), whatever the address
    is_me: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    """One occurrence of a calendar event, as read from a source.

    ``start`` is a ``date`` for all-day events and an aware ``datetime`` for timed ones
    (floating times are made aware in the configured zone by the reader). Recurring series
    arrive expanded: one ``Event`` per occurrence, ``occurrence`` naming it.
    """

    source: str
    uid: str
    start: date | datetime
    summary: str = ""
    description: str = ""
    categories: tuple[str, ...] = ()
    cancelled: bool = False
    organizer: str | None = None
    attendees: tuple[Attendee, ...] = ()
    occurrence: str = ""
    #: ``X-CLIENTLOVE-KEY`` when the event is one of our reminders.
    clientlove_key: str | None = None
    #: the event's ``CLASS`` upper-cased (Google's ``visibility``); "" when it has none
    classification: str = ""

    @property
    def private(self) -> bool:
        """Whether the event's text is not for quoting: ``CLASS:PRIVATE``, ``CONFIDENTIAL``,
        or a value we do not know (RFC 5545 3.8.1.3 says to treat those as ``PRIVATE``)."""
        return self.classification not in ("", "PUBLIC")

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)

    @property
    def ident(self) -> str:
        """Stable identity of this occurrence within its source."""
        return f"{self.uid}#{self.occurrence}" if self.occurrence else self.uid

    def local_date(self, tz: tzinfo) -> date:
        """The calendar date the event counts on in ``tz`` (docs/design.md section 3).

        An all-day event keeps its own date: dates never go through a time zone.
        """
        if isinstance(self.start, datetime):
            return self.start.astimezone(tz).date()
        return self.start


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """What a source reports for one read.

    ``full`` means ``upserted`` is the complete set of events of the source and everything
    not in it is gone; otherwise ``upserted`` and ``deleted`` (event ``ident`` values, or
    bare UIDs meaning every occurrence of that UID) are a delta against the last read.
    ``upserted`` may be a one-pass iterator (a big read streams from a spool into the
    state): consume it once.
    """

    upserted: Iterable[Event] = ()
    deleted: tuple[str, ...] = ()
    cursor: str | None = None
    full: bool = False


@dataclass(frozen=True, slots=True)
class Interaction:
    """One dated contact (or booked meeting) with a client, after attribution."""

    day: date
    title: str = ""
    description: str = ""
    reset: bool = False
    ours: bool = False
    #: the event's start moment, to tell the latest of a day's meetings (``None``: all day)
    at: datetime | None = None
    #: a private or confidential event: the prep note never quotes its text
    private: bool = False


@dataclass(frozen=True, slots=True)
class Reminder:
    """The reminder we want on the target: the full content of one event of ours."""

    key: str
    client: str
    summary: str
    start: datetime
    duration: timedelta
    description: str
    alarm_before: timedelta
    alarm_text: str

    @property
    def uid(self) -> str:
        return f"{self.key}@{UID_DOMAIN}"

    @property
    def end(self) -> datetime:
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class RemoteReminder:
    """One of our reminders as the target holds it now.

    ``ref`` is the provider's handle (an href, a Google event id, a UID in a file);
    ``etag`` the version for conditional writes. ``stored_hash`` is the hash we wrote into the
    event; ``content_hash`` is recomputed from what the target returned, so the two differ
    exactly when someone else changed our event.
    """

    key: str
    ref: str
    start: datetime | date
    summary: str = ""
    description: str = ""
    categories: tuple[str, ...] = ()
    etag: str | None = None
    stored_hash: str | None = None
    content_hash: str | None = None
    cancelled: bool = False
    end: datetime | date | None = None
    #: how long before the start our alarm fires, as the target holds it
    alarm_before: timedelta | None = None

    @property
    def user_edited(self) -> bool:
        return self.stored_hash is None or self.stored_hash != self.content_hash


@dataclass(frozen=True, slots=True)
class StoredReminder:
    """What the state remembers of a reminder we wrote."""

    key: str
    client: str
    ref: str
    day: date
    etag: str | None = None
    content_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    """A reminder the user skipped: deleted before its day, or marked ``#skip``."""

    client: str
    day: date
    key: str = ""


@dataclass(frozen=True, slots=True)
class NeedleKinds:
    """Client needles sorted the way attribution matches them."""

    emails: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    words: frozenset[str] = frozenset()
    phrases: tuple[str, ...] = ()


@dataclass(slots=True)
class ReadScope:
    """What a source needs to read only what can matter.

    ``needles`` are lower-case strings (emails, domains, keywords, our UID marker); a raw
    event that contains none of them cannot touch any client and may be skipped before
    parsing. ``start``/``end`` bound the occurrences worth expanding.
    """

    start: datetime
    end: datetime
    #: A zone, or its IANA name (the ICS reader takes either).
    tz: tzinfo | str
    needles: tuple[str, ...] = ()
    prefilter: bool = True
    warnings: list[str] = field(default_factory=list)
    #: The same needles by kind, when the caller knows them (see ``attribution.needle_kinds``):
    #: addresses and domains are then looked up as tokens, single words against the block's
    #: words, and only phrases need a substring scan.
    kinds: NeedleKinds | None = None

    def fingerprint(self) -> dict[str, str]:
        """What a cached read depends on besides the bytes: the needles and the window."""
        digest = hashlib.sha256("\n".join(self.needles).encode()).hexdigest()[:16]
        return {
            "needles": digest if self.prefilter else "all",
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }

    def served_by(self, previous: Mapping[str, object]) -> bool:
        """Whether a read made under ``previous`` (a fingerprint) still serves this scope."""
        if previous.get("needles") != self.fingerprint()["needles"]:
            return False
        try:
            start = datetime.fromisoformat(str(previous["start"]))
            end = datetime.fromisoformat(str(previous["end"]))
        except (KeyError, ValueError):
            return False
        return start <= self.start and end >= self.end
