"""Cutting iCalendar text into VEVENT and VTIMEZONE blocks, without parsing it.

The prefilter needs each event's text before icalendar ever sees it, and a damaged file
(a lost END line, a cut-off download, old Mac line ends) must cost only the events it
breaks. Splitting follows icalendar's own nesting and unfolding rules, so a block here is
exactly what icalendar would build as one component, and it can be fed piece by piece
(:mod:`daemon.icsread.streaming`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

# The fold rule of icalendar's own parser (a line break, optional blank lines, then a space or
# tab), so the text we split is the text icalendar would see. It is slow on big files, so
# unfold uses it only where plain replacing would differ: blank lines before a fold.
_UFOLD = re.compile(r"(?:(?<!\n)\r\n|(?<![\r\n])\n)(?:\r?\n)*[ \t]")
_BLANK_FOLD = re.compile(r"\n(?:\r?\n)+[ \t]")
_LONE_CR = re.compile(r"\r(?!\n)")

# Line patterns start with a literal "\n" (blocks and the scanned text begin with one): that
# lets the regex engine jump from line to line, several times faster than "^" with re.M.
# A lone "\r" is made a "\n" first (line_breaks); names are case-insensitive, taken as written.
# A boundary match ends before the line's "\r", so a block cut at match.end() ends cleanly.
_BOUNDARY = re.compile(r"\n(?i:(BEGIN|END)):([^\r\n]*?)(?=\r?$)", re.M)
UID_LINE = re.compile(r"\n(?i:UID)(?:;[^:\r\n]*)?:([^\r\n]*?)\r?$", re.M)
_TZID_PROP = re.compile(r"\n(?i:TZID)[^:\r\n]*:([^\r\n]*?)\r?$", re.M)
_XWR = re.compile(r"\n(?i:X-WR-TIMEZONE)[^:\r\n]*:([^\r\n]*?)\r?$", re.M)


def iter_vevent_blocks(text: str) -> Iterator[str]:
    """Yield the unfolded text of each VEVENT (from BEGIN to END) without parsing it."""
    for block in split_text(unfold(line_breaks(text))).events:
        yield block.text


@dataclass(slots=True)
class Block:
    """One VEVENT as text, with what the prefilter and the synthetic calendar need."""

    text: str
    # The event's own lines, without nested components: a VALARM may carry a UID of its
    # own (RFC 9074), which must not decide the group.
    own: str
    xwr: str | None  # the raw X-WR-TIMEZONE of the VCALENDAR it sits directly in


@dataclass(slots=True)
class Split:
    """What split_text found: blocks, zones, and whether the nesting was broken."""

    events: list[Block] = field(default_factory=list)
    zones: list[tuple[str, str]] = field(default_factory=list)  # (raw TZID, block)
    calendars: int = 0
    damage: str | None = None  # why the nesting is broken, if it is
    lost: list[str | None] = field(default_factory=list)  # UIDs of VEVENTs never closed


_CAPTURED = ("VEVENT", "VTIMEZONE")


class Splitter:
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
                self.lost.append(block_uid(whole[at - start : stop - start]))
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
            inner = Splitter()  # the block is complete, so this recurses no further
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


def split_text(text: str) -> Split:
    """Cut unfolded text into VEVENT and VTIMEZONE blocks (see :class:`Splitter`)."""
    splitter = Splitter()
    splitter.feed(text)
    splitter.finish()
    out = Split(zones=splitter.zones, calendars=splitter.calendars, damage=splitter.damage,
                 lost=splitter.lost)
    for block, own, calendar in splitter.events:
        out.events.append(Block(block, own, splitter.xwr[calendar] if calendar >= 0 else None))
    return out


def decode(data: bytes | str) -> tuple[str, str | None]:
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


def line_breaks(text: str) -> str:
    """A lone CR ends a line too: old Mac files, and CRLF written twice ("\\r\\r\\n") by a
    tool that converted line ends of a file that had them already."""
    if "\r" in text and _LONE_CR.search(text):
        return _LONE_CR.sub("\n", text)
    return text


def unfold(text: str) -> str:
    """Join folded lines exactly as icalendar's parser does (the text has no lone CR)."""
    if _BLANK_FOLD.search(text):
        return _UFOLD.sub("", text)
    return text.replace("\r\n ", "").replace("\r\n\t", "").replace("\n ", "").replace("\n\t", "")


def block_uid(block: str) -> str | None:
    match = UID_LINE.search(block)
    return match.group(1).strip() if match else None


def inner_blocks(block: Block) -> Split:
    """The VEVENTs nested inside a block, found as if its BEGIN and END lines were gone."""
    text = block.text.rstrip("\r\n")
    inner = split_text(text[text.find("\n") + 1 : text.rfind("\n") + 1])
    inner.events = [Block(item.text, item.own, block.xwr) for item in inner.events]
    return inner


def uid_groups(blocks: list[Block]) -> list[list[Block]]:
    """Blocks grouped by UID: a series travels with its RECURRENCE-ID overrides."""
    groups: dict[object, list[Block]] = {}
    for block in blocks:
        uid = block_uid(block.own)
        groups.setdefault(uid if uid is not None else id(block), []).append(block)
    return list(groups.values())


def group_key(own: str, ordinal: int) -> object:
    """The group a block belongs to: its UID, or itself (its place in the file) without one."""
    uid = block_uid(own)
    return uid if uid is not None else ("#", ordinal)


def not_calendar_reason(text: str) -> str:
    stripped = text.strip()
    if not stripped:
        return "empty"
    first = stripped.splitlines()[0][:40]
    return f"no VCALENDAR or VEVENT (starts with {first!r})"
