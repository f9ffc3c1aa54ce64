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

import codecs
import functools
import hashlib
import itertools
import re
import time as clock
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from types import FunctionType, MethodType
from typing import BinaryIO
from zoneinfo import ZoneInfo, available_timezones

import dateutil.rrule
import icalendar
import recurring_ical_events
import x_wr_timezone
from icalendar.prop.broken import vBroken
from icalendar.timezone import tzp
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from daemon.model import Attendee, Event, PartStat, ReadScope
from daemon.reminder_ical import owned_key

__all__ = ["ReadBudget", "iter_vevent_blocks", "read_calendar", "read_calendar_stream"]

#: Longest description kept; the prep note only quotes the start of it.
DESCRIPTION_LIMIT = 2000
#: Occurrences kept per series and read; an endless MINUTELY rule must not hang a read.
MAX_OCCURRENCES = 20_000
#: What expanding recurrences may cost, in steps (see :class:`_Meter`: dateutil's periods,
#: the days and times it looks at, the values it yields), per event and per source, and in
#: seconds of expansion. A step is about a microsecond; real series take a few thousand.
#: Past a budget the event is skipped with a warning: a rule every second since 1990 (or one
#: that walks to the year 9999 without an occurrence) must not hold up the cycle.
EVENT_STEPS = 400_000
SOURCE_STEPS = 5_000_000
EVENT_SECONDS = 5.0
SOURCE_SECONDS = 20.0
#: Transitions a VTIMEZONE may have in one year (real zones have two, a few four), and
#: transitions one offset lookup may walk: dateutil walks each rule from its DTSTART (Outlook
#: writes 1601) up to the date asked, anew for nearly every lookup. A zone past either is
#: replaced by the IANA zone of its TZID, or UTC.
ZONE_TRANSITIONS_PER_YEAR = 8
ZONE_TRANSITIONS_WALKED = 2000
#: Broken blocks whose nested VEVENTs are looked for, per read (each look costs a split).
MAX_DESCENTS = 100
#: Bytes read at a time by :func:`read_calendar_stream`, and the size below which it reads
#: a file whole (one pass, a few times its size in memory). A chunk is held several times
#: over while it is decoded, unfolded and split, so it sets the survey pass's peak.
CHUNK_SIZE = 1 << 18
WHOLE_BELOW = 8 << 20
#: VEVENT blocks parsed at a time on the fast path (a UID group is never cut, so a batch may
#: hold more): icalendar's components weigh several times their text, so parsing all kept
#: blocks at once made the peak of a cold read.
PARSE_BATCH = 256
#: The date prefilter reads DTSTART's digits without its zone, so it keeps this margin.
_DATE_SLACK = timedelta(days=2)
_REASON_LIMIT = 160

# The fold rule of icalendar's own parser (a line break, optional blank lines, then a space or
# tab), so the text we split is the text icalendar would see. It is slow on big files, so
# _unfold uses it only where plain replacing would differ: blank lines before a fold.
_UFOLD = re.compile(r"(?:(?<!\n)\r\n|(?<![\r\n])\n)(?:\r?\n)*[ \t]")
_BLANK_FOLD = re.compile(r"\n(?:\r?\n)+[ \t]")
_LONE_CR = re.compile(r"\r(?!\n)")
# Line patterns start with a literal "\n" (blocks and the scanned text begin with one): that
# lets the regex engine jump from line to line, several times faster than "^" with re.M.
# A lone "\r" is made a "\n" first (_line_breaks); names are case-insensitive, taken as written.
# A boundary match ends before the line's "\r", so a block cut at match.end() ends cleanly.
_BOUNDARY = re.compile(r"\n(?i:(BEGIN|END)):([^\r\n]*?)(?=\r?$)", re.M)
_UID = re.compile(r"\n(?i:UID)(?:;[^:\r\n]*)?:([^\r\n]*?)\r?$", re.M)
_DTSTART_DATE = re.compile(r"\n(?i:DTSTART)[^:\r\n]*:(\d{8})")
# A VEVENT inside a VEVENT (the outer one's END line lost): the prefilter cannot date the
# inner one from the outer's lines, so such a block is always parsed.
_NESTED_EVENT = re.compile(r"\n(?i:BEGIN:VEVENT)\r?$", re.M)
_RECURS = re.compile(r"\n(?i:RRULE|RDATE)[;:]")
_TZID_PARAM = re.compile(r';(?i:TZID)=("[^"\r\n]*"|[^;:\r\n]*)')
_TZID_PROP = re.compile(r"\n(?i:TZID)[^:\r\n]*:([^\r\n]*?)\r?$", re.M)
_XWR = re.compile(r"\n(?i:X-WR-TIMEZONE)[^:\r\n]*:([^\r\n]*?)\r?$", re.M)
_MAILTO = re.compile(r"^\s*mailto:", re.I)
# an address as a token: no white space or iCalendar delimiters inside ("'" stays:
# o'brien@...). It matches a whole run between delimiters with an "@" inside, as
# "[^D]+@[^D]+" does, but only tried where a run starts and without backtracking: that
# pattern took a minute on a 200 kB line without delimiters.
_ADDRESS = re.compile(
    r"(?<![^\s:;<>\",])(?=[^\s:;<>\",]*?[^\s:;<>\",]@[^\s:;<>\",])[^\s:;<>\",]++"
)
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


def iter_vevent_blocks(text: str) -> Iterator[str]:
    """Yield the unfolded text of each VEVENT (from BEGIN to END) without parsing it."""
    for block in _split(_unfold(_line_breaks(text))).events:
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
    lost: list[str | None] = field(default_factory=list)  # UIDs of VEVENTs never closed


_CAPTURED = ("VEVENT", "VTIMEZONE")


class _Splitter:
    """Cuts unfolded text into VEVENT and VTIMEZONE blocks with string operations only,
    fed piece by piece so a huge file never needs to be held whole.

    Nesting follows icalendar's parser: END closes the innermost open component whatever
    name it carries, so a block here is what icalendar would build as one component. Two
    repairs keep one lost line from costing every event after it: a block never closed (a
    cut-off file) is reported in ``lost`` (its UID, for a VEVENT), and a VTIMEZONE that holds
    VEVENTs (its END line lost) is no zone; in both cases the complete blocks inside are read
    as if they stood beside it.

    Each piece but the last must end with a line break, so no line spans two pieces. Found
    blocks collect in ``events`` (block, own lines, index of the VCALENDAR it sits directly
    in or -1) and ``zones``; a caller may empty both between pieces.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []
        self.zones: list[tuple[str, str]] = []
        self.calendars = 0
        self.xwr: list[str | None] = []  # the first X-WR-TIMEZONE of each VCALENDAR
        self.damage: str | None = None
        self.lost: list[str | None] = []
        self._stack: list[str] = []
        self._in_calendar = False  # whether a top-level VCALENDAR is open
        # The text is read as "\n" + text, so every line follows a "\n"; offsets below are
        # into that virtual text. The block being captured: name, offset, depth, calendar.
        self._capture: tuple[str, int, int, int] | None = None
        self._nested: list[int] = []  # where the captured block's subcomponents begin and end
        # Blocks begun inside the captured one and not closed yet: [name, offset, depth,
        # whether a VEVENT closed inside it]; those closed: (name, begin, end, held a VEVENT).
        self._inner_open: list[list] = []
        self._inner_done: list[tuple[str, int, int, bool]] = []
        self._holds_event = False  # whether a VEVENT closed inside the captured block
        self._held: list[str] = []  # the captured text from earlier pieces
        self._end = 0  # offset of the end of the text fed so far

    def feed(self, piece: str) -> None:
        """Scan the next piece of unfolded text."""
        if not piece:
            return
        # buf[0] is the virtual "\n" before the text, or the last "\n" of the previous piece
        base = self._end - 1 if self._end else 0
        buf = "\n" + piece
        self._end = base + len(buf)
        stack = self._stack
        xwr_matches = _XWR.finditer(buf)
        xwr = next(xwr_matches, None)
        for match in _BOUNDARY.finditer(buf):
            while xwr is not None and xwr.start() < match.start():
                self._note_xwr(xwr)
                xwr = next(xwr_matches, None)
            name = match.group(2).upper()
            capture = self._capture
            if match.group(1).upper() == "BEGIN":
                if capture is None and name in _CAPTURED:
                    calendar = self.calendars - 1 if stack == ["VCALENDAR"] else -1
                    self._capture = (name, base + match.start(), len(stack), calendar)
                    self._nested = []
                    self._inner_open = []
                    self._inner_done = []
                    self._holds_event = False
                elif capture is not None:
                    if len(stack) == capture[2] + 1:
                        self._nested.append(base + match.start())
                    if name in _CAPTURED:
                        self._inner_open.append([name, base + match.start(), len(stack), False])
                elif not stack and name == "VCALENDAR":
                    self.calendars += 1
                    self.xwr.append(None)
                    self._in_calendar = True
                stack.append(name)
                continue
            if not stack:
                self.damage = self.damage or f"END:{match.group(2)} without BEGIN"
                continue
            closed = stack.pop()
            if capture is not None:
                depth = len(stack)
                if depth == capture[2] + 1:
                    self._nested.append(base + match.end())
                elif depth == capture[2]:
                    # match.end() is before the line break, so the block ends cleanly
                    whole = self._text(base, buf, capture[1], base + match.end())
                    if capture[0] == "VTIMEZONE" and self._holds_event:
                        self._recover(capture, whole)
                    else:
                        self._emit(capture, whole)
                    self._capture = None
                inner = self._inner_open
                if inner and inner[-1][2] == depth:
                    kind, begin, _, holds = inner.pop()
                    self._inner_done.append((kind, begin, base + match.end(), holds))
                    if kind == "VEVENT" or holds:  # tell the block around it
                        if inner:
                            inner[-1][3] = True
                        else:
                            self._holds_event = True
            if not stack and closed == "VCALENDAR" and self.calendars:
                self._in_calendar = False
        while xwr is not None:
            self._note_xwr(xwr)
            xwr = next(xwr_matches, None)
        if self._capture is None:
            self._held = []
        elif self._capture[1] >= base:
            self._held = [buf[self._capture[1] - base :]]
        else:
            self._held.append(buf[1:])

    def finish(self) -> None:
        """The end of the text: report what was never closed, read what it holds."""
        if self._stack:
            self.damage = self.damage or f"BEGIN:{self._stack[-1]} never closed (file cut off?)"
        capture = self._capture
        if capture is None:
            return
        self._capture = None
        start = capture[1]
        whole = "".join(self._held)  # from the capture's "\n" to the end
        self._held = []
        opened = [(capture[0], start), *((kind, at) for kind, at, _, _ in self._inner_open)]
        for index, (kind, at) in enumerate(opened):
            if kind == "VEVENT":  # its own lines: up to where the next subcomponent begins
                stop = opened[index + 1][1] if index + 1 < len(opened) else self._end
                if self._nested and index == 0:
                    stop = min(stop, self._nested[0])
                self.lost.append(_block_uid(whole[at - start : stop - start]))
        self._recover(capture, whole)

    def _recover(self, capture: tuple[str, int, int, int], whole: str) -> None:
        """Read the complete blocks inside a block that is lost: every outermost VEVENT, and
        every outermost VTIMEZONE that holds no VEVENT."""
        start = capture[1]
        usable = sorted(
            (begin, end) for kind, begin, end, holds in self._inner_done
            if kind == "VEVENT" or not holds
        )
        last = start
        for begin, end in usable:
            if begin < last:
                continue  # inside a block already read
            last = end
            inner = _Splitter()  # the block is complete, so this recurses no further
            inner.feed(whole[begin - start + 1 : end - start] + "\r\n")
            inner.finish()
            self.events += [(block, own, capture[3]) for block, own, _ in inner.events]
            self.zones += inner.zones
        self._inner_done = []

    def _text(self, base: int, buf: str, start: int, end: int) -> str:
        """The text from offset ``start`` (a "\\n", maybe in an earlier piece) to ``end``."""
        if start >= base:
            return buf[start - base : end - base]
        return "".join(self._held) + buf[1 : end - base]

    def _emit(self, capture: tuple[str, int, int, int], whole: str) -> None:
        block = whole[1:] + "\r\n"
        if capture[0] == "VEVENT":
            own = block
            if self._nested:  # keep what lies between the subcomponents
                bounds = [1, *(at - capture[1] for at in self._nested), len(whole)]
                own = "".join(whole[bounds[i] : bounds[i + 1]] for i in range(0, len(bounds), 2))
            self.events.append((block, own, capture[3]))
        else:
            tzid = _TZID_PROP.search(block)
            self.zones.append((tzid.group(1) if tzid else "", block))

    def _note_xwr(self, match: re.Match[str]) -> None:
        if self._in_calendar and not self.xwr[-1]:
            self.xwr[-1] = match.group(1).strip()


def _split(text: str) -> _Split:
    """Cut unfolded text into VEVENT and VTIMEZONE blocks (see :class:`_Splitter`)."""
    splitter = _Splitter()
    splitter.feed(text)
    splitter.finish()
    out = _Split(zones=splitter.zones, calendars=splitter.calendars, damage=splitter.damage,
                 lost=splitter.lost)
    for block, own, calendar in splitter.events:
        out.events.append(_Block(block, own, splitter.xwr[calendar] if calendar >= 0 else None))
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


def _line_breaks(text: str) -> str:
    """A lone CR ends a line too: old Mac files, and CRLF written twice ("\\r\\r\\n") by a
    tool that converted line ends of a file that had them already."""
    if "\r" in text and _LONE_CR.search(text):
        return _LONE_CR.sub("\n", text)
    return text


def _unfold(text: str) -> str:
    """Join folded lines exactly as icalendar's parser does (the text has no lone CR)."""
    if _BLANK_FOLD.search(text):
        return _UFOLD.sub("", text)
    return text.replace("\r\n ", "").replace("\r\n\t", "").replace("\n ", "").replace("\n\t", "")


def _pieces(handle: BinaryIO, encoding: str, chunk_size: int) -> Iterator[str]:
    """The file as text ready for :class:`_Splitter`: decoded (strictly: a decoding error
    propagates), lone CRs made line breaks, unfolded, cut only before a line that starts a
    new content line (so no fold and no line spans two pieces), with a final line break."""
    decoder = codecs.getincrementaldecoder(encoding)()
    carry: list[str] = []
    before = ""  # the character before the next decoded text
    last = ""
    while True:
        raw = handle.read(chunk_size)
        text = decoder.decode(raw, final=not raw)
        cut = _last_cut(text, before) if text else -1
        if cut >= 0:
            piece = _unfold(_line_breaks("".join(carry) + text[:cut]))
            carry = [text[cut:]]
            if piece:
                last = piece[-1]
                yield piece
        elif text:
            carry.append(text)
        if text:
            before = text[-1]
        if not raw:
            pending = decoder.getstate()[0]
            if pending:  # utf-8-sig keeps a cut BOM at the end instead of raising
                raise UnicodeDecodeError(encoding, pending, 0, len(pending), "cut-off at the end")
            break
    piece = _unfold(_line_breaks("".join(carry)))
    if piece:
        last = piece[-1]
        yield piece
    if last != "\n":
        yield "\r\n"  # icalendar reads a str without a line break as a file name


def _last_cut(text: str, before: str) -> int:
    """The last index of ``text`` where a new content line starts after a "\\n", or -1."""
    end = len(text)
    while True:
        at = text.rfind("\n", 0, end)
        if at < 0:
            return 0 if before == "\n" and text[0] not in " \t\r\n" else -1
        if at + 1 < len(text) and text[at + 1] not in " \t\r\n":
            return at + 1
        end = at


class _Head:
    """Enough of the text's start to say why it is no calendar, seen piece by piece."""

    def __init__(self) -> None:
        self.line: str | None = None  # the first line that is not blank
        self.more = False  # whether anything but white space follows it

    def feed(self, piece: str) -> None:
        if self.more:
            return
        if self.line is None:
            stripped = piece.lstrip()
            if stripped:
                self.line = stripped.splitlines()[0]
                self.more = bool(stripped[len(self.line) :].strip())
        elif piece.strip():
            self.more = True

    def reason(self) -> str:
        if self.line is None:
            return "empty"
        line = self.line if self.more else self.line.rstrip()
        return f"no VCALENDAR or VEVENT (starts with {line[:40]!r})"


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

    def __init__(self, source: str, scope: ReadScope, tz: tzinfo, strict: bool = False,
                 budget: ReadBudget | None = None) -> None:
        self.source = source
        self.strict = strict
        self.budget = budget if budget is not None else ReadBudget()
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
        text, encoding = _decode(data)
        text = _unfold(_line_breaks(text))
        if not text.endswith("\n"):
            text += "\r\n"  # icalendar reads a str without a line break as a file name
        split = _split(text)
        if not split.events and not split.calendars and not split.lost:
            first = text.strip().splitlines()[0] if text.strip() else None
            return self.not_calendar(first, _not_calendar_reason(text))
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
        """The VTIMEZONEs whose rules are safe to hand to icalendar (see _zone_problem).

        One that is not gives way to the IANA zone its TZID names (left out, so icalendar
        finds that one by name), or else to UTC under its TZID; the warning says which.
        """
        usable = []
        for tzid, block in zones:
            problem = _zone_problem(block, self.span_stop.year)
            if not problem:
                usable.append((tzid, block))
                continue
            name = _iana_name(tzid)
            if name is None and tzid.strip():
                usable.append((tzid, _utc_zone(tzid)))
            instead = f"; read as {name or 'UTC'}" if tzid.strip() else ""
            self.warn(f"bad VTIMEZONE {tzid or '?'} ignored: {problem}{instead}")
        return usable

    def read_full(self, text: str, split: _Split, zones: list[tuple[str, str]]) -> list[Event]:
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

    def read_fast(self, split: _Split, zones: list[tuple[str, str]]) -> list[Event]:
        """Parse only the UID groups that can name a client and start in the window."""
        kept = [block for group in _groups(split.events) if self.keep(group) for block in group]
        return self.parse_kept(kept, zones)

    def parse_kept(self, kept: list[_Block], zones: list[tuple[str, str]]) -> list[Event]:
        """Parse and expand the blocks the prefilter kept, batch by batch (see
        :func:`_batches`), so only one batch's components are alive at a time.

        The result and the warnings are those of one parse of all kept blocks: batches
        follow that parse's order and never cut a UID group, and the expansion's warnings
        are held back until every batch is parsed.
        """
        events: list[Event] = []
        expansion_warnings: list[str] = []
        for batch in _batches(kept, PARSE_BATCH):
            found = self.parse_batch(batch, zones)
            self._out = expansion_warnings
            try:
                events.extend(self.expand(found))
            finally:
                self._out = self.scope.warnings
            del found
        self.scope.warnings.extend(expansion_warnings)
        return events

    def parse_batch(self, batch: list[_Block], zones: list[tuple[str, str]]) -> list:
        """The VEVENTs of one batch, parsed at once, else block by block."""
        try:
            components = icalendar.Calendar.from_ical(_synthetic(batch, zones), multiple=True)
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
                survey = self.survey(_pieces(handle, encoding, chunk_size))
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
        kept: list[_Block] = []
        unsure: dict[object, list[_Block]] = {}
        second = _Splitter()
        ordinal = 0
        for piece in _pieces(handle, encoding, chunk_size):
            second.feed(piece)
            ordinal = self.sort_blocks(second, survey, ordinal, kept, unsure)
        second.finish()
        self.sort_blocks(second, survey, ordinal, kept, unsure)
        for group in unsure.values():
            if any(self.names(block.text) for block in group):
                kept.extend(group)
        kept = [block for group in _groups(kept) for block in group]
        return self.parse_kept(kept, zones)

    def survey(self, pieces: Iterable[str]) -> _Survey:
        """The first pass: for each UID group, whether it can matter (see ``keep``)."""
        splitter = _Splitter()
        head = _Head()
        flags: dict[object, int] = {}
        blocks = 0
        check_names = bool(self.scope.needles)
        for piece in pieces:
            head.feed(piece)
            splitter.feed(piece)
            blocks = self.survey_blocks(splitter, flags, blocks, check_names)
        splitter.finish()
        blocks = self.survey_blocks(splitter, flags, blocks, check_names)
        verdicts = {}
        for key, state in flags.items():
            if state & _DATES and (not check_names or state & (_NAMES | _UNSURE)):
                verdicts[key] = _KEEP if not check_names or state & _NAMES else _UNSURE
        return _Survey(splitter, head, blocks, verdicts)

    def survey_blocks(self, splitter: _Splitter, flags: dict[object, int], blocks: int,
                      check_names: bool) -> int:
        """Note what the splitter found since the last call; return the blocks seen so far."""
        for text, own, _ in splitter.events:
            key = _group_key(own, blocks)
            blocks += 1
            state = flags.get(key, 0)
            if self.dates_ok(own) or _NESTED_EVENT.search(text):
                state |= _DATES
            if check_names and not state & _NAMES:
                if not state & _DATES:
                    state |= _UNSURE  # looked at only if the group turns out to need it
                elif self.names(text):
                    state |= _NAMES
            flags[key] = state
        splitter.events.clear()
        return blocks

    def sort_blocks(self, splitter: _Splitter, survey: _Survey, ordinal: int,
                    kept: list[_Block], unsure: dict[object, list[_Block]]) -> int:
        """The second pass: keep the blocks of the groups the survey chose."""
        xwr = survey.splitter.xwr
        for text, own, calendar in splitter.events:
            key = _group_key(own, ordinal)
            ordinal += 1
            verdict = survey.verdicts.get(key)
            if verdict is None:
                continue
            block = _Block(text, own, xwr[calendar] if 0 <= calendar < len(xwr) else None)
            if verdict == _KEEP:
                kept.append(block)
            else:
                unsure.setdefault(key, []).append(block)
        splitter.events.clear()
        splitter.zones.clear()
        return ordinal

    def keep(self, group: list[_Block]) -> bool:
        """The prefilter: can this group matter to a client inside the window? (A block that
        holds another VEVENT is parsed whatever its own dates: the inner one may matter.)"""
        if not any(self.dates_ok(block.own) or _NESTED_EVENT.search(block.text)
                   for block in group):
            return False
        return not self.scope.needles or any(self.names(block.text) for block in group)

    def dates_ok(self, own: str) -> bool:
        """Whether a block may start inside the window: it recurs, has no readable start
        date, or its DTSTART's digits lie inside the window (with a margin for zones)."""
        if _RECURS.search(own):
            return True
        match = _DTSTART_DATE.search(own)
        return match is None or self.low <= match.group(1) <= self.high

    def names(self, text: str) -> bool:
        """Whether a block's text may name a client (one of the scope's needles)."""
        if self.scope.kinds is not None:
            return self._names_client(text)
        needles = self.scope.needles
        text = text.lower().replace("\\", "")
        if any(needle in text for needle in needles):
            return True
        if text.isascii():  # _fold leaves ASCII text as it is; needles may differ
            return any(needle in text for needle in self.folded_changed)
        return any(needle in _fold(text) for needle in self.folded)

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
        good_zones = self.parsable_zones(zones)
        found = []
        pending = blocks[::-1]
        while pending:
            block = pending.pop()
            try:
                parsed = icalendar.Calendar.from_ical(
                    _synthetic([block], good_zones), multiple=True
                )
            except Exception as error:
                self.skip(_block_uid(block.own), _short(error))
                # Events after a lost END line sit inside this one: read them on their own
                # (a bounded number of times, as each look re-reads what is inside).
                if block.text.upper().count("BEGIN:VEVENT") < 2:
                    continue
                if self._descents == MAX_DESCENTS:
                    self.warn(f"events inside broken events: only {MAX_DESCENTS} looked into")
                    continue
                self._descents += 1
                inner = _inner_blocks(block)
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
        meter = _Meter(self.budget)
        try:
            series = _Series([_Adapter(component) for component in usable], meter)
            found = list(
                itertools.islice(
                    series.between(self.span_start, self.span_stop), MAX_OCCURRENCES + 1
                )
            )
        except _OverBudget as over:
            self.skip(uid, over.reason)
            return []
        except Exception as error:  # dateutil, recurring_ical_events: many types on bad input
            self.skip(uid, _short(error))
            return []
        finally:
            meter.close()
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
        for name in _USED:  # unreadable values the errors above do not list (a copy made
            value = component.get(name)  # for X-WR-TIMEZONE has no errors), and bad rules
            for item in value if isinstance(value, list) else () if value is None else (value,):
                if isinstance(item, vBroken):
                    return f"bad {name}: {item.parse_error or str(item)}"
                if name == "RRULE" and (problem := _rule_problem(item)):
                    return f"bad RRULE: {problem}"
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
        self.tidy_rule(component, value)
        return None

    def tidy_rule(self, component, start: date) -> None:
        """A rule that ends before the event starts leaves no occurrence at all in
        recurring_ical_events; RFC 5545 counts DTSTART as the first one always. Drop such a
        rule (and say so), so the event is read once, as it starts."""
        rules = component.get("RRULE")
        rules = rules if isinstance(rules, list) else [rules] if rules is not None else []
        first = start.date() if isinstance(start, datetime) else start
        for rule in rules:
            for until in rule.get("UNTIL", ()) if isinstance(rule, dict) else ():
                last = until.date() if isinstance(until, datetime) else until
                if isinstance(last, date) and last < first:
                    self.warn(f"event {_uid_of(component) or '?'}: RRULE ends before DTSTART; "
                              "read DTSTART alone")
                    del component["RRULE"]
                    return

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


# --- budgets -------------------------------------------------------------------------------


@dataclass(slots=True)
class ReadBudget:
    """What the recurrence expansion of one source may cost, per event and in all.

    Steps are counted inside dateutil's loop (see :class:`_Meter`), so a rule that walks to
    the year 9999 without one occurrence costs as much as one that yields every step; seconds
    are those spent expanding (not waiting for a server). A CalDAV source reads object by
    object: one budget serves all its reads, so a few hundred hostile objects cannot add up.
    """

    event_steps: int = field(default_factory=lambda: EVENT_STEPS)
    steps: int = field(default_factory=lambda: SOURCE_STEPS)
    event_seconds: float = field(default_factory=lambda: EVENT_SECONDS)
    seconds: float = field(default_factory=lambda: SOURCE_SECONDS)
    spent_steps: int = 0
    spent_seconds: float = 0.0


class _OverBudget(Exception):
    """An event's expansion went past its budget or its source's; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: Weights of what dateutil does, in steps (about a microsecond each on a 2-core machine).
_VALUE_STEPS = 2  # one value a rule yields and the reader compares to the window
_PERIOD_STEPS = 4  # one period (a year, a month, a week, a day, an hour...) dateutil builds
_DAYS_PER_STEP = 8  # the days of a period dateutil filters by BYxxx, per BYSETPOS entry
_REBUILD_STEPS = 8  # a new month or year: dateutil rebuilds its masks
_TICKS_PER_STEP = 4  # passes of dateutil's search for the next valid time of a sub-daily rule
#: Steps between two looks at the clock (each value looks too: it may cost a zone lookup).
_CLOCK_EVERY = 4096


class _Meter:
    """The budget of one event's expansion, charged from inside dateutil's loop.

    Every RRULE of the event is rebuilt (:meth:`metered`) to run dateutil's own ``_iter``
    code with two names swapped: its per-period helper (``_iterinfo``, called once per
    period with the days the period spans) and ``divmod`` (called on every pass of its
    search for the next valid time of a sub-daily rule, the loop that spins without
    yielding). So the count is of the work done, not only of the occurrences produced, and
    past the budget :class:`_OverBudget` ends the walk wherever it is.
    """

    __slots__ = (
        "_iter",
        "budget",
        "check_at",
        "deadline",
        "deadline_is_event",
        "limit",
        "limit_is_event",
        "spent",
        "started",
        "ticks",
    )

    def __init__(self, budget: ReadBudget) -> None:
        self.budget = budget
        self.spent = 0
        self.ticks = 0
        left = budget.steps - budget.spent_steps
        self.limit = min(budget.event_steps, left)
        self.limit_is_event = budget.event_steps <= left
        self.check_at = min(self.limit + 1, _CLOCK_EVERY)
        self.started = clock.monotonic()
        time_left = budget.seconds - budget.spent_seconds
        self.deadline = self.started + min(budget.event_seconds, time_left)
        self.deadline_is_event = budget.event_seconds <= time_left
        self._iter: FunctionType | None = None

    def charge(self, steps: int) -> None:
        self.spent += steps
        if self.spent >= self.check_at:
            self.check()

    def value(self) -> None:
        """One value yielded: charged, and the clock looked at."""
        self.spent += _VALUE_STEPS
        if self.spent >= self.check_at or clock.monotonic() >= self.deadline:
            self.check()

    def divmod(self, a: int, b: int) -> tuple[int, int]:
        self.ticks += 1
        if self.ticks == _TICKS_PER_STEP:
            self.ticks = 0
            self.charge(1)
        return divmod(a, b)

    def check(self) -> None:
        if self.spent > self.limit:
            if self.limit_is_event:
                raise _OverBudget(f"its recurrence needs over {self.budget.event_steps} steps "
                                  "to expand (the budget of one event)")
            raise _OverBudget(f"the source's budget of {self.budget.steps} recurrence steps "
                              "is spent")
        if clock.monotonic() >= self.deadline:
            if self.deadline_is_event:
                raise _OverBudget(f"its recurrence took over {self.budget.event_seconds:g} s "
                                  "to expand (the budget of one event)")
            raise _OverBudget(f"the source's {self.budget.seconds:g} s for recurrences "
                              "are spent")
        self.check_at = min(self.limit + 1, self.spent + _CLOCK_EVERY)

    def close(self) -> None:
        """Book what this event spent on its source's budget (the time only of an event with
        a rule: a hundred thousand single events must not use up the time of the series)."""
        if self.spent:
            self.budget.spent_steps += self.spent
            self.budget.spent_seconds += clock.monotonic() - self.started

    def metered(self, rule: dateutil.rrule.rrule) -> dateutil.rrule.rrule:
        """A copy of ``rule`` without cache whose iteration charges this meter."""
        copy = rule.replace(cache=False)
        if self._iter is None:
            names = dict(_RRULE_NAMES)
            names["_iterinfo"] = self.period_info
            names["divmod"] = self.divmod
            code = dateutil.rrule.rrule._iter
            self._iter = FunctionType(code.__code__, names, "_iter", code.__defaults__,
                                      code.__closure__)
        copy._iter = MethodType(self._iter, copy)
        copy._rrule__mod_distance = self.distance(copy._rrule__mod_distance)
        return copy

    def distance(self, original: Callable[[int, set, int], tuple]) -> Callable:
        """dateutil's step to the next valid hour, minute or second, charged for the most
        passes it makes (one per unit of ``base``)."""

        def counted(value: int, byxxx: set, base: int) -> tuple:
            self.charge(1 + base // (2 * _TICKS_PER_STEP))
            return original(value, byxxx, base)

        return counted

    def period_info(self, rule: dateutil.rrule.rrule) -> _MeteredInfo:
        return _MeteredInfo(rule, self)


#: The names dateutil's rule iteration runs with; :meth:`_Meter.metered` swaps two of them.
_RRULE_NAMES = vars(dateutil.rrule)


class _MeteredInfo(dateutil.rrule._iterinfo):
    """dateutil's per-period helper, charging each period by the days dateutil will filter."""

    def __init__(self, rule: dateutil.rrule.rrule, meter: _Meter) -> None:
        super().__init__(rule)
        self.meter = meter
        self.per_day = 1 + len(rule._bysetpos or ())

    def rebuild(self, year: int, month: int) -> None:
        self.meter.charge(_REBUILD_STEPS)
        super().rebuild(year, month)

    def _charged(self, found: tuple) -> tuple:
        _, start, end = found
        self.meter.charge(_PERIOD_STEPS + (end - start) * self.per_day // _DAYS_PER_STEP)
        return found

    def ydayset(self, year, month, day):
        return self._charged(super().ydayset(year, month, day))

    def mdayset(self, year, month, day):
        return self._charged(super().mdayset(year, month, day))

    def wdayset(self, year, month, day):
        return self._charged(super().wdayset(year, month, day))

    def ddayset(self, year, month, day):
        return self._charged(super().ddayset(year, month, day))


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
    """A series whose occurrences are ``_Occurrence`` (the hook Series offers for this) and
    whose rules charge every step of their expansion to ``meter``."""

    def __init__(self, components, meter: _Meter) -> None:
        super().__init__(components)
        rules = getattr(self.recurrence, "rrules", None)
        if rules is not None:
            self.recurrence.rrules = [_StoppedRule(rule, meter) for rule in rules]

    def occurrence(self, adapter, start=None, end=None) -> _Occurrence:
        return _Occurrence(adapter, start, end, sequence=self.sequence)


class _StoppedRule:
    """A dateutil rule (or rule set) whose ``between`` yields lazily and stops past the window.

    dateutil's own ``between`` walks every occurrence from DTSTART on and returns them all
    as a list: a rule every minute since 2015 means millions before the window starts.
    This one yields lazily, so the reader's cap on occurrences ends the walk too. An RRULE is
    rebuilt as a metered copy without dateutil's cache (which kept every value it walked:
    gigabytes for a rule every second); the rule set holds only DTSTART and the RDATEs, so
    its cost is bounded by the text.
    """

    def __init__(self, rule, meter: _Meter) -> None:
        self.until = getattr(rule, "until", None)
        self.meter = meter if isinstance(rule, dateutil.rrule.rrule) else None
        self.rule = rule
        self.metered = self.meter is None

    def between(self, after, before, inc: bool = False) -> Iterator:
        meter = self.meter
        if not self.metered:  # built when first needed: past the budget, the rest never are
            self.rule, self.metered = meter.metered(self.rule), True
        zone: object = False
        low = high = inner_low = inner_high = None
        for value in self.rule:
            if meter is not None:
                meter.value()
            if value.tzinfo is not zone:  # bounds a day off, in the values' own zone: a
                zone = value.tzinfo  # comparison within one zone needs no UTC offset
                low, high = _widened(after, zone, -_DAY), _widened(before, zone, _DAY)
                inner_low, inner_high = _widened(after, zone, _DAY), _widened(before, zone, -_DAY)
            if value > high:
                return
            if value < low:
                continue
            if inner_low < value < inner_high:
                yield value
                continue
            if value > before or (value == before and not inc):
                return
            if value > after or (value == after and inc):
                yield value


_DAY = timedelta(days=1)


def _widened(bound: datetime, zone, by: timedelta) -> datetime:
    """``bound + by`` in ``zone`` when both are zoned (dateutil's custom zones compute each
    offset anew, slowly), else ``bound`` itself."""
    if zone is None or bound.tzinfo is None:
        return bound
    try:
        return bound.astimezone(zone) + by
    except (OverflowError, ValueError):
        return bound


_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_RRULE_LINE = re.compile(r"\n(?i:RRULE)[^:\r\n]*:([^\r\n]*)")


def _zone_problem(block: str, last_year: int) -> str | None:
    """Why a VTIMEZONE would hang whoever computes its offsets, or None.

    Each offset lookup walks the zone's rules from their DTSTART (often 1601) on: a rule
    more frequent than yearly means millions of steps per event, and so does a yearly rule
    that fires thousands of times a year (every hour of 28 days of every month). Real zones
    change a few times a year; ``last_year`` is as far as lookups go (the window's end).
    """
    for match in _RRULE_LINE.finditer(block):
        parts = _rule_parts(match.group(1))
        freq = ",".join(parts.get("FREQ", [""])).strip().upper()
        if freq != "YEARLY":
            return f"RRULE FREQ={freq or '?'} (a zone changes yearly)"
        problem = _rule_problem(parts)
        if problem:
            return f"RRULE {problem}"
    changes: dict[int, int] = {}  # year -> change of the transitions a year from then on
    onsets: set[str] = set()  # the single transitions (DTSTART, RDATE), each counted once
    walked = 0
    for part in _ZONE_PART.finditer(block):
        text = part.group(0)
        starts = _ZONE_START.findall(text)
        # the earliest DTSTART in it (a line of something nested must not move it later)
        first = min((int(start[:4]) for start in starts), default=1)
        rules = _RRULE_LINE.findall(text)
        if not rules:
            onsets.update(start[:15] for start in starts)
        for rule in rules:
            parts = _rule_parts(rule)
            per_year, count = _yearly_bound(parts), _first_int(parts.get("COUNT"))
            if count is not None:
                per_year = min(per_year, max(count, 0))
            until = _first_int([value[:4] for value in parts.get("UNTIL", ())])
            last = min(last_year, until if until is not None else last_year)
            _count_transitions(changes, first, last, per_year)
            years = max(last - first + 1, 0)
            walked += per_year * years if count is None else min(per_year * years, count)
        for dates in _RDATE_LINE.findall(text):
            onsets.update(value.strip()[:15] for value in dates.split(",") if value.strip())
    for onset in onsets:
        year = _first_int([onset[:4]])
        if year is not None:
            _count_transitions(changes, year, year, 1)
            walked += year <= last_year
    busiest, year = _busiest_year(changes)
    if busiest > ZONE_TRANSITIONS_PER_YEAR:
        return (f"up to {busiest} transitions in {year} (a zone has a few a year, at most "
                f"{ZONE_TRANSITIONS_PER_YEAR})")
    if walked > ZONE_TRANSITIONS_WALKED:
        return (f"each offset lookup walks up to {walked} transitions (at most "
                f"{ZONE_TRANSITIONS_WALKED})")
    return None


# one STANDARD or DAYLIGHT, up to the next (all of it: what icalendar reads as its lines)
_ZONE_PART = re.compile(r"\n(?i:BEGIN:(?:STANDARD|DAYLIGHT))\r?$.*?"
                        r"(?=\n(?i:BEGIN:(?:STANDARD|DAYLIGHT))\r?$|\Z)", re.M | re.S)
_ZONE_START = re.compile(r"\n(?i:DTSTART)[^:\r\n]*:(\d{4}[^\r\n]*)")
_RDATE_LINE = re.compile(r"\n(?i:RDATE)[^:\r\n]*:([^\r\n]*)")


def _iana_name(tzid: str) -> str | None:
    """The IANA zone icalendar finds for a TZID by name, as it looks (the name, a Windows
    name, or after a vendor prefix like ``/citadel.org/.../Europe/Berlin``), or None."""
    cleaned = tzp.clean_timezone_id(tzid.strip())
    names = [cleaned, WINDOWS_TO_OLSON.get(cleaned, "")]
    if tzid.strip().startswith("/"):
        parts = cleaned.split("/")
        names += ["/".join(parts[start:]) for start in range(1, len(parts))]
    known = _iana_names()
    return next((name for name in names if name in known), None)


@functools.cache
def _iana_names() -> frozenset[str]:
    return frozenset(available_timezones())


def _utc_zone(tzid: str) -> str:
    """A VTIMEZONE of UTC under ``tzid`` (its raw value), to stand in for a hostile one."""
    return (f"BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
            "TZOFFSETFROM:+0000\r\nTZOFFSETTO:+0000\r\nTZNAME:UTC\r\nEND:STANDARD\r\n"
            "END:VTIMEZONE\r\n")


def _rule_parts(rule: str) -> dict[str, list[str]]:
    """An RRULE value as its parts (``FREQ=YEARLY;BYMONTH=3`` -> {"FREQ": ["YEARLY"], ...})."""
    parts: dict[str, list[str]] = {}
    for part in rule.split(";"):
        key, _, value = part.partition("=")
        parts[key.strip().upper()] = value.split(",")
    return parts


def _first_int(values: list[str] | None) -> int | None:
    try:
        return int(values[0]) if values else None
    except ValueError:
        return None


def _yearly_bound(parts: dict[str, list[str]]) -> int:
    """The most times a FREQ=YEARLY rule can fire in one year, as dateutil reads BYxxx: the
    days it can fall on (the fewest any BYxxx allows) times the times of day."""

    def count(key: str) -> int:
        return len({value.strip().upper() for value in parts.get(key, ()) if value.strip()})

    months = count("BYMONTH")
    days: list[int] = []
    if count("BYMONTHDAY"):
        days.append((months or 12) * count("BYMONTHDAY"))
    if count("BYYEARDAY"):
        days.append(count("BYYEARDAY"))
    if count("BYWEEKNO"):
        days.append(7 * count("BYWEEKNO"))
    if count("BYDAY"):
        # "-1SU" is one day a month (of BYMONTH) or a year; "SU" is every Sunday of those
        nth = len({v.strip() for v in parts["BYDAY"] if v.strip()[:1] in set("+-0123456789")})
        every = count("BYDAY") - nth
        days.append((months or 1) * nth + (5 * months if months else 53) * every)
        if count("BYMONTHDAY"):  # "BYMONTHDAY=21,...,27;BYDAY=SU": one Sunday a month
            days.append((months or 12) * (every * _same_weekday(parts["BYMONTHDAY"]) + nth))
    if months:
        days.append(31 * months if days else months)  # alone: DTSTART's day of each month
    per_year = min([366, *days]) if days else 1
    times = max(count("BYHOUR"), 1) * max(count("BYMINUTE"), 1) * max(count("BYSECOND"), 1)
    if count("BYSETPOS"):
        return min(per_year * times, count("BYSETPOS"))
    return per_year * times


def _same_weekday(monthdays: list[str]) -> int:
    """The most of these days of a month that can fall on one weekday (days 7 apart do; a
    day counted from the month's end may fall on any)."""
    classes = [0] * 7
    from_end = 0
    for value in {value.strip() for value in monthdays if value.strip()}:
        day = _first_int([value])
        if day is None or day < 0:
            from_end += 1
        else:
            classes[day % 7] += 1
    return max(classes) + from_end


def _count_transitions(changes: dict[int, int], first: int, last: int, per_year: int) -> None:
    if first <= last and per_year:
        changes[first] = changes.get(first, 0) + per_year
        changes[last + 1] = changes.get(last + 1, 0) - per_year


def _busiest_year(changes: dict[int, int]) -> tuple[int, int]:
    """The most transitions of any year, and that year."""
    busiest, busiest_year, running = 0, 0, 0
    for year in sorted(changes):
        running += changes[year]
        if running > busiest:
            busiest, busiest_year = running, year
    return busiest, busiest_year


def _rule_problem(rule) -> str | None:
    """What makes a rule unusable before dateutil tries it, or None.

    dateutil loops for ever on INTERVAL=0, and walks to the year 9999 (seconds, for a
    minutely rule) looking for a day like 30 February that never comes.
    """
    if not isinstance(rule, dict):
        return None
    try:
        if any(int(value) < 1 for value in rule.get("INTERVAL", ())):
            return "INTERVAL must be 1 or more"
        months = [int(value) for value in rule.get("BYMONTH", ())]
        days = [int(value) for value in rule.get("BYMONTHDAY", ())]
    except (TypeError, ValueError):
        return None  # dateutil says what is wrong
    if months and days and all(1 <= m <= 12 for m in months) and not any(
        1 <= abs(day) <= _MONTH_DAYS[month - 1] for month in months for day in days
    ):
        return "no day of BYMONTH is in BYMONTHDAY"
    return None


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
    return {
        "summary": _text(component, "SUMMARY"),
        "description": _text(component, "DESCRIPTION")[:DESCRIPTION_LIMIT],
        "categories": _categories(component),
        "cancelled": _text(component, "STATUS").strip().upper() == "CANCELLED",
        "organizer": (_email(organizer) or None) if organizer is not None else None,
        "attendees": _attendees(component),
        # only a real reminder of ours is left out of the history: marks on a meeting with
        # people (an invitation, a copy of ours with guests added) never hide it
        "clientlove_key": owned_key(component),
        "classification": _text(component, "CLASS").strip().upper(),
    }


_DATES, _NAMES, _UNSURE = 1, 2, 4  # what the survey found out about a UID group
_KEEP = 1  # a survey's verdict: keep the group (_UNSURE: look at its names in the 2nd pass)


@dataclass(slots=True)
class _Survey:
    """What the first pass over a stream found."""

    splitter: _Splitter  # its damage, zones, calendars and X-WR-TIMEZONEs
    head: _Head
    blocks: int
    verdicts: dict[object, int]  # group key: _KEEP or _UNSURE (groups left out are dropped)


def _group_key(own: str, ordinal: int) -> object:
    """The group a block belongs to: its UID, or itself (its place in the file) without one."""
    uid = _block_uid(own)
    return uid if uid is not None else ("#", ordinal)


def _inner_blocks(block: _Block) -> _Split:
    """The VEVENTs nested inside a block, found as if its BEGIN and END lines were gone."""
    text = block.text.rstrip("\r\n")
    inner = _split(text[text.find("\n") + 1 : text.rfind("\n") + 1])
    inner.events = [_Block(item.text, item.own, block.xwr) for item in inner.events]
    return inner


def _groups(blocks: list[_Block]) -> list[list[_Block]]:
    """Blocks grouped by UID: a series travels with its RECURRENCE-ID overrides."""
    groups: dict[object, list[_Block]] = {}
    for block in blocks:
        uid = _block_uid(block.own)
        groups.setdefault(uid if uid is not None else id(block), []).append(block)
    return list(groups.values())


def _batches(blocks: list[_Block], size: int) -> Iterator[list[_Block]]:
    """The blocks in the order one synthetic calendar of them all would parse them (by
    X-WR-TIMEZONE, see :func:`_synthetic`), cut into runs of ``size`` or a few more.

    A cut never separates two blocks that may share a UID once parsed: each block's keys are
    all the UIDs written in it (nested events and alarms too), loosened as :func:`_uid_key`
    says, so a batch holds whole UID groups and expanding batch by batch equals expanding
    all at once. Keys that merge too much only make a batch bigger.
    """
    calendars: dict[str | None, int] = {}
    for block in blocks:
        calendars.setdefault(block.xwr, len(calendars))
    if len(calendars) > 1:
        blocks = sorted(blocks, key=lambda block: calendars[block.xwr])
    keys = [{_uid_key(match.group(1)) for match in _UID.finditer(block.text)}
            for block in blocks]
    last: dict[str, int] = {}
    for index, found in enumerate(keys):
        for key in found:
            last[key] = index
    begin = reach = 0
    for index, found in enumerate(keys):
        for key in found:
            reach = max(reach, last[key])
        if index >= reach and index + 1 - begin >= size:
            yield blocks[begin : index + 1]
            begin = index + 1
    if begin < len(blocks):
        yield blocks[begin:]


def _uid_key(raw: str) -> str:
    """A UID as written, loosened so every spelling icalendar reads as one UID (escapes,
    case of an escaped N, blanks around it) gives one key."""
    return raw.replace("\\", "").strip().lower()


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
    """The UID, or the first that is not empty when a broken event has several."""
    uid = component.get("UID")
    if isinstance(uid, list):
        return next((str(item) for item in uid if str(item).strip()), "")
    return "" if uid is None else str(uid)


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
