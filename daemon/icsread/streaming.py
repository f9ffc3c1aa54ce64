"""Reading a big calendar file in chunks, in two passes, never holding it whole.

A file of a hundred megabytes decodes to several times that as text, and icalendar's
components weigh more again. The first pass (the survey) splits the file chunk by chunk
and keeps only a verdict per UID group from the prefilter; the second keeps the text of the
groups it chose. Memory grows with what is kept, not with the file.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from daemon.icsread.prefilter import Prefilter
from daemon.icsread.splitting import Block, Splitter, group_key, line_breaks, uid_groups, unfold

#: Bytes read at a time by :func:`read_calendar_stream`, and the size below which it reads
#: a file whole (one pass, a few times its size in memory). A chunk is held several times
#: over while it is decoded, unfolded and split, so it sets the survey pass's peak.
CHUNK_SIZE = 1 << 18
WHOLE_BELOW = 8 << 20


def decoded_pieces(handle: BinaryIO, encoding: str, chunk_size: int) -> Iterator[str]:
    """The file as text ready for :class:`Splitter`: decoded (strictly: a decoding error
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
            piece = unfold(line_breaks("".join(carry) + text[:cut]))
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
    piece = unfold(line_breaks("".join(carry)))
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


class Head:
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


_DATES, _NAMES, _UNSURE = 1, 2, 4  # what the survey found out about a UID group
_KEEP = 1  # a survey's verdict: keep the group (_UNSURE: look at its names in the 2nd pass)


@dataclass(slots=True)
class Survey:
    """What the first pass over a stream found."""

    splitter: Splitter  # its damage, zones, calendars and X-WR-TIMEZONEs
    head: Head
    blocks: int
    verdicts: dict[object, int]  # group key: _KEEP or _UNSURE (groups left out are dropped)


def survey(pieces: Iterable[str], prefilter: Prefilter) -> Survey:
    """The first pass: for each UID group, whether it can matter (see ``Prefilter.keep``)."""
    splitter = Splitter()
    head = Head()
    flags: dict[object, int] = {}
    blocks = 0
    check_names = bool(prefilter.scope.needles)
    for piece in pieces:
        head.feed(piece)
        splitter.feed(piece)
        blocks = _survey_blocks(splitter, prefilter, flags, blocks, check_names)
    splitter.finish()
    blocks = _survey_blocks(splitter, prefilter, flags, blocks, check_names)
    verdicts = {}
    for key, state in flags.items():
        if state & _DATES and (not check_names or state & (_NAMES | _UNSURE)):
            verdicts[key] = _KEEP if not check_names or state & _NAMES else _UNSURE
    return Survey(splitter, head, blocks, verdicts)


def _survey_blocks(splitter: Splitter, prefilter: Prefilter, flags: dict[object, int],
                   blocks: int, check_names: bool) -> int:
    """Note what the splitter found since the last call; return the blocks seen so far."""
    for text, own, _ in splitter.events:
        key = group_key(own, blocks)
        blocks += 1
        state = flags.get(key, 0)
        if prefilter.may_start(text, own):
            state |= _DATES
        if check_names and not state & _NAMES:
            if not state & _DATES:
                state |= _UNSURE  # looked at only if the group turns out to need it
            elif prefilter.names(text):
                state |= _NAMES
        flags[key] = state
    splitter.events.clear()
    return blocks


def kept_blocks(pieces: Iterable[str], survey: Survey, prefilter: Prefilter) -> list[Block]:
    """The second pass: the blocks of the groups the survey chose, grouped by UID (a group
    it was unsure of is kept if one of its blocks may name a client)."""
    kept: list[Block] = []
    unsure: dict[object, list[Block]] = {}
    second = Splitter()
    ordinal = 0
    for piece in pieces:
        second.feed(piece)
        ordinal = _sort_blocks(second, survey, ordinal, kept, unsure)
    second.finish()
    _sort_blocks(second, survey, ordinal, kept, unsure)
    for group in unsure.values():
        if any(prefilter.names(block.text) for block in group):
            kept.extend(group)
    return [block for group in uid_groups(kept) for block in group]


def _sort_blocks(splitter: Splitter, survey: Survey, ordinal: int, kept: list[Block],
                 unsure: dict[object, list[Block]]) -> int:
    """Keep the blocks the splitter found since the last call, as the survey chose."""
    xwr = survey.splitter.xwr
    for text, own, calendar in splitter.events:
        key = group_key(own, ordinal)
        ordinal += 1
        verdict = survey.verdicts.get(key)
        if verdict is None:
            continue
        block = Block(text, own, xwr[calendar] if 0 <= calendar < len(xwr) else None)
        if verdict == _KEEP:
            kept.append(block)
        else:
            unsure.setdefault(key, []).append(block)
    splitter.events.clear()
    splitter.zones.clear()
    return ordinal
