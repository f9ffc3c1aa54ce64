"""Property tests for the iCalendar reader (``daemon.icsread``), driven by hypothesis.

The reader's contract (see its module docstring): it never raises for bad input; it returns
a list of ``Event`` that start inside the window; every warning names the source; an event of
the input that is not returned is named in a warning, unless it validly has no occurrence in
the window. And the streaming reader, on the fast path, returns exactly what the whole-file
reader returns, with the same warnings.

Properties:

1. arbitrary bytes, arbitrary text and soups of iCalendar-like lines: the contract, on the
   full path, the fast path and the fast path with needles;
2. structured broken calendars (1-5 VEVENTs drawn from valid and broken properties, zones,
   rules, nesting, huge lines, encodings, line endings, folds): the contract including
   ``check_dropped``;
3. ``read_calendar_stream`` in small chunks against ``read_calendar``, on the structured
   calendars and on mutated templates.

Every read runs under a time limit, so a hang fails instead of blocking. Set
``CLIENTLOVE_SOAK=1`` for many more examples.
"""

from __future__ import annotations

import io
import os
import random
import re
from datetime import UTC, date, datetime, timedelta

import icalendar
import pytest
import recurring_ical_events
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from icalendar.timezone import tzp

from daemon.icsread import read_calendar, read_calendar_stream
from daemon.model import Event
from tests.scenarios_input import (
    _FOLD,
    MUTATIONS,
    NEEDLES,
    SOURCE,
    WIDE_END,
    WIDE_START,
    RawEvent,
    _decode,
    _limit_for,
    _scope,
    _Timeout,
    check_dropped,
    check_events,
    raw_events,
    templates,
    time_limit,
)

SOAK = os.environ.get("CLIENTLOVE_SOAK") == "1"
EXAMPLES = 2000 if SOAK else 150
#: The structured calendars are bigger (huge lines, deep nesting): fewer of them by default.
STRUCTURED = 2000 if SOAK else 80
#: How big the "huge" lines get.
HUGE = 200_000
#: How deep BEGIN:X nests.
DEEP = 2000

# CI explores the same examples every run (a red CI must mean a change broke something);
# the soak run explores new ones each time.
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not SOAK,
                suppress_health_check=[HealthCheck.too_slow])
FUZZ_STRUCTURED = settings(
    max_examples=STRUCTURED,
    deadline=None,
    derandomize=not SOAK,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
)

#: The three reads of one input: (label, prefilter, needles).
MODES = (("full", False, ()), ("fast", True, ()), ("needles", True, NEEDLES))


# == reading under the contract ===============================================================


def _read(data: bytes | str, label: str, *, prefilter: bool,
          needles: tuple[str, ...] = ()) -> tuple[list[Event], list[str]]:
    """One read under a time limit; fails on a raise, a hang or a broken output contract."""
    tzp.use_default()  # icalendar's zone cache is process-wide; start each read afresh
    scope = _scope(prefilter=prefilter, needles=needles)
    limit = _limit_for(len(data))
    try:
        with time_limit(limit):
            events = read_calendar(data, SOURCE, scope)
    except _Timeout:  # a BaseException: hypothesis would not shrink it
        raise AssertionError(f"{label}: took over {limit:.0f} s") from None
    problems = check_events(events, scope, label)
    assert not problems, problems
    return events, scope.warnings


def _read_stream(data: bytes, label: str, *, chunk_size: int,
                 needles: tuple[str, ...] = ()) -> tuple[list[Event], list[str]]:
    tzp.use_default()
    scope = _scope(prefilter=True, needles=needles)
    limit = _limit_for(len(data)) * 2
    try:
        with time_limit(limit):
            events = read_calendar_stream(io.BytesIO(data), SOURCE, scope,
                                          chunk_size=chunk_size, whole_below=0)
    except _Timeout:
        raise AssertionError(f"{label}: took over {limit:.0f} s") from None
    problems = check_events(events, scope, label)
    assert not problems, problems
    return events, scope.warnings


_BOUNDARY = re.compile(r"^(BEGIN|END):", re.I)


def _vevent_blocks(text: str) -> list[str]:
    """Every VEVENT, at any depth, from its BEGIN to the END that closes it: as in
    icalendar's parser, any END closes the innermost component (an END:VCALENDAR may close a
    VEVENT whose own END was lost); that line is written END:VEVENT in the block."""
    lines = text.split("\n")
    stack: list[tuple[str, int]] = []
    blocks = []
    for index, line in enumerate(lines):
        found = _BOUNDARY.match(line)
        if found is None:
            continue
        if found.group(1).upper() == "BEGIN":
            stack.append((line[6:].strip().upper(), index))
        elif stack:
            name, begin = stack.pop()
            if name == "VEVENT":
                blocks.append("\n".join([*lines[begin:index], "END:VEVENT\r"]))
    return blocks


_VTIMEZONE_BLOCK = re.compile(r"^BEGIN:VTIMEZONE\r?$.*?^END:VTIMEZONE\r?$", re.S | re.M | re.I)
_UID_LINE = re.compile(r"^UID(?:;[^:\r\n]*)?:([^\r\n]*)", re.M | re.I)


_RECURRENCE = re.compile(r"(?:UID|DTSTART|RRULE|RDATE|EXDATE|RECURRENCE-ID)[;:]")


def _recurrence_only(block: str) -> str:
    """The VEVENT with only the lines its occurrences depend on, at its own level (stray
    BEGIN/END lines inside, an alarm's lines, its end are left out)."""
    lines = block.split("\n")
    kept, depth = [lines[0]], 0
    for line in lines[1:-1]:
        upper = line.upper()
        if upper.startswith("BEGIN:"):
            depth += 1
        elif upper.startswith("END:"):
            depth = max(depth - 1, 0)
        elif depth == 0 and _RECURRENCE.match(upper):
            kept.append(line)
    return "\n".join([*kept, lines[-1]])


def _starts_after_window(vevent) -> bool:
    """Whether the event (and so any rule of it) starts after the window, with no RDATE."""
    if "RDATE" in vevent or "DTSTART" not in vevent:
        return False
    start = vevent.decoded("DTSTART")
    if not isinstance(start, datetime):
        start = datetime.combine(start, datetime.min.time())
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return start >= WIDE_END + timedelta(days=2)


def _zone_id(zone: str) -> str:
    found = re.search(r"^TZID[^:\r\n]*:([^\r\n]*)", zone, re.M | re.I)
    return found.group(1).strip() if found else ""


def _zone_reads(zone: str) -> bool:
    """Whether icalendar reads a VTIMEZONE alone without an error and can use it."""
    try:
        with time_limit(2):
            parsed = icalendar.Calendar.from_ical(
                f"BEGIN:VCALENDAR\r\n{zone}\nEND:VCALENDAR\r\n")
            if any(part.errors for part in parsed.walk()):
                return False
            for timezone in parsed.walk("VTIMEZONE"):
                timezone.to_tz()
    except (Exception, _Timeout):
        return False
    return True


def validly_empty(data: bytes | str) -> set[str | None]:
    """UIDs whose events parse without a single error and have no occurrence in the window
    (an EXDATE on DTSTART, a rule that never fires): the reader may leave them out silently.
    None stands for the events without UID, when all of them are empty so.

    An oracle apart from the reader: plain regex blocks, each UID's group parsed alone by
    icalendar (with the file's zones) and expanded by ``recurring_ical_events``. Anything it
    is unsure of (an error, an exception, a group it cannot cut out) is not exempt."""
    text = _FOLD.sub("", re.sub(r"\r(?!\n)", "\n", _decode(data)))
    groups: dict[object, list[str]] = {}
    for index, block in enumerate(_vevent_blocks(text)):
        # its own UID: the lines before any nested component (an inner event has its own)
        own = re.split(r"\n(?i:BEGIN):", block, maxsplit=1)[0]
        found = _UID_LINE.search(own)
        uid = found.group(1).strip() if found else ""
        # events without UID: each alone, as (None, index)
        groups.setdefault(uid or (None, index), []).append(block)
    # the reader ignores (and warns about) a zone icalendar cannot read: so does the oracle
    zones = [zone for zone in _VTIMEZONE_BLOCK.findall(text) if _zone_reads(zone)]
    empty: set[object] = set()
    for uid, blocks in groups.items():
        # Only starts count: without an end, recurring_ical_events asks no overlap (a DTEND
        # centuries before DTSTART made it walk a rule for centuries).
        blocks = [_recurrence_only(block) for block in blocks]
        # only the zones the group names: a broken zone of another event is not its problem
        named = "".join(z + "\n" for z in zones
                        if any(_zone_id(z) and f"TZID={_zone_id(z)}" in b.replace('"', "")
                               for b in blocks))
        calendar = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//oracle//EN\r\n" + named
                    + "".join(b + "\n" for b in blocks) + "END:VCALENDAR\r\n")
        try:
            tzp.use_default()
            with time_limit(2):
                parsed = icalendar.Calendar.from_ical(calendar)
                if any(part.errors for part in parsed.walk()):
                    continue
                found_events = parsed.walk("VEVENT")
                if len(found_events) != len(blocks):
                    continue
                if not all(_starts_after_window(vevent) for vevent in found_events) and \
                        recurring_ical_events.of(parsed).between(WIDE_START, WIDE_END):
                    continue
        except (Exception, _Timeout):  # unsure: not exempt (and no hang either)
            continue
        empty.add(uid)
    uidless = [key for key in groups if isinstance(key, tuple)]
    found = {key for key in empty if not isinstance(key, tuple)}
    if all(key in empty for key in uidless):
        found.add(None)
    return found


def check_no_silent_drop(raw: list[RawEvent], data: bytes | str, events: list[Event],
                         warnings: list[str], label: str, *, fast: bool) -> None:
    """``check_dropped``, with the events that validly have no occurrence left out."""
    problems = check_dropped(raw, events, warnings, label, fast=fast)
    if problems:
        empty = validly_empty(data)
        kept = [item for item in raw if (item.uid or None) not in empty]
        problems = check_dropped(kept, events, warnings, label, fast=fast)
    assert not problems, (problems, warnings)


def check_contract(data: bytes | str, *, dropped: bool = True) -> None:
    """The full path, the fast path and the fast path with needles; with ``dropped``, every
    event missing from the full and the fast read must be named in a warning."""
    raw = raw_events(data) if dropped else []
    for mode, prefilter, needles in MODES:
        events, warnings = _read(data, mode, prefilter=prefilter, needles=needles)
        if dropped and mode != "needles":
            check_no_silent_drop(raw, data, events, warnings, mode, fast=prefilter)


def check_same(data: bytes, chunk_size: int, needles: tuple[str, ...]) -> None:
    """The streaming fast path gives the events and warnings of the whole-file fast path."""
    whole, whole_warnings = _read(data, "whole", prefilter=True, needles=needles)
    streamed, stream_warnings = _read_stream(data, f"stream/{chunk_size}",
                                             chunk_size=chunk_size, needles=needles)
    assert stream_warnings == whole_warnings
    assert streamed == whole


# == property 1: anything at all ==============================================================

#: Lines an iCalendar soup is made of: structure, properties, and their broken forms.
SOUP_LINES = [
    "BEGIN:VCALENDAR", "END:VCALENDAR", "BEGIN:VEVENT", "END:VEVENT", "BEGIN:VTIMEZONE",
    "END:VTIMEZONE", "BEGIN:STANDARD", "END:STANDARD", "BEGIN:VALARM", "END:VALARM",
    "BEGIN:X", "END:X", "BEGIN:", "END:", "VERSION:2.0", "UID:soup-1", "UID:soup-2", "UID:",
    "DTSTART:20261102T100000Z", "DTSTART;VALUE=DATE:20261110", "DTSTART:20261301",
    "DTSTART;TZID=Europe/London:20261102T100000", "DTSTART;TZID=Nowhere:20261102T100000",
    "DTSTART:", "DTEND:20261102T110000Z", "DURATION:PT1H", "DURATION:xyz",
    "RRULE:FREQ=WEEKLY;COUNT=3", "RRULE:FREQ=SECONDLY", "RRULE:FREQ=DAILY;BYDAY=XX",
    "RDATE:20261105T100000Z", "RDATE:garbage", "EXDATE:20261109T100000Z", "EXDATE:2026",
    "RECURRENCE-ID:20261109T100000Z", "TZID:Nowhere", "TZOFFSETFROM:+0100", "TZOFFSETTO:abc",
    "SUMMARY:Acme review", "ATTENDEE:mailto:jane.doe@acme.example", "X-WR-TIMEZONE:Mars/Base",
    "ORGANIZER:mailto:", " folded continuation", "\tfolded", ":", ";", "",
]


@st.composite
def soups(draw) -> bytes | str:
    """Lines of iCalendar (and of anything) in any order, with any line breaks."""
    lines = draw(st.lists(st.sampled_from(SOUP_LINES) | st.text(max_size=40), max_size=40))
    breaks = st.sampled_from(["\r\n", "\n", "\r"])
    text = "".join(line + draw(breaks) for line in lines)
    if draw(st.booleans()):
        return text.encode("utf-8", "surrogatepass")
    return text


@FUZZ
@given(st.binary(max_size=4000))
@example(b"")
@example(b"\xef\xbb\xbf")
@example(b"BEGIN:VEVENT")
def test_arbitrary_bytes(data: bytes) -> None:
    check_contract(data)


@FUZZ
@given(st.text(max_size=2000))
@example("")
@example("\r")
@example("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\n")
def test_arbitrary_text(data: str) -> None:
    check_contract(data)


@FUZZ
@given(soups())
def test_line_soup(data: bytes | str) -> None:
    check_contract(data)


# == property 2: structured broken calendars ==================================================

BAD_DATES = ["20261301", "2026-02-30", "20260230", "99999999T999999", "", "20261301T100000",
             "20260101T250000Z", "00000000", "2026113", "T100000", "20261123TT100000"]
KNOWN_ZONES = ["Europe/London", "America/New_York", "Asia/Kolkata", "UTC"]
UNKNOWN_ZONES = ["Mars/Olympus_Mons", "Customized Time Zone 1", "(UTC+01:00) Nowhere",
                 "Europe/Londonx", "", "../../x", "UTC+99", "\u00e9t\u00e9"]
GOOD_RULES = ["FREQ=WEEKLY;COUNT=5", "FREQ=DAILY;UNTIL=20261231T000000Z", "FREQ=YEARLY",
              "FREQ=MONTHLY;BYMONTHDAY=1;COUNT=6", "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10"]
BAD_RULES = ["FREQ=SECONDLY", "FREQ=SECONDLY;INTERVAL=1", "FREQ=WEEKLY;COUNT=-1",
             "FREQ=DAILY;UNTIL=19900101T000000Z", "FREQ=WEEKLY;BYDAY=XX", "FREQ=MINUTELY",
             "FREQ=SOMETIMES", "FREQ=DAILY;INTERVAL=0", "FREQ=MONTHLY;BYMONTH=13",
             "FREQ=YEARLY;UNTIL=garbage", "FREQ=WEEKLY;COUNT=0", "", "COUNT=5",
             "FREQ=DAILY;COUNT=99999999999999999999", "FREQ=DAILY;BYHOUR=25",
             "FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=2", "FREQ=DAILY;;;", "FREQ=DAILY;WKST=XY",
             "FREQ=HOURLY;BYSETPOS=0", "FREQ=WEEKLY;UNTIL=20300101;COUNT=3"]
BAD_DATE_LISTS = ["garbage", "20261301", "2026", "20260101T000000Z/PT1H", "20260101T000000Z/",
                  ",,,", "20260105T100000Z,garbage", ""]
TEXTS = ["Acme review", "Caf\u00e9 with Jane \u2013 Globex", "M\u00fcller \u00e0 Z\u00fcrich",
         "Initech \u20ac budget", "Falcon \u201cweekly\u201d", "x", ""]


def _stamp(draw, *, with_time: bool) -> str:
    """A real date (now and then far outside the window), with a time of day or not."""
    if draw(st.integers(0, 9)) == 0:
        day = draw(st.dates(min_value=date(1800, 1, 1), max_value=date(2300, 12, 31)))
    else:
        day = draw(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)))
    if not with_time:
        return day.strftime("%Y%m%d")
    clock = draw(st.times()).strftime("%H%M%S")
    return f"{day.strftime('%Y%m%d')}T{clock}"


@st.composite
def date_props(draw, name: str, zones: list[str], *, broken: bool = False,
               unknown: bool = False) -> list[str]:
    """``name`` (DTSTART, DTEND, RDATE...) with a valid value, an unknown zone or a value
    that is no date."""
    if broken:
        value = draw(st.sampled_from(BAD_DATES))
        param = draw(st.sampled_from(["", ";VALUE=DATE", ";VALUE=DATE-TIME", ";TZID=",
                                      ";VALUE=PERIOD", ";TZID=Europe/London"]))
        return [f"{name}{param}:{value}"]
    if unknown:
        zone = draw(st.sampled_from(UNKNOWN_ZONES))
        zones.append(zone)
        quoted = f'"{zone}"' if draw(st.booleans()) else zone
        return [f"{name};TZID={quoted}:{_stamp(draw, with_time=True)}"]
    kind = draw(st.sampled_from(["utc", "date", "zone", "floating"]))
    if kind == "utc":
        return [f"{name}:{_stamp(draw, with_time=True)}Z"]
    if kind == "date":
        return [f"{name};VALUE=DATE:{_stamp(draw, with_time=False)}"]
    if kind == "floating":
        return [f"{name}:{_stamp(draw, with_time=True)}"]
    zone = draw(st.sampled_from(KNOWN_ZONES))
    zones.append(zone)
    return [f"{name};TZID={zone}:{_stamp(draw, with_time=True)}"]


@st.composite
def huge_lines(draw) -> str:
    size = draw(st.sampled_from([1_000, 20_000, 80_000, HUGE]))
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return "SUMMARY:" + "Acme " * (size // 5)
    if kind == 1:  # folded at 75 octets like a good exporter
        body = "DESCRIPTION:" + "x" * size
        return "\r\n ".join(body[i:i + 74] for i in range(0, len(body), 74))
    if kind == 2:
        return "X-" + "A" * size  # no colon at all
    if kind == 3:
        return "SUMMARY;X-P=" + "y" * size + ":short"
    return "ATTENDEE:" + ",".join(f"mailto:p{i}@x.example" for i in range(size // 20))


@st.composite
def nestings(draw) -> list[str]:
    depth = draw(st.integers(1, DEEP))
    name = draw(st.sampled_from(["X", "X-THING", "VALARM", "VEVENT"]))
    closed = draw(st.sampled_from(["closed", "open", "over-closed"]))
    lines = [f"BEGIN:{name}"] * depth
    if name == "VEVENT":  # nested events need something to read
        lines = [line for i in range(depth) for line in
                 (f"BEGIN:{name}", f"UID:deep-{i}", "DTSTART:20260101T100000Z")]
    if closed == "closed":
        lines += [f"END:{name}"] * depth
    elif closed == "over-closed":
        lines += [f"END:{name}"] * (depth + draw(st.integers(1, 5)))
    return lines


#: What can be wrong with one VEVENT (a few of them at once, or none).
FAULTS = ["bad start", "unknown zone", "no start", "no uid", "empty uid", "duplicate uid",
          "no end", "no begin", "lower-case begin", "bad end", "bad duration", "bad rule",
          "until before start", "bad rdate", "bad exdate", "bad recurrence-id", "huge line",
          "nesting", "swapped lines", "zone in end"]


@st.composite
def vevents(draw, index: int, zones: list[str]) -> list[str]:
    """One VEVENT's lines: a valid event with up to three faults."""
    faults = draw(st.sets(st.sampled_from(FAULTS), max_size=3))
    lines = []
    if "no begin" not in faults:
        lines.append("begin:vevent" if "lower-case begin" in faults else "BEGIN:VEVENT")
    tail = draw(st.sampled_from(["a", "caf\u00e9", "x y", "@acme.example"]))
    uid = f"ev{index}-{tail}"
    if "duplicate uid" in faults:
        uid = "dup"
    if "empty uid" in faults:
        uid = ""
    if "no uid" not in faults:
        lines.append(f"UID:{uid}")
    lines.append("DTSTAMP:20260101T000000Z")
    if "no start" not in faults:
        lines += draw(date_props("DTSTART", zones, broken="bad start" in faults,
                                 unknown="unknown zone" in faults))
    end = draw(st.sampled_from(["dtend", "duration", "none"]))
    if "bad end" in faults or "zone in end" in faults or end == "dtend":
        lines += draw(date_props("DTEND", zones, broken="bad end" in faults,
                                 unknown="zone in end" in faults))
    elif end == "duration":
        lines.append(f"DURATION:{draw(st.sampled_from(['PT1H', 'P1D', 'PT30M', 'P1W']))}")
    if "bad duration" in faults:
        lines.append(f"DURATION:{draw(st.sampled_from(['P-1D', 'xyz', 'PT', '']))}")
    rules = draw(st.lists(st.sampled_from(GOOD_RULES), max_size=1))
    if "bad rule" in faults:
        rules.append(draw(st.sampled_from(BAD_RULES)))
    if "until before start" in faults:
        rules.append(draw(st.sampled_from(GOOD_RULES)).split(";UNTIL")[0].split(";COUNT")[0]
                     + ";UNTIL=19891231T000000Z")
    lines += [f"RRULE:{rule}" for rule in rules]
    for name in ("RDATE", "EXDATE"):
        if draw(st.integers(0, 3)) == 0:
            lines += [line.replace("DTSTART", name, 1)
                      for line in draw(date_props("DTSTART", zones))]
        if f"bad {name.lower()}" in faults:
            lines.append(f"{name}:{draw(st.sampled_from(BAD_DATE_LISTS))}")
    if "bad recurrence-id" in faults:
        lines += draw(date_props("RECURRENCE-ID", zones, broken=draw(st.booleans())))
    lines.append(f"SUMMARY:{draw(st.sampled_from(TEXTS))}")
    if draw(st.booleans()):
        who = draw(st.sampled_from(["jane.doe@acme.example", "hank@globex.example", "x@y.z",
                                    "", "not an address"]))
        lines.append(f"ATTENDEE;PARTSTAT=ACCEPTED;CN=J\u00f6rg:mailto:{who}")
    if draw(st.integers(0, 5)) == 0:
        lines += ["BEGIN:VALARM", "ACTION:DISPLAY", "TRIGGER:-PT15M", "END:VALARM"]
    if "huge line" in faults:
        lines.append(draw(huge_lines()))
    if "nesting" in faults:
        lines += draw(nestings())
    if "no end" not in faults:
        lines.append("END:VEVENT")
    if "swapped lines" in faults and len(lines) > 1:
        i = draw(st.integers(0, len(lines) - 1))
        j = draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    return lines


def vtimezone(draw, tzid: str) -> list[str]:
    kind = draw(st.sampled_from(["good", "bad-offset", "unclosed-part", "no-part",
                                 "bad-rule"]))
    if kind == "no-part":
        return ["BEGIN:VTIMEZONE", f"TZID:{tzid}", "END:VTIMEZONE"]
    offset = {"good": "+0100", "bad-offset": draw(st.sampled_from(["+2500", "abc", "", "+01"]))
              }.get(kind, "+0100")
    rule = (["RRULE:FREQ=SECONDLY"] if kind == "bad-rule"
            else ["RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU"])
    part = ["BEGIN:STANDARD", "DTSTART:16010101T030000", f"TZOFFSETFROM:{offset}",
            f"TZOFFSETTO:{offset}", *rule]
    if kind != "unclosed-part":
        part.append("END:STANDARD")
    return ["BEGIN:VTIMEZONE", f"TZID:{tzid}", *part, "END:VTIMEZONE"]


@st.composite
def calendar_lines(draw) -> list[str]:
    zones: list[str] = []
    events = [draw(vevents(i, zones)) for i in range(draw(st.integers(1, 5)))]
    head = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//clientlove//fuzz//EN"]
    if draw(st.integers(0, 4)) == 0:
        head.append(f"X-WR-TIMEZONE:{draw(st.sampled_from(KNOWN_ZONES + UNKNOWN_ZONES))}")
    for zone in sorted(set(zones)):
        if draw(st.booleans()):
            head += vtimezone(draw, zone)
    if draw(st.integers(0, 9)) == 0:
        head += draw(nestings())
    body = [line for event in events for line in event]
    tail = ["END:VCALENDAR"] if draw(st.integers(0, 9)) > 0 else []
    return head + body + tail


def _fold_oddly(draw, text: str) -> str:
    """Folds (a line break and a space or tab) in odd places: inside names, values,
    multi-byte characters' neighbours, right after a line break."""
    for _ in range(draw(st.integers(1, 5))):
        if not text:
            break
        at = draw(st.integers(0, len(text)))
        fold = draw(st.sampled_from(["\r\n ", "\r\n\t", "\n ", "\r\n\r\n ", "\r ", "\r\n  "]))
        text = text[:at] + fold + text[at:]
    return text


def _encode(draw, text: str) -> bytes:
    kind = draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "cp1252", "flips", "bom",
                                 "cut"]))
    if kind in ("latin-1", "cp1252"):
        return text.encode(kind, "replace")
    data = text.encode("utf-8", "surrogatepass")
    if kind == "bom":
        return b"\xef\xbb\xbf" + data
    if kind == "cut":  # a multi-byte sequence cut at the end, and cp1252's undefined bytes
        return data + b"\x81\x8d\x8f\x90\x9d" + "\u00e9".encode()[:1]
    flipped = bytearray(data)
    for _ in range(draw(st.integers(1, 10))):
        if not flipped:
            break
        at = draw(st.integers(0, len(flipped) - 1))
        flipped[at] = draw(st.integers(0, 255))
    return bytes(flipped)


@st.composite
def broken_calendars(draw) -> bytes:
    """A VCALENDAR of 1-5 VEVENTs built from valid and broken parts, as bytes."""
    lines = draw(calendar_lines())
    kind = draw(st.sampled_from(["crlf", "crlf", "lf", "cr", "mixed"]))
    if kind == "mixed":
        breaks = st.sampled_from(["\r\n", "\n", "\r", "\r\r\n", "\n\n"])
        text = "".join(line + draw(breaks) for line in lines)
    else:
        text = "".join(line + "\r\n" for line in lines)
        if kind != "crlf":
            text = text.replace("\r\n", {"lf": "\n", "cr": "\r"}[kind])
    if draw(st.integers(0, 3)) == 0:
        text = _fold_oddly(draw, text)
    return _encode(draw, text)


@FUZZ_STRUCTURED
@given(broken_calendars())
def test_broken_calendars(data: bytes) -> None:
    check_contract(data)


# == property 3: the stream reads what the whole read reads ===================================

_TEMPLATES = templates()


@st.composite
def mutated_templates(draw) -> bytes:
    """A valid example calendar broken by the scenario mutators and by line edits."""
    text: str | bytes = draw(st.sampled_from(_TEMPLATES))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), max_size=2)):
        if isinstance(text, bytes):
            break
        text = mutation.apply(rng, text, 0.02)
    if isinstance(text, str):
        lines = text.split("\n")
        for _ in range(draw(st.integers(0, 3))):
            at = draw(st.integers(0, len(lines)))
            edit = draw(st.sampled_from(["delete", "duplicate", "insert"]))
            if edit == "insert":
                lines.insert(at, draw(st.sampled_from(SOUP_LINES)) + "\r")
            elif lines and at < len(lines):
                if edit == "delete":
                    del lines[at]
                else:
                    lines.insert(at, lines[at])
        text = "\n".join(lines).encode("utf-8", "surrogatepass")
    return text


@FUZZ_STRUCTURED
@given(broken_calendars() | mutated_templates(), st.integers(1, 4096),
       st.sampled_from([(), NEEDLES]))
def test_stream_equals_whole(data: bytes, chunk_size: int, needles: tuple[str, ...]) -> None:
    check_same(data, chunk_size, needles)


@FUZZ
@given(st.binary(max_size=2000) | soups().map(lambda s: s if isinstance(s, bytes) else s.encode(
    "utf-8", "surrogatepass")), st.integers(1, 64))
def test_stream_equals_whole_anything(data: bytes, chunk_size: int) -> None:
    check_same(data, chunk_size, NEEDLES)


@pytest.mark.parametrize("index", range(len(_TEMPLATES)))
@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
def test_stream_equals_whole_templates(index: int, chunk_size: int) -> None:
    data = _TEMPLATES[index].encode("utf-8", "surrogatepass")
    check_same(data, chunk_size, ())
    check_same(data, chunk_size, NEEDLES)


@pytest.mark.parametrize("data", [b"\xef", b"\xef\xbb"])
def test_stream_bom_prefix(data: bytes) -> None:
    """Found by test_stream_equals_whole_anything: a file that is only a cut UTF-8 BOM was
    "empty" when streamed (the incremental utf-8-sig decoder kept the bytes back) but "not a
    calendar, starts with 'ï'" when read whole."""
    whole, whole_warnings = _read(data, "whole", prefilter=True)
    streamed, stream_warnings = _read_stream(data, "stream", chunk_size=1)
    assert (streamed, stream_warnings) == (whole, whole_warnings)
