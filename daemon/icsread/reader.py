"""One read of one source: the entry points and the order of the work.

The reader decides which path a read takes (whole text or two streamed passes, prefilter or
full parse), hands the kept blocks to icalendar batch by batch, and turns each UID group's
occurrences into ``Event`` values. It never raises for bad input: problems become warnings
naming the source and the event, given once each and in the order of the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, time, tzinfo
from typing import BinaryIO
from zoneinfo import ZoneInfo

import icalendar
import x_wr_timezone
from icalendar.timezone import tzp

from daemon.icsread import streaming
from daemon.icsread.batches import PARSE_BATCH, batches, synthetic_calendar
from daemon.icsread.budget import OverBudget, ReadBudget
from daemon.icsread.checks import why_unreadable
from daemon.icsread.fields import EventFields, made_up_uid, read_fields, uid_of
from daemon.icsread.prefilter import Prefilter
from daemon.icsread.recurrence import MAX_OCCURRENCES, expand_series, occurrence_id
from daemon.icsread.splitting import (
    Block,
    Split,
    block_uid,
    decode,
    inner_blocks,
    line_breaks,
    not_calendar_reason,
    split_text,
    uid_groups,
    unfold,
)
from daemon.icsread.streaming import CHUNK_SIZE, WHOLE_BELOW, decoded_pieces
from daemon.icsread.zones import iana_name, utc_zone, zone_problem
from daemon.model import Event, ReadScope

#: Broken blocks whose nested VEVENTs are looked for, per read (each look costs a split).
MAX_DESCENTS = 100
_REASON_LIMIT = 160

#: How an iCalendar component starts (``BEGIN:VTODO``): data that is iCalendar at least.
_COMPONENT_START = re.compile(r"BEGIN:[A-Za-z][A-Za-z0-9-]*\s*$")


class NotACalendar(ValueError):
    """The data holds no calendar at all (an HTML login page, a proxy's error, nothing)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"not a calendar: {reason}")


def read_calendar(data: bytes | str, source: str, scope: ReadScope, *,
                  strict: bool = False, budget: ReadBudget | None = None) -> list[Event]:
    """Read every VEVENT occurrence of ``data`` that starts inside the scope's window.

    Problems go to ``scope.warnings``; only programming errors (a naive window, a ``tz`` that
    is no time zone) raise, and, with ``strict``, :class:`NotACalendar` when there is no
    VCALENDAR or VEVENT at all (a source must not look empty when it is broken).
    ``budget`` bounds the recurrence expansion (a fresh :class:`ReadBudget` if not given);
    pass one budget to every read of one source.
    """
    return _Reader(source, scope, _scope_zone(scope), strict, budget).read(data)


def read_calendar_stream(
    handle: BinaryIO,
    source: str,
    scope: ReadScope,
    *,
    chunk_size: int = CHUNK_SIZE,
    whole_below: int = WHOLE_BELOW,
    strict: bool = False,
    budget: ReadBudget | None = None,
) -> list[Event]:
    """:func:`read_calendar` for a seekable binary file, in bounded memory on the fast path.

    With ``scope.prefilter`` a file of ``whole_below`` bytes or more is read twice,
    ``chunk_size`` bytes at a time: once to decide which UID groups can matter, once to keep
    only their text. Neither the file nor its decoded text is ever held whole; memory grows
    with what is kept, not with the file. The result and the warnings are those of
    ``read_calendar(handle.read(), ...)``. A smaller file, or any file without the prefilter
    (every event is parsed then anyway), is read whole.
    """
    reader = _Reader(source, scope, _scope_zone(scope), strict, budget)
    if not scope.prefilter:
        return reader.read(handle.read())
    origin = handle.tell()
    head = handle.read(whole_below)
    if len(head) < whole_below:
        return reader.read(head)
    del head
    handle.seek(origin)
    return reader.read_stream(handle, chunk_size)


def _scope_zone(scope: ReadScope) -> tzinfo:
    if scope.start.tzinfo is None or scope.end.tzinfo is None:
        raise ValueError("ReadScope.start and .end must be aware datetimes")
    if scope.end < scope.start:
        raise ValueError("ReadScope.end is before ReadScope.start")
    tz = ZoneInfo(scope.tz) if isinstance(scope.tz, str) else scope.tz
    if not isinstance(tz, tzinfo):
        raise TypeError(f"ReadScope.tz must be a tzinfo or a zone name, not {scope.tz!r}")
    return tz


class _Reader:
    """One read of one source: the scope, the zone, and the warnings already given."""

    def __init__(self, source: str, scope: ReadScope, tz: tzinfo, strict: bool = False,
                 budget: ReadBudget | None = None) -> None:
        self.source = source
        self.strict = strict
        self.budget = budget if budget is not None else ReadBudget()
        self.scope = scope
        self.tz = tz
        self.span_start = scope.start.astimezone(tz)
        self.span_stop = scope.end.astimezone(tz)
        self.filter = Prefilter(scope)
        self._warned: set[str] = set()
        # where warnings go (the scope's list, or a buffer while batches expand)
        self._out: list[str] = scope.warnings
        self._descents = 0  # broken blocks looked into, this read (see MAX_DESCENTS)
        self._checked_zones: tuple[list[tuple[str, str]], list[tuple[str, str]]] | None = None

    def not_calendar(self, first_line: str | None, reason: str) -> list[Event]:
        """No event and no calendar: iCalendar without events (a lone VTODO) reads as
        empty with a warning; anything else (HTML, text, nothing) is no calendar at all."""
        if self.strict and not _COMPONENT_START.match(first_line or ""):
            raise NotACalendar(reason)
        self.warn(f"not a calendar: {reason}")
        return []

    def warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self._out.append(f"{self.source}: {message}")

    def skip(self, uid: str | None, reason: str) -> None:
        reason = " ".join(reason.split())
        if len(reason) > _REASON_LIMIT:
            reason = reason[: _REASON_LIMIT - 3] + "..."
        self._out.append(f"{self.source}: skipped event {uid or '?'}: {reason}")

    # -- entry ---------------------------------------------------------------------------------

    def read(self, data: bytes | str) -> list[Event]:
        text, encoding = decode(data)
        text = unfold(line_breaks(text))
        if not text.endswith("\n"):
            text += "\r\n"  # icalendar reads a str without a line break as a file name
        split = split_text(text)
        if not split.events and not split.calendars and not split.lost:
            first = text.strip().splitlines()[0] if text.strip() else None
            return self.not_calendar(first, not_calendar_reason(text))
        self.report(encoding, split.damage, split.lost)
        zones = self.usable_zones(split.zones)
        if self.scope.prefilter:
            return self.read_fast(split, zones)
        return self.read_full(text, split, zones)

    def report(self, encoding: str | None, damage: str | None, lost: list[str | None]) -> None:
        """The warnings about the file as a whole, before those about single events."""
        if encoding:
            self.warn(f"not UTF-8, read as {encoding}")
        if damage:
            self.warn(f"damaged calendar ({damage}); read event by event")
        for uid in lost:
            self.skip(uid, "BEGIN:VEVENT never closed (file cut off?)")

    def usable_zones(self, zones: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The VTIMEZONEs whose rules are safe to hand to icalendar (see zone_problem).

        One that is not gives way to the IANA zone its TZID names (left out, so icalendar
        finds that one by name), or else to UTC under its TZID; the warning says which.
        """
        usable = []
        for tzid, block in zones:
            problem = zone_problem(block, self.span_stop.year)
            if not problem:
                usable.append((tzid, block))
                continue
            name = iana_name(tzid)
            if name is None and tzid.strip():
                usable.append((tzid, utc_zone(tzid)))
            instead = f"; read as {name or 'UTC'}" if tzid.strip() else ""
            self.warn(f"bad VTIMEZONE {tzid or '?'} ignored: {problem}{instead}")
        return usable

    def read_full(self, text: str, split: Split, zones: list[tuple[str, str]]) -> list[Event]:
        """Parse the whole file as icalendar does; fall back to blocks if that fails, or if
        a zone was left out or replaced (icalendar must not see a zone that would hang it)."""
        if split.damage is None and zones == split.zones:
            try:
                components = icalendar.Calendar.from_ical(text, multiple=True)
            except Exception as error:  # icalendar raises many types on garbage
                self.warn(f"damaged calendar ({_short(error)}); read event by event")
            else:
                found = self.vevents(components)
                if len(found) >= len(split.events):
                    return self.expand(found)
                # icalendar dropped what it could not place (a first line indented, say)
                self.warn(f"damaged calendar ({len(split.events)} events, {len(found)} parsed)"
                          "; read event by event")
        return self.expand(self.read_blocks(split.events, zones))

    def read_fast(self, split: Split, zones: list[tuple[str, str]]) -> list[Event]:
        """Parse only the UID groups that can name a client and start in the window."""
        kept = [block for group in uid_groups(split.events) if self.filter.keep(group)
                for block in group]
        return self.parse_kept(kept, zones)

    def parse_kept(self, kept: list[Block], zones: list[tuple[str, str]]) -> list[Event]:
        """Parse and expand the blocks the prefilter kept, batch by batch (see
        :func:`batches`), so only one batch's components are alive at a time.

        The result and the warnings are those of one parse of all kept blocks: batches
        follow that parse's order and never cut a UID group, and the expansion's warnings
        are held back until every batch is parsed.
        """
        events: list[Event] = []
        expansion_warnings: list[str] = []
        for batch in batches(kept, PARSE_BATCH):
            found = self.parse_batch(batch, zones)
            self._out = expansion_warnings
            try:
                events.extend(self.expand(found))
            finally:
                self._out = self.scope.warnings
            del found
        self.scope.warnings.extend(expansion_warnings)
        return events

    def parse_batch(self, batch: list[Block], zones: list[tuple[str, str]]) -> list:
        """The VEVENTs of one batch, parsed at once, else block by block."""
        try:
            components = icalendar.Calendar.from_ical(synthetic_calendar(batch, zones),
                                                      multiple=True)
        except Exception as error:  # a broken VTIMEZONE or nesting among the blocks
            self.warn(f"damaged calendar ({_short(error)}); read event by event")
            return self.read_blocks(batch, zones)
        return self.vevents(components)

    def read_stream(self, handle: BinaryIO, chunk_size: int) -> list[Event]:
        """The fast path over a file in two passes (see :func:`read_calendar_stream`)."""
        origin = handle.tell()
        for encoding in ("utf-8-sig", "cp1252", "latin-1"):
            handle.seek(origin)
            try:
                survey = streaming.survey(decoded_pieces(handle, encoding, chunk_size),
                                          self.filter)
            except UnicodeDecodeError:
                continue
            break
        splitter = survey.splitter
        if not survey.blocks and not splitter.calendars and not splitter.lost:
            return self.not_calendar(survey.head.line, survey.head.reason())
        self.report(None if encoding == "utf-8-sig" else encoding, splitter.damage,
                    splitter.lost)
        zones = self.usable_zones(splitter.zones)
        if not any(survey.verdicts.values()):
            return []
        handle.seek(origin)
        kept = streaming.kept_blocks(decoded_pieces(handle, encoding, chunk_size), survey,
                                     self.filter)
        return self.parse_kept(kept, zones)

    def read_blocks(self, blocks: list[Block], zones: list[tuple[str, str]]) -> list:
        """Parse block by block, so one broken block costs only itself."""
        good_zones = self.parsable_zones(zones)
        found = []
        pending = blocks[::-1]
        while pending:
            block = pending.pop()
            try:
                parsed = icalendar.Calendar.from_ical(
                    synthetic_calendar([block], good_zones), multiple=True
                )
            except Exception as error:
                self.skip(block_uid(block.own), _short(error))
                # Events after a lost END line sit inside this one: read them on their own
                # (a bounded number of times, as each look re-reads what is inside).
                if block.text.upper().count("BEGIN:VEVENT") < 2:
                    continue
                if self._descents == MAX_DESCENTS:
                    self.warn(f"events inside broken events: only {MAX_DESCENTS} looked into")
                    continue
                self._descents += 1
                inner = inner_blocks(block)
                for uid in inner.lost:
                    self.skip(uid, "BEGIN:VEVENT never closed (file cut off?)")
                pending.extend(inner.events[::-1])
            else:
                found.extend(self.vevents(parsed))
        return found

    def parsable_zones(self, zones: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The zones icalendar can parse on their own; checked once per read (every batch
        read block by block passes the same list)."""
        if self._checked_zones is not None and self._checked_zones[0] is zones:
            return self._checked_zones[1]
        good: list[tuple[str, str]] = []
        for tzid, block in zones:
            try:
                icalendar.Calendar.from_ical(f"BEGIN:VCALENDAR\r\n{block}END:VCALENDAR\r\n")
            except Exception as error:
                self.warn(f"bad VTIMEZONE {tzid or '?'} ignored: {_short(error)}")
            else:
                good.append((tzid, block))
        self._checked_zones = (zones, good)
        return good

    def vevents(self, components: Iterable) -> list:
        """All VEVENTs, with Google's X-WR-TIMEZONE applied to their calendar."""
        found = []
        for component in components:
            if component.name == "VCALENDAR":
                component = self.standardize(component)
            found.extend(component.walk("VEVENT"))
        return found

    def standardize(self, calendar):
        """Google writes UTC times and names the calendar's zone in X-WR-TIMEZONE; apply it
        (Windows names too) so series expand in local time across DST."""
        value = calendar.get("X-WR-TIMEZONE")
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None or not str(value).strip():
            return calendar
        zone = tzp.timezone(str(value).strip())
        if zone is None:
            self.warn(f"unknown X-WR-TIMEZONE {str(value)!r} ignored")
            return calendar
        try:
            return x_wr_timezone.to_standard(calendar, timezone=zone)
        except Exception as error:  # it reads every date of the calendar, broken ones too
            self.warn(f"X-WR-TIMEZONE {str(value)!r} not applied: {_short(error)}")
            return calendar

    # -- expansion -----------------------------------------------------------------------------

    def expand(self, vevents: list) -> list[Event]:
        """Occurrences of all VEVENTs, UID group by UID group, in the order of the file."""
        groups: dict[object, list] = {}
        for component in vevents:
            uid = component.get("UID")
            key = str(uid) if uid is not None and not isinstance(uid, list) else id(component)
            groups.setdefault(key, []).append(component)
        events: list[Event] = []
        for group in groups.values():
            events.extend(self.expand_group(group))
        return events

    def expand_group(self, group: list) -> list[Event]:
        """Expand one UID's series and its overrides; a failure here costs only this group."""
        usable = []
        for component in group:
            reason = why_unreadable(component, self.warn)
            if reason:
                self.skip(uid_of(component), reason)
            else:
                usable.append(component)
        if not usable:
            return []
        uid = uid_of(usable[0]) or made_up_uid(usable[0])
        recurring = any(
            name in component
            for component in usable
            for name in ("RRULE", "RDATE", "RECURRENCE-ID")
        )
        try:
            found = expand_series(usable, self.budget, self.span_start, self.span_stop)
        except OverBudget as over:
            self.skip(uid, over.reason)
            return []
        except Exception as error:  # dateutil, recurring_ical_events: many types on bad input
            self.skip(uid, _short(error))
            return []
        if len(found) > MAX_OCCURRENCES:
            self.warn(f"event {uid}: over {MAX_OCCURRENCES} occurrences, kept the first")
            del found[MAX_OCCURRENCES:]
        fields: dict[int, EventFields] = {}  # per source component: what all its occurrences share
        events = []
        for occurrence in found:
            start = occurrence.start
            if isinstance(start, datetime) and start.tzinfo is None:
                start = start.replace(tzinfo=self.tz)
            if not self.span_start <= self.start_key(start) < self.span_stop:
                continue
            component = occurrence.component
            shared = fields.get(id(component))
            if shared is None:
                shared = fields[id(component)] = read_fields(component)
            events.append(shared.event(self.source, uid, start,
                                       occurrence_id(occurrence) if recurring else ""))
        events.sort(key=lambda event: (self.start_key(event.start), event.occurrence))
        return events

    def start_key(self, start: date) -> datetime:
        """An aware instant to order and window starts; a date is midnight in the zone."""
        if isinstance(start, datetime):
            return start if start.tzinfo else start.replace(tzinfo=self.tz)
        return datetime.combine(start, time(0), tzinfo=self.tz)


def _short(error: Exception) -> str:
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__
