"""Turn iCalendar text into ``Event`` occurrences.

Calendar files are messy (Outlook's Windows zone names, Google's X-WR-TIMEZONE, cut-off
downloads, fuzzed garbage) and can be huge, so this reader

- never raises for bad input: a broken event is skipped with a warning naming the source and
  its UID, and a file that is no calendar at all gives one warning and no events;
- expands recurrences with ``recurring_ical_events``, one UID group at a time, so one bad
  series cannot spoil the others;
- can skip, before any parsing, every UID group that names none of the needles or cannot
  start inside the window (the fast path), because ``icalendar`` parses a few thousand events
  a second and a consultant's export may hold a hundred thousand.

Both paths expand exactly the same way; they differ only in which groups reach the parser.
Occurrences are returned when they *start* inside ``[scope.start, scope.end)``.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
import x_wr_timezone
from icalendar.timezone import tzp

from daemon.model import Attendee, Event, PartStat, ReadScope

__all__ = ["iter_vevent_blocks", "read_calendar"]

#: Longest description kept; the prep note only quotes the start of it.
DESCRIPTION_LIMIT = 2000
#: Occurrences kept per series and read; an endless MINUTELY rule must not hang a read.
MAX_OCCURRENCES = 20_000
#: The date prefilter reads DTSTART's digits without its zone, so it keeps this margin.
_DATE_SLACK = timedelta(days=2)
_REASON_LIMIT = 160

# The fold rule of icalendar's own parser (a line break, optional blank lines, then a space or
# tab), so the text we split is the text icalendar would see. It is slow on big files, so
# _unfold uses it only where plain replacing would differ: blank lines before a fold.
_UFOLD = re.compile(r"(?:(?<!\n)\r\n|(?<![\r\n])\n)(?:\r?\n)*[ \t]")
_BLANK_FOLD = re.compile(r"\n(?:\r?\n)+[ \t]")
# Line patterns start with a literal "\n" (blocks and the scanned text begin with one): that
# lets the regex engine jump from line to line, several times faster than "^" with re.M.
# Like icalendar, only "\n" ends a line, names are case-insensitive and taken as written.
# A boundary match ends before the line's "\r", so a block cut at match.end() ends cleanly.
_BOUNDARY = re.compile(r"\n(?i:(BEGIN|END)):([^\r\n]*?)(?=\r?$)", re.M)
_UID = re.compile(r"\n(?i:UID)(?:;[^:\r\n]*)?:([^\r\n]*?)\r?$", re.M)
_DTSTART_DATE = re.compile(r"\n(?i:DTSTART)[^:\r\n]*:(\d{8})")
_RECURS = re.compile(r"\n(?i:RRULE|RDATE)[;:]")
_TZID_PARAM = re.compile(r';(?i:TZID)=("[^"\r\n]*"|[^;:\r\n]*)')
_TZID_PROP = re.compile(r"\n(?i:TZID)[^:\r\n]*:([^\r\n]*?)\r?$", re.M)
_XWR = re.compile(r"\n(?i:X-WR-TIMEZONE)[^:\r\n]*:([^\r\n]*?)\r?$", re.M)
_MAILTO = re.compile(r"^\s*mailto:", re.I)
# an address as a token: no white space or iCalendar delimiters inside
_ADDRESS = re.compile(r"[^\s:;<>\",]+@[^\s:;<>\",]+")  # "'" stays: o'brien@...
_WORDS = re.compile(r"\w+")
# How icalendar reports a line it could not split ("...into parts: 'NAME;...'"): the name
# tells whether the line mattered (a broken DTSTART) or not (Apple's stray X-APPLE-RADIUS=).
_BROKEN_LINE = re.compile(r"parts: '([A-Za-z0-9-]+)[;:]")
_NON_ALNUM = re.compile(r"[\W_]+")

# Properties this reader (or the recurrence expansion) uses: a parse error in one of them makes
# the event unreliable, so it is skipped. Errors elsewhere (GEO, X-...) cannot change the result.
_USED = frozenset(
    {
        "ATTENDEE",
        "CATEGORIES",
        "DESCRIPTION",
        "DTEND",
        "DTSTART",
        "DURATION",
        "EXDATE",
        "ORGANIZER",
        "RDATE",
        "RECURRENCE-ID",
        "RRULE",
        "SEQUENCE",
        "STATUS",
        "SUMMARY",
        "UID",
        "X-CLIENTLOVE-KEY",
    }
)


def read_calendar(data: bytes | str, source: str, scope: ReadScope) -> list[Event]:
    """Read every VEVENT occurrence of ``data`` that starts inside the scope's window.

    Problems go to ``scope.warnings``; only programming errors (a naive window, a ``tz`` that
    is no time zone) raise.
    """
    if scope.start.tzinfo is None or scope.end.tzinfo is None:
        raise ValueError("ReadScope.start and .end must be aware datetimes")
    if scope.end < scope.start:
        raise ValueError("ReadScope.end is before ReadScope.start")
    tz = ZoneInfo(scope.tz) if isinstance(scope.tz, str) else scope.tz
    if not isinstance(tz, tzinfo):
        raise TypeError(f"ReadScope.tz must be a tzinfo or a zone name, not {scope.tz!r}")
    return _Reader(source, scope, tz).read(data)


def iter_vevent_blocks(text: str) -> Iterator[str]:
    """Yield the unfolded text of each VEVENT (from BEGIN to END) without parsing it."""
    for block in _split(_unfold(text)).events:
        yield block.text


# --- splitting raw text ----------------------------------------------------------------------


@dataclass(slots=True)
class _Block:
    """One VEVENT as text, with what the prefilter and the synthetic calendar need."""

    text: str
    # The event's own lines, without nested components: a VALARM may carry a UID of its
    # own (RFC 9074), which must not decide the group.
    own: str
    xwr: str | None  # the raw X-WR-TIMEZONE of the VCALENDAR it sits directly in


@dataclass(slots=True)
class _Split:
    """What _split found: blocks, zones, and whether the nesting was broken."""

    events: list[_Block] = field(default_factory=list)
    zones: list[tuple[str, str]] = field(default_factory=list)  # (raw TZID, block)
    calendars: int = 0
    damage: str | None = None  # why the nesting is broken, if it is


def _split(text: str) -> _Split:
    """Cut unfolded text into VEVENT and VTIMEZONE blocks with string operations only.

    Nesting follows icalendar's parser: END closes the innermost open component whatever
    name it carries, so a block here is what icalendar would build as one component.
    """
    out = _Split()
    text = "\n" + text  # every line, the first too, now follows a "\n"
    stack: list[str] = []
    calendar_starts: list[int] = []  # offsets of the top-level VCALENDARs
    calendar_ends: list[int] = []
    # name, offset, depth, index of the VCALENDAR it sits directly in (-1: none)
    capture: tuple[str, int, int, int] | None = None
    nested: list[int] = []  # offsets where the captured block's subcomponents begin and end
    raw_events: list[tuple[str, str, int]] = []
    for match in _BOUNDARY.finditer(text):
        name = match.group(2).upper()
        if match.group(1).upper() == "BEGIN":
            if capture is None and name in ("VEVENT", "VTIMEZONE"):
                calendar = len(calendar_starts) - 1 if stack == ["VCALENDAR"] else -1
                capture = (name, match.start(), len(stack), calendar)
                nested = []
            elif capture is not None and len(stack) == capture[2] + 1:
                nested.append(match.start())
            elif not stack and name == "VCALENDAR":
                calendar_starts.append(match.start())
                calendar_ends.append(len(text))
            stack.append(name)
            continue
        if not stack:
            out.damage = out.damage or f"END:{match.group(2)} without BEGIN"
            continue
        closed = stack.pop()
        if capture is not None and len(stack) == capture[2] + 1:
            nested.append(match.end())
        elif capture is not None and len(stack) == capture[2]:
            # match.start() is the "\n" before BEGIN; match.end() is before the line break
            block = text[capture[1] + 1 : match.end()] + "\r\n"
            if capture[0] == "VEVENT":
                own = block
                if nested:  # keep what lies between the subcomponents
                    bounds = [capture[1] + 1, *nested, match.end()]
                    own = "".join(text[bounds[i] : bounds[i + 1]] for i in range(0, len(bounds), 2))
                raw_events.append((block, own, capture[3]))
            else:
                tzid = _TZID_PROP.search(block)
                out.zones.append((tzid.group(1) if tzid else "", block))
            capture = None
        if not stack and closed == "VCALENDAR" and calendar_starts:
            calendar_ends[-1] = match.end()
    if stack:
        out.damage = out.damage or f"BEGIN:{stack[-1]} never closed (file cut off?)"
    out.calendars = len(calendar_starts)
    xwr_by_calendar: list[str | None] = [None] * len(calendar_starts)
    for match in _XWR.finditer(text):
        index = bisect_right(calendar_starts, match.start()) - 1
        if index >= 0 and match.start() < calendar_ends[index] and not xwr_by_calendar[index]:
            xwr_by_calendar[index] = match.group(1).strip()
    for block, own, calendar in raw_events:
        xwr = xwr_by_calendar[calendar] if calendar >= 0 else None
        out.events.append(_Block(block, own, xwr))
    return out


def _decode(data: bytes | str) -> tuple[str, str | None]:
    """The text, and the fallback encoding used when it was not UTF-8 (else None)."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff"), None
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:  # five bytes cp1252 leaves undefined
        return data.decode("latin-1"), "latin-1"


def _unfold(text: str) -> str:
    """Join folded lines exactly as icalendar's parser does."""
    if _BLANK_FOLD.search(text):
        return _UFOLD.sub("", text)
    return text.replace("\r\n ", "").replace("\r\n\t", "").replace("\n ", "").replace("\n\t", "")


def _fold(text: str) -> str:
    """Caseless text for matching beyond ASCII: whatever ``re.IGNORECASE`` (which attribution
    uses for phrases) calls equal, this makes equal.

    ``str.lower`` turns the Turkish "İ" into "i" plus a combining dot, so "İSTANBUL" would not
    contain "istanbul": the dot is dropped. ``casefold`` unifies "ſ"/"s", "ς"/"σ" and the like,
    but not the dotless "ı", which ``re.IGNORECASE`` matches to "I".
    """
    return text.casefold().replace("\u0307", "").replace("ı", "i")


def _block_uid(block: str) -> str | None:
    match = _UID.search(block)
    return match.group(1).strip() if match else None


def _loose_tzid(tzid: str) -> str:
    """A TZID reduced so a quoted parameter and an escaped VTIMEZONE value compare equal.

    Only used to pick the zones a block may need: a false match costs a parse, never a zone.
    """
    return _NON_ALNUM.sub("", tzid).lower()


# --- reading ---------------------------------------------------------------------------------


class _Reader:
    """One read of one source: the scope, the zone, and the warnings already given."""

    def __init__(self, source: str, scope: ReadScope, tz: tzinfo) -> None:
        self.source = source
        self.scope = scope
        self.tz = tz
        self.span_start = scope.start.astimezone(tz)
        self.span_stop = scope.end.astimezone(tz)
        # the date prefilter's bounds, as DTSTART's digits
        self.low = _digits(scope.start.date(), -_DATE_SLACK, "00000000")
        self.high = _digits(scope.end.date(), _DATE_SLACK, "99999999")
        # needles as _fold leaves them, for text or needles beyond ASCII
        self.folded = tuple({_fold(needle) for needle in scope.needles})
        self.folded_changed = tuple(set(self.folded) - set(scope.needles))
        self._warned: set[str] = set()

    def warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self.scope.warnings.append(f"{self.source}: {message}")

    def skip(self, uid: str | None, reason: str) -> None:
        reason = " ".join(reason.split())
        if len(reason) > _REASON_LIMIT:
            reason = reason[: _REASON_LIMIT - 3] + "..."
        self.scope.warnings.append(f"{self.source}: skipped event {uid or '?'}: {reason}")

    # -- entry ---------------------------------------------------------------------------------

    def read(self, data: bytes | str) -> list[Event]:
        text, encoding = _decode(data)
        text = _unfold(text)
        if not text.endswith("\n"):
            text += "\r\n"  # icalendar reads a str without a line break as a file name
        split = _split(text)
        if not split.events and not split.calendars:
            self.warn(f"not a calendar: {_not_calendar_reason(text)}")
            return []
        if encoding:
            self.warn(f"not UTF-8, read as {encoding}")
        if split.damage:
            self.warn(f"damaged calendar ({split.damage}); read event by event")
        if self.scope.prefilter:
            return self.read_fast(split)
        return self.read_full(text, split)

    def read_full(self, text: str, split: _Split) -> list[Event]:
        """Parse the whole file as icalendar does; fall back to blocks if that fails."""
        if split.damage is None:
            try:
                components = icalendar.Calendar.from_ical(text, multiple=True)
            except Exception as error:  # icalendar raises many types on garbage
                self.warn(f"damaged calendar ({_short(error)}); read event by event")
            else:
                return self.expand(self.vevents(components))
        return self.expand(self.read_blocks(split.events, split.zones))

    def read_fast(self, split: _Split) -> list[Event]:
        """Parse only the UID groups that can name a client and start in the window."""
        kept = [block for group in _groups(split.events) if self.keep(group) for block in group]
        if not kept:
            return []
        try:
            components = icalendar.Calendar.from_ical(_synthetic(kept, split.zones), multiple=True)
        except Exception as error:  # a broken VTIMEZONE or nesting among the kept blocks
            self.warn(f"damaged calendar ({_short(error)}); read event by event")
            return self.expand(self.read_blocks(kept, split.zones))
        return self.expand(self.vevents(components))

    def keep(self, group: list[_Block]) -> bool:
        """The prefilter: can this group matter to a client inside the window?"""
        if not any(_RECURS.search(block.own) for block in group):
            starts = [_DTSTART_DATE.search(block.own) for block in group]
            if all(m is not None and not self.low <= m.group(1) <= self.high for m in starts):
                return False
        needles = self.scope.needles
        if not needles:
            return True
        if self.scope.kinds is not None:
            return any(self._names_client(block.text) for block in group)
        for block in group:
            text = block.text.lower().replace("\\", "")
            if any(needle in text for needle in needles):
                return True
            if text.isascii():  # _fold leaves ASCII text as it is; needles may differ
                if any(needle in text for needle in self.folded_changed):
                    return True
            elif any(needle in _fold(text) for needle in self.folded):
                return True
        return False

    def _names_client(self, text: str) -> bool:
        """Whether a block could name a client, matched as attribution matches.

        Every address is looked up whole and by each parent domain; the words are the
        ``\\w+`` runs of the text, with and without escaped newlines turned into spaces (so
        the SUMMARY's words are among them however it is escaped); only phrases are searched
        as substrings. A superset of what attribution can match, at a fraction of the cost
        of testing every needle against every block.
        """
        kinds = self.scope.kinds
        assert kinds is not None
        low = text.lower()
        if kinds.emails or kinds.domains:
            for match in _ADDRESS.finditer(low):
                address = match.group(0)
                if address in kinds.emails:
                    return True
                labels = address.rpartition("@")[2].split(".")
                for i in range(len(labels) - 1):
                    if ".".join(labels[i:]) in kinds.domains:
                        return True
        if kinds.words:
            words = set(_WORDS.findall(low))
            if "\\n" in low:
                words.update(_WORDS.findall(low.replace("\\n", " ")))
            if not kinds.words.isdisjoint(words):
                return True
        if kinds.phrases:
            flat = low.replace("\\", "")
            if any(phrase in flat for phrase in kinds.phrases):
                return True
            if not flat.isascii() or not all(p.isascii() for p in kinds.phrases):
                folded = _fold(flat)
                return any(_fold(phrase) in folded for phrase in kinds.phrases)
        return False

    def read_blocks(self, blocks: list[_Block], zones: list[tuple[str, str]]) -> list:
        """Parse block by block, so one broken block costs only itself."""
        good_zones: list[tuple[str, str]] = []
        for tzid, block in zones:
            try:
                icalendar.Calendar.from_ical(f"BEGIN:VCALENDAR\r\n{block}END:VCALENDAR\r\n")
            except Exception as error:
                self.warn(f"bad VTIMEZONE {tzid or '?'} ignored: {_short(error)}")
            else:
                good_zones.append((tzid, block))
        found = []
        for block in blocks:
            try:
                parsed = icalendar.Calendar.from_ical(
                    _synthetic([block], good_zones), multiple=True
                )
            except Exception as error:
                self.skip(_block_uid(block.own), _short(error))
            else:
                found.extend(self.vevents(parsed))
        return found

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
        return x_wr_timezone.to_standard(calendar, timezone=zone)

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
            reason = self.check(component)
            if reason:
                self.skip(_uid_of(component), reason)
            else:
                usable.append(component)
        if not usable:
            return []
        uid = _uid_of(usable[0]) or _made_up_uid(usable[0])
        recurring = any(
            name in component
            for component in usable
            for name in ("RRULE", "RDATE", "RECURRENCE-ID")
        )
        try:
            series = _Series([_Adapter(component) for component in usable])
            found = list(
                itertools.islice(
                    series.between(self.span_start, self.span_stop), MAX_OCCURRENCES + 1
                )
            )
        except Exception as error:  # dateutil, recurring_ical_events: many types on bad input
            self.skip(uid, _short(error))
            return []
        if len(found) > MAX_OCCURRENCES:
            self.warn(f"event {uid}: over {MAX_OCCURRENCES} occurrences, kept the first")
            del found[MAX_OCCURRENCES:]
        fields: dict[int, dict] = {}  # per source component: what all its occurrences share
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
                shared = fields[id(component)] = _fields(component)
            events.append(
                Event(
                    source=self.source,
                    uid=uid,
                    start=start,
                    occurrence=_occurrence_id(occurrence) if recurring else "",
                    **shared,
                )
            )
        events.sort(key=lambda event: (self.start_key(event.start), event.occurrence))
        return events

    def check(self, component) -> str | None:
        """Why this component cannot be read, or None; also tidies what the expansion reads."""
        for name, message in component.errors:
            if name is None:  # a line icalendar could not split; guess its property name
                guess = _BROKEN_LINE.search(message)
                name = guess.group(1) if guess else ""
                if name.upper() not in _USED:
                    self.warn("ignored unreadable lines in events (none of the properties read)")
            if name.upper() in _USED:
                return f"bad {name.upper()}: {message}"
        start = component.get("DTSTART")
        if start is None:
            return "no DTSTART"
        if isinstance(start, list):
            return "several DTSTART"
        value = getattr(start, "dt", None)
        if not isinstance(value, date):
            return f"bad DTSTART {value!r}"
        for name in ("DTEND", "DURATION", "RECURRENCE-ID"):
            if isinstance(component.get(name), list):
                return f"several {name}"
        tzid = start.params.get("TZID")
        if tzid and isinstance(value, datetime) and value.tzinfo is None:
            self.warn(f"unknown time zone {str(tzid)!r} without VTIMEZONE, read as local time")
        self.tidy_end(component, value)
        return None

    @staticmethod
    def tidy_end(component, start: date) -> None:
        """Drop an end that would change the start's type or come before it.

        recurring_ical_events turns an all-day start into a datetime when the end is one, and
        swaps start and end when the end comes first; the start must stay what DTSTART says.
        """
        end = component.get("DTEND")
        if end is not None:
            value = getattr(end, "dt", None)
            if not isinstance(value, date) or not _same_kind(start, value) or value < start:
                del component["DTEND"]
        duration = component.get("DURATION")
        if duration is not None:
            value = getattr(duration, "dt", None)
            if (
                not isinstance(value, timedelta)
                or value < timedelta(0)
                or (not isinstance(start, datetime) and value % timedelta(days=1))
            ):
                del component["DURATION"]

    def start_key(self, start: date) -> datetime:
        """An aware instant to order and window starts; a date is midnight in the zone."""
        if isinstance(start, datetime):
            return start if start.tzinfo else start.replace(tzinfo=self.tz)
        return datetime.combine(start, time(0), tzinfo=self.tz)


# --- helpers ---------------------------------------------------------------------------------


class _Adapter(recurring_ical_events.EventAdapter):
    """An event adapter that keeps its component at hand for reading the occurrence."""

    def __init__(self, component) -> None:
        super().__init__(component)
        self.component = component


class _Occurrence(recurring_ical_events.Occurrence):
    """An occurrence that knows its source component, so nothing is copied per occurrence."""

    def __init__(self, adapter: _Adapter, start=None, end=None, sequence: int = -1) -> None:
        super().__init__(adapter, start, end, sequence)
        self.component = adapter.component
        # recurring_ical_events passes no start exactly when the occurrence is a
        # RECURRENCE-ID component itself rather than a slot computed from a rule.
        self.is_override = start is None and "RECURRENCE-ID" in adapter.component


class _Series(recurring_ical_events.Series):
    """A series whose occurrences are ``_Occurrence`` (the hook Series offers for this)."""

    def occurrence(self, adapter, start=None, end=None) -> _Occurrence:
        return _Occurrence(adapter, start, end, sequence=self.sequence)


def _occurrence_id(occurrence: _Occurrence) -> str:
    """The slot an occurrence fills: an override's RECURRENCE-ID, else its computed start."""
    if occurrence.is_override:
        return _stamp(occurrence.component["RECURRENCE-ID"].dt)
    return _stamp(occurrence.start)


def _fields(component) -> dict:
    """The Event fields read from one component, shared by all its occurrences."""
    organizer = component.get("ORGANIZER")
    if isinstance(organizer, list):
        organizer = organizer[0] if organizer else None
    key = _text(component, "X-CLIENTLOVE-KEY").strip()
    return {
        "summary": _text(component, "SUMMARY"),
        "description": _text(component, "DESCRIPTION")[:DESCRIPTION_LIMIT],
        "categories": _categories(component),
        "cancelled": _text(component, "STATUS").strip().upper() == "CANCELLED",
        "organizer": (_email(organizer) or None) if organizer is not None else None,
        "attendees": _attendees(component),
        "clientlove_key": key or None,
    }


def _groups(blocks: list[_Block]) -> list[list[_Block]]:
    """Blocks grouped by UID: a series travels with its RECURRENCE-ID overrides."""
    groups: dict[object, list[_Block]] = {}
    for block in blocks:
        uid = _block_uid(block.own)
        groups.setdefault(uid if uid is not None else id(block), []).append(block)
    return list(groups.values())


def _synthetic(blocks: list[_Block], zones: list[tuple[str, str]]) -> str:
    """A calendar text of the given blocks and the VTIMEZONEs they refer to.

    One VCALENDAR per X-WR-TIMEZONE value, so each block keeps its calendar's zone rule.
    """
    wanted: set[str] = set()
    for block in blocks:
        for match in _TZID_PARAM.finditer(block.text):
            wanted.add(_loose_tzid(match.group(1)))
    zone_text: list[str] = []
    seen: set[str] = set()  # the first definition of a TZID is the one icalendar keeps
    for tzid, block in zones:
        if _loose_tzid(tzid) in wanted and tzid not in seen:
            seen.add(tzid)
            zone_text.append(block)
    by_xwr: dict[str | None, list[str]] = {}
    for block in blocks:
        by_xwr.setdefault(block.xwr, []).append(block.text)
    parts: list[str] = []
    for xwr, texts in by_xwr.items():
        parts.append("BEGIN:VCALENDAR\r\n")
        if xwr:
            parts.append(f"X-WR-TIMEZONE:{xwr}\r\n")
        parts.extend(zone_text)
        parts.extend(texts)
        parts.append("END:VCALENDAR\r\n")
    return "".join(parts)


def _digits(day: date, shift: timedelta, beyond: str) -> str:
    """``day + shift`` as YYYYMMDD, or ``beyond`` when that leaves the calendar."""
    try:
        day += shift
    except OverflowError:
        return beyond
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def _not_calendar_reason(text: str) -> str:
    stripped = text.strip()
    if not stripped:
        return "empty"
    first = stripped.splitlines()[0][:40]
    return f"no VCALENDAR or VEVENT (starts with {first!r})"


def _short(error: Exception) -> str:
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _same_kind(a: date, b: date) -> bool:
    """Whether two values compare without error: both dates, or datetimes alike in zone use."""
    if isinstance(a, datetime) != isinstance(b, datetime):
        return False
    if isinstance(a, datetime):
        return (a.tzinfo is None) == (b.tzinfo is None)
    return True


def _uid_of(component) -> str:
    uid = component.get("UID")
    if uid is None or isinstance(uid, list):
        return ""
    return str(uid)


def _made_up_uid(component) -> str:
    """A stable UID for an event without one, from what a re-export does not change."""
    start = component.get("DTSTART")
    seed = f"{start.to_ical() if start is not None else b''!r}|{_text(component, 'SUMMARY')}"
    return "no-uid-" + hashlib.sha256(seed.encode()).hexdigest()[:16]


def _stamp(value: date) -> str:
    """RECURRENCE-ID style text: UTC for zoned times, so a zone's spelling cannot change it."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.strftime("%Y%m%dT%H%M%S")
        return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return value.strftime("%Y%m%d")


def _text(component, name: str) -> str:
    value = component.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return "" if value is None else str(value)


def _categories(component) -> tuple[str, ...]:
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


def _attendees(component) -> tuple[Attendee, ...]:
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
