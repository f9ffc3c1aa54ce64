"""The kept blocks as calendar texts for icalendar, a batch at a time.

icalendar's components weigh several times their text, so parsing every kept block of a
big file in one calendar made the peak of a cold read. Batches of about
:data:`PARSE_BATCH` blocks, cut only where no UID group spans the cut and in the order one
calendar of them all would have, give the same events and warnings for a fraction of the
memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from daemon.icsread.splitting import UID_LINE, Block

#: VEVENT blocks parsed at a time on the fast path (a UID group is never cut, so a batch may
#: hold more): icalendar's components weigh several times their text, so parsing all kept
#: blocks at once made the peak of a cold read.
PARSE_BATCH = 256
_TZID_PARAM = re.compile(r';(?i:TZID)=("[^"\r\n]*"|[^;:\r\n]*)')
_NON_ALNUM = re.compile(r"[\W_]+")


def _loose_tzid(tzid: str) -> str:
    """A TZID reduced so a quoted parameter and an escaped VTIMEZONE value compare equal.

    Only used to pick the zones a block may need: a false match costs a parse, never a zone.
    """
    return _NON_ALNUM.sub("", tzid).lower()


def batches(blocks: list[Block], size: int) -> Iterator[list[Block]]:
    """The blocks in the order one synthetic calendar of them all would parse them (by
    X-WR-TIMEZONE, see :func:`synthetic_calendar`), cut into runs of ``size`` or a few more.

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
    keys = [{_uid_key(match.group(1)) for match in UID_LINE.finditer(block.text)}
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


def synthetic_calendar(blocks: list[Block], zones: list[tuple[str, str]]) -> str:
    """A calendar text of the given blocks and the VTIMEZONEs they refer to.

    One VCALENDAR per X-WR-TIMEZONE value, so each block keeps its calendar's zone rule.
    """
    wanted: set[str] = set()
    for block in blocks:
        for match in _TZID_PARAM.finditer(block.text):
            wanted.add(_loose_tzid(match.group(1)))
    zone_text: list[str] = []
    seen: set[str] = set()  # the first definition of a TZID is the one icalendar keeps
    for tzid, zone in zones:
        if _loose_tzid(tzid) in wanted and tzid not in seen:
            seen.add(tzid)
            zone_text.append(zone)
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
