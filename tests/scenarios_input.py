"""Bad input scenarios: broken calendars, broken configs, the real-world corpus, a huge file.

Each function returns a :class:`ScenarioResult` whose ``inputs`` counts the inputs tried and
whose ``violations`` must stay empty:

- ``run_broken_icalendar``: calendars broken on purpose by a deterministic mutator (bad dates,
  unknown zones, huge lines, missing lines, deep nesting, bytes that are no UTF-8, cut-off
  files, mixed line endings, broken rules, orphan overrides, duplicate UIDs, 10,000 EXDATEs)
  read on both paths within a time limit; every few inputs the whole CLI runs on it too.
- ``run_broken_configs``: configs broken at every path, by syntax and by encoding, checked
  through ``clientlove check-config``.
- ``run_corpus``: every file of ``../shared/corpus/ics`` on both paths.
- ``run_big_file``: a realistic file of N MB read by ``IcsSource`` in a child process whose
  peak RSS must stay under ``size + 100 MB``.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from click.testing import CliRunner
from icalendar.timezone import tzp

from daemon.cli import cli
from daemon.config import EX_CONFIG, ConfigError, load_config
from daemon.icsread import read_calendar
from daemon.model import Event, ReadScope
from tests.invariants import ScenarioResult

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
CORPUS = ROOT.parent / "shared" / "corpus" / "ics"
SOURCE = "fuzz"
TZ = ZoneInfo("Europe/London")
#: A window wide enough that every sane date of the templates falls inside it.
WIDE_START = datetime(1990, 1, 1, tzinfo=UTC)
WIDE_END = datetime(2100, 1, 1, tzinfo=UTC)
NEEDLES = ("acme.example", "jane.doe@acme.example", "globex.example", "initech", "falcon")
#: Seconds one read may take, plus this many per MB of input (100,000 attendees are 5 MB):
#: far above what a bounded read needs (a capped series of 20,000 occurrences in a custom
#: VTIMEZONE takes 5 s), far below a hang.
TIME_LIMIT = 15.0
TIME_PER_MB = 2.0
#: Run the whole CLI on every this many-th input.
CLI_EVERY = 20
NOW = "2026-11-23T08:00"
ME = "consultant@myfirm.example"


# == helpers ==================================================================================


class _Timeout(BaseException):
    """Raised in the main thread when a read overruns (a BaseException, so no ``except
    Exception`` in the code under test can swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (main thread only; elsewhere nothing happens and
    the caller compares the elapsed time)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):  # the signal handler's signature
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _limit_for(size: int) -> float:
    return TIME_LIMIT + TIME_PER_MB * size / 1e6


def _decode(data: bytes | str) -> str:
    """The text as the reader sees it (UTF-8, else cp1252, else latin-1)."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            pass
    return data.decode("latin-1")


_FOLD = re.compile(r"\r?\n(?:\r?\n)*[ \t]")
_LINE_NAME = re.compile(r"([A-Za-z0-9-]+)(?:;[^:\r\n]*)?:(.*)")


@dataclass
class RawEvent:
    """A VEVENT found by a scan independent of the reader: its UID and what the prefilter
    looks at."""

    uid: str | None
    start_digits: str | None
    recurs: bool


def raw_events(data: bytes | str) -> list[RawEvent]:
    """Every VEVENT of the text as a plain line scanner sees it (any depth; a lone CR ends a
    line too, as the reader takes it)."""
    text = _FOLD.sub("", re.sub(r"\r(?!\n)", "\n", _decode(data)))
    stack: list[RawEvent | None] = []
    found: list[RawEvent] = []
    for line in text.split("\n"):
        line = line.rstrip("\r")
        upper = line.upper()
        if upper.startswith("BEGIN:"):
            event = RawEvent(None, None, False) if upper[6:] == "VEVENT" else None
            stack.append(event)
            if event is not None:
                found.append(event)
            continue
        if upper.startswith("END:"):
            if stack:
                stack.pop()
            continue
        current = stack[-1] if stack else None
        if current is None:
            continue
        match = _LINE_NAME.match(line)
        if match is None:
            continue
        name = match.group(1).upper()
        if name == "UID" and current.uid is None:
            current.uid = match.group(2).strip()
        elif name == "DTSTART" and current.start_digits is None:
            digits = re.match(r"\d{8}", match.group(2))
            current.start_digits = digits.group(0) if digits else ""
        elif name in ("RRULE", "RDATE"):
            current.recurs = True
    return found


def _scope(*, prefilter: bool, needles: tuple[str, ...] = (), tz: tzinfo = TZ) -> ReadScope:
    return ReadScope(start=WIDE_START, end=WIDE_END, tz=tz, needles=needles, prefilter=prefilter)


def check_events(events: object, scope: ReadScope, label: str) -> list[str]:
    """Violations of the reader's output contract: a list of ``Event`` from our source with
    dates or aware datetimes that start inside the window, and warnings naming the source."""
    if not isinstance(events, list):
        return [f"{label}: returned {type(events).__name__}, not a list"]
    problems: list[str] = []
    for event in events:
        if not isinstance(event, Event):
            problems.append(f"{label}: returned a {type(event).__name__}, not an Event")
            continue
        start = event.start
        if isinstance(start, datetime):
            if start.tzinfo is None or start.utcoffset() is None:
                problems.append(f"{label}: event {event.uid!r} starts at a naive {start}")
                continue
            instant = start
        elif isinstance(start, date):
            instant = datetime.combine(start, datetime.min.time(), tzinfo=TZ)
        else:
            problems.append(f"{label}: event {event.uid!r} has start {start!r}")
            continue
        if not scope.start <= instant < scope.end:
            problems.append(f"{label}: event {event.uid!r} at {start} is outside the window")
        if event.source != SOURCE or not isinstance(event.uid, str) or not event.uid:
            problems.append(f"{label}: event with source {event.source!r} uid {event.uid!r}")
        if not isinstance(event.summary, str) or not isinstance(event.attendees, tuple):
            problems.append(f"{label}: event {event.uid!r} has mistyped fields")
    for warning in scope.warnings:
        if not isinstance(warning, str) or not warning.startswith(f"{SOURCE}: "):
            problems.append(f"{label}: warning not naming the source: {str(warning)[:120]!r}")
        elif "Traceback" in warning:
            problems.append(f"{label}: a traceback in a warning")
    return problems


def check_dropped(
    raw: list[RawEvent], events: list[Event], warnings: list[str], label: str, *, fast: bool
) -> list[str]:
    """Every event of the input is read, or a warning names the source and its UID.

    An event that does not recur and whose DTSTART digits lie outside the window may be
    left out silently: valid, it has no occurrence there; broken, the fast path leaves it
    unread (that is the prefilter's job) and the full path warns (checked when ``fast`` is
    false). A broken event without a UID needs a warning naming the source.
    """
    read_uids = {event.uid.strip() for event in events}
    problems: list[str] = []
    low, high = "19891230", "21000103"
    exempt = {
        item.uid for item in raw
        if item.uid and not item.recurs and item.start_digits is not None
        and len(item.start_digits) == 8 and not low <= item.start_digits <= high
    }
    if not fast:  # a date that is no date must be warned about on the full path
        exempt = {uid for uid in exempt if _valid_digits(uid, raw)}
    mine = [w for w in warnings if w.startswith(f"{SOURCE}: ")]
    for item in raw:
        if item.uid:
            if item.uid in read_uids or item.uid in exempt:
                continue
            if not any(item.uid in w for w in mine):
                problems.append(f"{label}: event {item.uid!r} dropped without a warning naming it")
        elif not mine and not events:
            problems.append(f"{label}: an event without UID dropped without any warning")
    return problems


def _valid_digits(uid: str, raw: list[RawEvent]) -> bool:
    """Whether every DTSTART of the UID's events starts with a real calendar date."""
    for item in raw:
        if item.uid == uid:
            try:
                datetime.strptime(item.start_digits or "", "%Y%m%d")
            except ValueError:
                return False
    return True


def _short(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"


# == broken iCalendar =========================================================================

CRLF = "\r\n"


def _cal(*blocks: str, header: str = "") -> str:
    return (f"BEGIN:VCALENDAR{CRLF}VERSION:2.0{CRLF}PRODID:-//clientlove//fuzz//EN{CRLF}"
            f"{header}{''.join(blocks)}END:VCALENDAR{CRLF}")


def _event(uid: str, *lines: str) -> str:
    return CRLF.join(["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *lines,
                      "END:VEVENT"]) + CRLF


_LONDON_ZONE = CRLF.join([
    "BEGIN:VTIMEZONE", "TZID:Europe/London", "BEGIN:DAYLIGHT", "TZOFFSETFROM:+0000",
    "TZOFFSETTO:+0100", "TZNAME:BST", "DTSTART:19700329T010000",
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "END:DAYLIGHT", "BEGIN:STANDARD",
    "TZOFFSETFROM:+0100", "TZOFFSETTO:+0000", "TZNAME:GMT", "DTSTART:19701025T020000",
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", "END:STANDARD", "END:VTIMEZONE",
]) + CRLF

BUILT_IN = [
    _cal(
        _event("t1-timed", "DTSTART;TZID=Europe/London:20261102T100000",
               "DTEND;TZID=Europe/London:20261102T110000", "SUMMARY:Acme review",
               "ATTENDEE;PARTSTAT=ACCEPTED;CN=Jane:mailto:jane.doe@acme.example",
               "ORGANIZER:mailto:consultant@myfirm.example"),
        _event("t1-allday", "DTSTART;VALUE=DATE:20261110", "DTEND;VALUE=DATE:20261111",
               "SUMMARY:Globex offsite", "CATEGORIES:work,#need"),
        _event("t1-utc", "DTSTART:20261115T090000Z", "DURATION:PT30M", "SUMMARY:Initech call",
               "DESCRIPTION:Notes\\nline two\\, with comma", "STATUS:CONFIRMED"),
        header=_LONDON_ZONE,
    ),
    _cal(
        _event("t2-series", "DTSTART;TZID=Europe/London:20260105T093000",
               "DTEND;TZID=Europe/London:20260105T100000", "RRULE:FREQ=WEEKLY;COUNT=20",
               "EXDATE;TZID=Europe/London:20260112T093000", "SUMMARY:Falcon weekly",
               "ATTENDEE;PARTSTAT=ACCEPTED:mailto:hank@globex.example"),
        _event("t2-series", "RECURRENCE-ID;TZID=Europe/London:20260119T093000",
               "DTSTART;TZID=Europe/London:20260120T140000",
               "DTEND;TZID=Europe/London:20260120T143000", "SUMMARY:Falcon weekly (moved)"),
        _event("t2-birthday", "DTSTART;VALUE=DATE:20000517", "RRULE:FREQ=YEARLY",
               "SUMMARY:Jane's birthday"),
        header=_LONDON_ZONE,
    ),
    _cal(
        _event("t3-outlook", "DTSTART;TZID=\"W. Europe Standard Time\":20260301T083000",
               "DTEND;TZID=\"W. Europe Standard Time\":20260301T093000",
               "SUMMARY;LANGUAGE=de:Initech Workshop", "RRULE:FREQ=MONTHLY;BYMONTHDAY=1;COUNT=6",
               "BEGIN:VALARM", "ACTION:DISPLAY", "TRIGGER:-PT15M", "DESCRIPTION:Reminder",
               "END:VALARM"),
        header=CRLF.join([
            "BEGIN:VTIMEZONE", "TZID:W. Europe Standard Time", "BEGIN:STANDARD",
            "DTSTART:16010101T030000", "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100",
            "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10", "END:STANDARD",
            "BEGIN:DAYLIGHT", "DTSTART:16010101T020000", "TZOFFSETFROM:+0100",
            "TZOFFSETTO:+0200", "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3",
            "END:DAYLIGHT", "END:VTIMEZONE",
        ]) + CRLF,
    ),
    _cal(
        _event("t4-google", "DTSTART:20260610T130000Z", "DTEND:20260610T140000Z",
               "SUMMARY:Lunch with Jane",
               "ATTENDEE;PARTSTAT=DECLINED:mailto:jane.doe@acme.example"),
        _event("t4-floating", "DTSTART:20260611T090000", "SUMMARY:Floating Falcon"),
        header="X-WR-TIMEZONE:Europe/Berlin\r\nX-WR-CALNAME:Work\r\n",
    ),
]


def templates() -> list[str]:
    """Valid calendars to break: the built-in ones and the export fixtures of tests/data."""
    found = list(BUILT_IN)
    for path in sorted(DATA.glob("*.ics")):
        found.append(_decode(path.read_bytes()))
    return found


def _lines(text: str) -> list[str]:
    return text.split("\n")


def _pick_line(rng: random.Random, lines: list[str], *names: str) -> int | None:
    wanted = tuple(name.upper() for name in names)
    indexes = [i for i, line in enumerate(lines) if line.upper().startswith(wanted)]
    return rng.choice(indexes) if indexes else None


def _event_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"BEGIN:VEVENT\r?\n.*?END:VEVENT\r?\n", text, re.S)]


def _insert_in_event(rng: random.Random, text: str, addition: str) -> str:
    """Put ``addition`` (lines with their line breaks) after the first line of an event."""
    spans = _event_spans(text)
    if not spans:
        return text.replace("END:VCALENDAR", addition + "END:VCALENDAR", 1)
    start, _ = rng.choice(spans)
    cut = text.index("\n", start) + 1
    return text[:cut] + addition + text[cut:]


BAD_DATES = ["20261399", "2026-11-23", "99999999T999999", "20260230T100000", "2026113",
             "", "T100000", "20260101T250000Z", "00000000", "20261123T100000+0100",
             "20261123T1000", "2026112３", "-20261123", "20261123TT100000", "19700101T000000Z"]


def m_bad_date(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    index = _pick_line(rng, lines, "DTSTART", "DTEND", "EXDATE", "RECURRENCE-ID", "RDATE")
    if index is None:
        return text
    head, _, _ = lines[index].partition(":")
    if rng.random() < 0.3:
        head = head.split(";")[0] + rng.choice([";VALUE=DATE", ";VALUE=DATE-TIME", ";VALUE=PERIOD",
                                                ";TZID=", ";VALUE=XX"])
    lines[index] = f"{head}:{rng.choice(BAD_DATES)}\r"
    return "\n".join(lines)


def m_unknown_zone(rng: random.Random, text: str) -> str:
    name = rng.choice(["Mars/Olympus_Mons", "Customized Time Zone 1", "(UTC+01:00) Nowhere",
                       "Europe/Londonx", "", "/etc/passwd", "../../x", "UTC+99", "\u00e9t\u00e9"])
    quoted = f'"{name}"' if rng.random() < 0.5 else name
    text2 = re.sub(r"TZID=(\"[^\"]*\"|[^;:\r\n]*)", lambda m: "TZID=" + quoted, text)
    if text2 == text:
        text2 = re.sub(r"\nDTSTART:(\d{8}T\d{6})", rf"\nDTSTART;TZID={quoted}:\1", text, count=1)
    if rng.random() < 0.5:  # and a VTIMEZONE for it, good or broken
        offset = rng.choice(["+0100", "+2500", "abc", "", "+01"])
        zone = CRLF.join([
            "BEGIN:VTIMEZONE", f"TZID:{name}", "BEGIN:STANDARD", "DTSTART:16010101T000000",
            f"TZOFFSETFROM:{offset}", f"TZOFFSETTO:{offset}", "END:STANDARD",
            "END:VTIMEZONE"]) + CRLF
        text2 = text2.replace("BEGIN:VEVENT", zone + "BEGIN:VEVENT", 1)
    return text2


def m_huge_line(rng: random.Random, text: str, scale: float) -> str:
    size = max(1000, int(1_000_000 * scale))
    kind = rng.randrange(4)
    if kind == 0:
        line = "SUMMARY:" + "Acme " * (size // 5)
    elif kind == 1:  # folded at 75 octets like a good exporter
        body = "DESCRIPTION:" + "x" * size
        line = "\r\n ".join(body[i:i + 74] for i in range(0, len(body), 74))
    elif kind == 2:
        line = "X-" + "A" * size  # no colon at all
    else:
        line = "SUMMARY;X-P=" + "y" * size + ":short"
    return _insert_in_event(rng, text, line + CRLF)


def m_many_attendees(rng: random.Random, text: str, scale: float) -> str:
    count = max(100, int(100_000 * scale))
    if rng.random() < 0.5:
        block = "".join(f"ATTENDEE;CN=P{i};PARTSTAT=ACCEPTED:mailto:p{i}@acme.example\r\n"
                        for i in range(count))
    else:  # one ATTENDEE line 100k long (a mangled list of addresses)
        block = "ATTENDEE:" + ",".join(f"mailto:p{i}@x.example" for i in range(count // 20)) + CRLF
    return _insert_in_event(rng, text, block)


def m_drop_line(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    index = _pick_line(rng, lines, *rng.choice([("DTSTART",), ("UID",), ("END:VEVENT",),
                                                ("BEGIN:VEVENT",), ("END:VCALENDAR",),
                                                ("BEGIN:VCALENDAR",), ("END:VTIMEZONE",),
                                                ("END:STANDARD", "END:DAYLIGHT")]))
    if index is not None:
        del lines[index]
    return "\n".join(lines)


def m_deep_nesting(rng: random.Random, text: str, scale: float) -> str:
    depth = max(50, int(5000 * scale))
    kind = rng.randrange(4)
    if kind == 0:  # VEVENTs inside VEVENTs, balanced
        inner = "".join(f"BEGIN:VEVENT\r\nUID:deep-{i}\r\nDTSTART:20260101T100000Z\r\n"
                        for i in range(depth)) + "END:VEVENT\r\n" * depth
    elif kind == 1:  # VALARMs inside an event
        inner = ("BEGIN:VEVENT\r\nUID:alarms\r\nDTSTART:20260101T100000Z\r\n"
                 + "BEGIN:VALARM\r\nTRIGGER:-PT5M\r\n" * depth + "END:VALARM\r\n" * depth
                 + "END:VEVENT\r\n")
    elif kind == 2:  # never closed
        inner = "BEGIN:VEVENT\r\nUID:open\r\n" + "BEGIN:X-THING\r\n" * depth
    else:  # closed too often
        inner = "END:VEVENT\r\n" * depth
    spans = _event_spans(text)
    cut = rng.choice(spans)[1] if spans else text.find("END:VCALENDAR")
    cut = max(cut, 0)
    return text[:cut] + inner + text[cut:]


def m_truncate(rng: random.Random, text: str) -> str:
    return text[: rng.randrange(len(text) + 1)]


def m_line_endings(rng: random.Random, text: str) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return text.replace("\r\n", "\n")
    if kind == 1:
        return text.replace("\r\n", "\r")
    if kind == 2:  # a random mix
        return "".join(part + rng.choice(["\r\n", "\n", "\r", "\r\r\n", "\n\n"])
                       for part in text.split("\r\n"))
    if kind == 3:  # blank lines before folds, folds everywhere
        return text.replace(":", "\r\n\r\n :", 3).replace("A", "\r\n\tA", 5)
    return text.replace("\r\n", "\r\n \r\n", rng.randint(1, 5))


RRULES = ["FREQ=SOMETIMES", "FREQ=WEEKLY;COUNT=-1", "FREQ=DAILY;UNTIL=19990101T000000Z",
          "FREQ=WEEKLY;BYDAY=XX", "FREQ=MINUTELY", "FREQ=SECONDLY;INTERVAL=1",
          "FREQ=DAILY;INTERVAL=0", "FREQ=MONTHLY;BYMONTH=13", "FREQ=YEARLY;UNTIL=garbage",
          "FREQ=WEEKLY;COUNT=0", "", "COUNT=5", "FREQ=DAILY;COUNT=99999999999999999999",
          "FREQ=HOURLY;BYSETPOS=0", "FREQ=WEEKLY;UNTIL=20300101;COUNT=3",
          "FREQ=DAILY;BYHOUR=25", "FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=2",
          "FREQ=YEARLY;BYWEEKNO=54", "FREQ=DAILY;WKST=XY", "FREQ=DAILY;;;"]


def m_rrule(rng: random.Random, text: str) -> str:
    rule = "RRULE:" + rng.choice(RRULES) + CRLF
    lines = _lines(text)
    index = _pick_line(rng, lines, "RRULE")
    if index is not None and rng.random() < 0.6:
        lines[index] = rule.rstrip("\n")
        return "\n".join(lines)
    if rng.random() < 0.3:
        bad = rng.choice(["garbage", "20260101T000000Z/PT1H", "2026", "20261301"])
        rule += f"RDATE:{bad}{CRLF}"
    return _insert_in_event(rng, text, rule)


def m_orphan_override(rng: random.Random, text: str) -> str:
    spans = _event_spans(text)
    masters = [s for s in spans if "RRULE" in text[s[0]:s[1]]]
    if masters and rng.random() < 0.6:
        start, end = rng.choice(masters)
        return text[:start] + text[end:]
    return _insert_in_event(rng, text, "RECURRENCE-ID:20260105T093000Z\r\n")


def m_duplicate_uid(rng: random.Random, text: str) -> str:
    spans = _event_spans(text)
    if not spans:
        return text
    start, end = rng.choice(spans)
    block = text[start:end]
    if rng.random() < 0.5:  # the same event twice, the copy a day later
        copy_block = re.sub(r"(DTSTART[^:\r\n]*:\d{6})(\d{2})",
                            lambda m: m.group(1) + f"{(int(m.group(2)) % 27) + 1:02d}", block)
    else:  # another event with the same UID
        uid = re.search(r"\nUID:([^\r\n]*)", block)
        copy_block = _event(uid.group(1) if uid else "dup", "DTSTART;VALUE=DATE:20260303",
                            "SUMMARY:Same UID, other event")
    return text[:end] + copy_block + text[end:]


def m_many_exdates(rng: random.Random, text: str, scale: float) -> str:
    count = max(100, int(10_000 * scale))
    day = date(2026, 1, 1)
    stamps = [(day + timedelta(days=i)).strftime("%Y%m%dT070000Z") for i in range(count)]
    if rng.random() < 0.5:
        block = "".join(f"EXDATE:{s}\r\n" for s in stamps)
    else:
        block = "EXDATE:" + ",".join(stamps) + CRLF
    return _insert_in_event(rng, text, "RRULE:FREQ=DAILY;COUNT=50\r\n" + block)


JUNK = ["DTSTART;VALUE=DATE:20261123T100000", "DURATION:P-1D", "DURATION:xyz", "DURATION:PT",
        "DTEND:20000101T000000Z", "DTSTART;TZID=:20261123T100000", 'ATTENDEE;CN="unclosed:mailto:x',
        "X-;:", ":", "BEGIN:", "END:", "GEO:abc", "SEQUENCE:abc", "STATUS:", "UID:",
        "DTSTART:20261123T100000Z", "DTSTART;VALUE=DATE:20261124", "RECURRENCE-ID:garbage",
        "ORGANIZER:", "ATTENDEE;PARTSTAT=:", "CATEGORIES:,,,", "SUMMARY;LANGUAGE=:",
        "DTEND;VALUE=DATE:20261123", "X-CLIENTLOVE-KEY:acme.1", "DESCRIPTION:\\", "A" * 80,
        "BEGIN:VALARM", "END:VALARM", "ATTENDEE:mailto:", "DTSTART:\x00", "SUMMARY:\u202e\ufeff",
        "RRULE:FREQ=DAILY\r\nRRULE:FREQ=WEEKLY", "EXDATE;VALUE=DATE:2026", "TZID:x",
        "BEGIN:VCALENDAR", "END:VCALENDAR", "BEGIN:VTIMEZONE", "X-WR-TIMEZONE:Nowhere/Else"]


def m_junk_line(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    for _ in range(rng.randint(1, 4)):
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(JUNK) + "\r")
    return "\n".join(lines)


def m_shuffle_lines(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    for _ in range(rng.randint(1, 6)):
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        if rng.random() < 0.5:
            lines[i], lines[j] = lines[j], lines[i]
        else:
            lines.insert(i, lines[j])
    return "\n".join(lines)


def m_noise(rng: random.Random, text: str) -> str:
    chars = list(text)
    pool = "\x00\x01\x7f:;,=\"\\ \t\u00e9\u2028\u0085\ufeff\U0001f600\u0130\u0131"
    for _ in range(rng.randint(1, 30)):
        if not chars:
            break
        chars[rng.randrange(len(chars))] = rng.choice(pool)
    return "".join(chars)


def m_case(rng: random.Random, text: str) -> str:
    if rng.random() < 0.5:
        return text.lower()
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)


def m_indent(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    for _ in range(rng.randint(1, 5)):
        i = rng.randrange(len(lines))
        lines[i] = rng.choice([" ", "\t", "  "]) + lines[i]
    return "\n".join(lines)


def b_encoding(rng: random.Random, text: str) -> bytes:
    """Bytes that are not (only) UTF-8."""
    kind = rng.randrange(7)
    if kind == 0:  # latin-1 with accents
        return text.replace("e", "\u00e9", 5).encode("latin-1", "replace")
    if kind == 1:  # random bytes somewhere
        data = bytearray(text.encode())
        for _ in range(rng.randint(1, 20)):
            data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
        return bytes(data)
    if kind == 2:  # a BOM in the middle, and one at the start
        data = text.encode()
        cut = rng.randrange(len(data) + 1)
        return b"\xef\xbb\xbf" + data[:cut] + b"\xef\xbb\xbf" + data[cut:]
    if kind == 3:  # NULs
        return text.replace("\r\n", "\x00\r\n", rng.randint(1, 10)).encode()
    if kind == 4:  # UTF-16
        return text.encode(rng.choice(["utf-16", "utf-16-le", "utf-32"]))
    if kind == 5:  # cp1252's undefined bytes and a cut multi-byte sequence
        return text.encode() + b"\x81\x8d\x8f\x90\x9d" + "\u00e9".encode()[:1]
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 2000)))


@dataclass(frozen=True)
class Mutation:
    name: str
    apply: Callable[[random.Random, str, float], str | bytes]
    weight: float


def _plain(function: Callable[[random.Random, str], str | bytes]):
    return lambda rng, text, scale: function(rng, text)


MUTATIONS = [
    Mutation("bad date", _plain(m_bad_date), 3),
    Mutation("unknown zone", _plain(m_unknown_zone), 2),
    Mutation("huge line", m_huge_line, 0.15),
    Mutation("many attendees", m_many_attendees, 0.08),
    Mutation("missing line", _plain(m_drop_line), 3),
    Mutation("deep nesting", m_deep_nesting, 0.3),
    Mutation("truncated", _plain(m_truncate), 2),
    Mutation("line endings", _plain(m_line_endings), 1.5),
    Mutation("rrule garbage", _plain(m_rrule), 2.5),
    Mutation("orphan override", _plain(m_orphan_override), 1),
    Mutation("duplicate uid", _plain(m_duplicate_uid), 1),
    Mutation("many exdates", m_many_exdates, 0.2),
    Mutation("junk lines", _plain(m_junk_line), 3),
    Mutation("shuffled lines", _plain(m_shuffle_lines), 2),
    Mutation("noise", _plain(m_noise), 1.5),
    Mutation("case", _plain(m_case), 0.5),
    Mutation("indent", _plain(m_indent), 0.7),
    Mutation("encoding", _plain(b_encoding), 1.5),
]


def broken_inputs(examples: int, seed: int = 0, scale: float = 1.0
                  ) -> Iterator[tuple[str, bytes | str]]:
    """``examples`` broken calendars as (description, data); the first ones use each
    mutation once, so every kind is tried even in a short run."""
    rng = random.Random(seed)
    bases = templates()
    weights = [m.weight for m in MUTATIONS]
    for index in range(examples):
        base_index = rng.randrange(len(bases))
        data: str | bytes = bases[base_index]
        chosen = ([MUTATIONS[index]] if index < len(MUTATIONS)
                  else rng.choices(MUTATIONS, weights, k=rng.choice((1, 1, 2, 3))))
        # bytes-level mutations go last: the others work on text
        chosen = sorted(chosen, key=lambda m: m.apply is MUTATIONS[-1].apply)
        names = []
        for mutation in chosen:
            if isinstance(data, bytes):
                break
            data = mutation.apply(rng, data, scale)
            names.append(mutation.name)
        if isinstance(data, str) and rng.random() < 0.8:
            data = data.encode("utf-8", "surrogatepass")
        yield f"input {index} (template {base_index}: {', '.join(names)})", data


def read_checked(data: bytes | str, label: str, *, prefilter: bool,
                 needles: tuple[str, ...] = (), limit: float | None = None
                 ) -> tuple[list[Event] | None, list[str], list[str]]:
    """One read under a time limit: (events or None, warnings, violations)."""
    scope = _scope(prefilter=prefilter, needles=needles)
    limit = limit if limit is not None else _limit_for(len(data))
    began = time.monotonic()
    try:
        with time_limit(limit):
            events = read_calendar(data, SOURCE, scope)
    except _Timeout:
        return None, scope.warnings, [f"{label}: took over {limit:.0f} s"]
    except Exception as error:
        return None, scope.warnings, [f"{label}: raised {_short(error)}"]
    elapsed = time.monotonic() - began
    problems = check_events(events, scope, label)
    if elapsed > limit:
        problems.append(f"{label}: took {elapsed:.1f} s")
    return events, scope.warnings, problems


def check_input(data: bytes | str, label: str) -> list[str]:
    """All checks of one broken calendar: three reads (full, fast by date, fast by needles)."""
    tzp.use_default()  # icalendar's zone cache is process-wide; start each input afresh
    raw = raw_events(data)
    problems: list[str] = []
    for mode, prefilter, needles in (("full", False, ()), ("fast", True, ()),
                                     ("needles", True, NEEDLES)):
        events, warnings, found = read_checked(data, f"{label} [{mode}]", prefilter=prefilter,
                                               needles=needles)
        problems += found
        if events is not None and not found and mode != "needles":
            problems += check_dropped(raw, events, warnings, f"{label} [{mode}]",
                                      fast=prefilter)
    return problems


def _cli_config(folder: Path, source: str = "history.ics") -> Path:
    config = {
        "timezone": "Europe/London",
        "me": [ME],
        "state_path": "state.sqlite",
        "sources": [{"type": "ics", "path": source}],
        "target": {"type": "ics", "path": "reminders.ics"},
        "clients": [
            {"name": "Acme Corp", "emails": ["jane.doe@acme.example"],
             "domains": ["acme.example"]},
            {"name": "Globex", "emails": ["hank@globex.example"], "keywords": ["Falcon"]},
            {"name": "Initech", "domains": ["initech.example"]},
        ],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def check_cli(data: bytes | str, label: str, folder: Path) -> list[str]:
    """``clientlove status --json`` with the input as the only source: exit 0 or 1, JSON on
    stdout, no traceback anywhere."""
    tzp.use_default()
    folder.mkdir(parents=True, exist_ok=True)
    config = _cli_config(folder)
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    (folder / "history.ics").write_bytes(raw)
    limit = 4 * _limit_for(len(raw))
    try:
        with time_limit(limit):
            result = CliRunner().invoke(
                cli, ["--config", str(config), "--now", NOW, "status", "--json"])
    except _Timeout:
        return [f"{label} [cli]: took over {limit:.0f} s"]
    problems: list[str] = []
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        problems.append(f"{label} [cli]: raised {_short(result.exception)}")
    if result.exit_code not in (0, 1):
        problems.append(f"{label} [cli]: exit code {result.exit_code}: {result.output[-300:]!r}")
    if "Traceback" in result.output:
        problems.append(f"{label} [cli]: a traceback in the output")
    try:
        rows = json.loads(result.stdout)
    except ValueError:
        problems.append(f"{label} [cli]: stdout is no JSON: {result.stdout[:200]!r}")
    else:
        if not isinstance(rows, list) or len(rows) != 3:
            problems.append(f"{label} [cli]: JSON is not one row per client: {rows!r:.200}")
    return problems


def run_broken_icalendar(examples: int, seed: int = 0, *, scale: float = 1.0
                         ) -> ScenarioResult:
    """``examples`` broken calendars, each read three ways, every ``CLI_EVERY``-th through the
    CLI too. ``scale`` shrinks the huge inputs (1.0: 1 MB lines, 100,000 attendees, 5,000
    levels of nesting, 10,000 EXDATEs)."""
    result = ScenarioResult("bad iCalendar")
    with tempfile.TemporaryDirectory(prefix="clientlove-fuzz-") as tmp:
        for index, (label, data) in enumerate(broken_inputs(examples, seed, scale)):
            result.inputs += 1
            found = check_input(data, label)
            if index % CLI_EVERY == 0:
                found += check_cli(data, label, Path(tmp) / f"cli-{index}")
            result.add(found)
            if found:
                result.crashes += sum("raised" in problem for problem in found)
    return result


# == broken configs ===========================================================================


def base_config() -> dict[str, Any]:
    """A valid config touching every section."""
    return {
        "timezone": "Europe/London",
        "me": [ME],
        "state_path": "state.sqlite",
        "sources": [{"type": "ics", "path": "history.ics", "name": "work"},
                    {"type": "ics", "url": "https://cal.example/me.ics", "name": "feed",
                     "username": "me", "credential": "feed-pass", "timeout": 10}],
        "target": {"type": "ics", "path": "reminders.ics", "name": "Client love"},
        "counter": {"base": "1w", "max": "2mo", "early": "2d",
                    "reset_markers": ["#need", "#reset"], "skip_markers": ["#skip"]},
        "reminder": {"time": "09:30", "duration": "15min", "alarm_before": "1d",
                     "workdays": ["mon", "tue", "wed", "thu", "fri"],
                     "title": "Client love: {client}"},
        "history_window": "1y",
        "clients": [
            {"name": "Acme Corp", "emails": ["jane.doe@acme.example"],
             "domains": ["acme.example"], "keywords": ["Acme"], "phone": "+44 20 7946 0000",
             "notes": {"coffee": "flat white"}, "birthday": "05-17"},
            {"name": "Globex", "emails": ["hank@globex.example"], "notes": "Fridays"},
            {"name": "Initech", "domains": ["initech.example"], "keywords": ["TPS report"]},
        ],
        "announcements": [{"date": "2026-12-01", "text": "New health check",
                           "clients": ["Acme Corp", "Initech"]}],
        "ideas": ["Send an article"],
        "email_template": "Hi {first_name},\n\nAs per our conversation...\n\n{me}",
        "service": {"interval": "15min", "jitter": "1min", "health_max_age": "3h"},
        "feed": {"enabled": True, "listen": "127.0.0.1:8787", "token_credential": "feed-token"},
    }


# (path, value) pairs a valid config may hold instead of the base's
VALID_VARIANTS: list[tuple[tuple[Any, ...], Any]] = [
    (("reminder", "workdays"), "mon, tue, fri"),
    (("reminder", "workdays"), [0, 1, 2]),
    (("reminder", "time"), "9:30"),
    (("reminder", "duration"), "PT30M"),
    (("counter", "base"), "P1W"),
    (("counter", "max"), "8w"),
    (("clients", 0, "emails"), "jane.doe@acme.example"),
    (("clients", 1, "birthday"), "1980-02-29"),
    (("timezone",), "UTC"),
    (("history_window",), "P2Y"),
    (("announcements", 0, "clients"), "all"),
    (("service", "jitter"), 0),
    (("me",), "mailto:Consultant@MyFirm.Example"),
]

# (path, value) pairs that must be refused
BAD_VALUES: list[tuple[tuple[Any, ...], Any]] = [
    (("me", 0), "not-an-email"), (("me", 0), "a@b"), (("me", 0), "a@@b.example"),
    (("clients", 0, "emails", 0), "@x.example"), (("clients", 0, "emails", 0), "j..d@acme.example"),
    (("clients", 0, "domains", 0), "acme"), (("clients", 0, "domains", 0), "-acme.example"),
    (("clients", 0, "domains", 0), "a" * 300 + ".example"), (("clients", 2, "domains"), [42]),
    (("counter", "base"), "forever"), (("counter", "base"), "-1w"), (("counter", "base"), "P"),
    (("counter", "base"), "1mo"), (("counter", "max"), "3d"), (("counter", "early"), "2w"),
    (("counter", "base"), "99999999999999999999y"), (("counter", "base"), "0d"),
    (("reminder", "duration"), "2d"), (("reminder", "alarm_before"), "3d"),
    (("reminder", "alarm_before"), "1mo"), (("history_window",), "1h"),
    (("service", "interval"), "1s"), (("service", "interval"), "1mo"),
    (("timezone",), "Mars/Base"), (("timezone",), ""), (("timezone",), "../../etc/passwd"),
    (("timezone",), 42), (("timezone",), "UTC+25"),
    (("reminder", "time"), "25:00"), (("reminder", "time"), "9:61"), (("reminder", "time"), "noon"),
    (("reminder", "time"), 930), (("reminder", "time"), "09:30:99"),
    (("reminder", "workdays"), []), (("reminder", "workdays"), ["funday"]),
    (("reminder", "workdays"), [7]), (("reminder", "workdays"), "mon,xyz"),
    (("reminder", "workdays"), [True]),
    (("reminder", "title"), "{nope}"), (("reminder", "title"), "{"), (("reminder", "title"), ""),
    (("email_template",), "{x}"), (("clients", 0, "birthday"), "13-45"),
    (("clients", 0, "birthday"), "2024-02-30"), (("announcements", 0, "date"), "tomorrow"),
    (("announcements", 0, "clients"), ["Nobody"]), (("clients", 1, "name"), "Acme Corp"),
    (("clients", 1, "name"), "!!!"), (("feed", "listen"), "nope"),
    (("feed", "listen"), "127.0.0.1:99999"), (("sources", 1, "url"), "ftp://x.example/a.ics"),
    (("sources", 1, "url"), "webcal://x.example/a.ics"), (("sources", 1, "credential"), "a b/c"),
    (("sources", 1, "url"), "https://me:pw@x.example/a.ics"), (("sources", 0, "type"), "exchange"),
    (("target", "type"), "outlook"), (("sources", 0, "username"), "me"),
    (("sources", 1, "timeout"), -1), (("sources",), []), (("target",), "reminders.ics"),
    (("clients", 0, "notes"), [["nested"]]), (("sources", 1, "name"), "work"),
    (("feed", "token_credential"), "../secret"), (("sources", 0, "path"), ""),
]

REQUIRED: list[tuple[Any, ...]] = [
    ("sources",), ("target",), ("target", "path"), ("target", "type"), ("clients", 0, "name"),
    ("announcements", 0, "date"), ("announcements", 0, "text"), ("sources", 0, "path"),
    ("sources", 0, "type"),
]

# YAML that does not parse, or parses to something that is no config
BROKEN_TEXTS: list[str] = [
    "sources: [unclosed\n", "timezone: Europe/London\n\tme: []\n", ": :\n", "{\n",
    "- - -\n  x: : y\n", "sources: *nowhere\n", "x: !!python/object:os.system [ls]\n",
    "- a\n- b\n", "42\n", "just text\n", "null\n", "", "~\n", "[]\n", "'unterminated\n",
    "a: b\n  c: d\n", "%YAML 9.9\n---\na: 1\n", "--- a\n--- b\n", "\x00\x01\x02",
    "key: \"\\xZZ\"\n", "a: &x [*x]\n", "? [a, b]\n: c\n", "{a: 1, a: 2}\n",
    "sources: !!binary AAAA\ntarget: {}\n", "!!set {a, b}\n",
]


def _walk(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, (*path, i))


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def _delete(data: Any, path: tuple[Any, ...]) -> None:
    for part in path[:-1]:
        data = data[part]
    del data[path[-1]]


WRONG_TYPES: list[Any] = [42, 3.5, True, None, [], {}, ["x"], {"a": 1}, "text", "",
                          date(2026, 1, 1), [[1]], {"type": "ics"}, -1, "x" * 10_000]

_MODEL_MAPPINGS = [(), ("counter",), ("reminder",), ("sources", 0), ("sources", 1), ("target",),
                   ("clients", 0), ("clients", 2), ("announcements", 0), ("service",), ("feed",)]


def broken_configs(examples: int, seed: int = 0
                   ) -> Iterator[tuple[str, bytes, str]]:
    """``examples`` configs as (description, file bytes, expectation): ``ok`` must exit 0,
    ``bad`` must exit 78, ``any`` may do either."""
    rng = random.Random(seed)
    kinds = ["valid", "variant", "wrong type", "unknown key", "missing key", "bad value",
             "yaml", "binary", "huge", "several"]
    for index in range(examples):
        kind = kinds[index] if index < len(kinds) else rng.choice(kinds[1:])
        data = base_config()
        expect = "bad"
        label = kind
        if kind == "valid":
            expect = "ok"
        elif kind == "variant":
            path, value = rng.choice(VALID_VARIANTS)
            _set(data, path, value)
            expect, label = "ok", f"variant {path}={value!r}"
        elif kind == "wrong type":
            paths = [p for p, _ in _walk(data) if p]
            path = rng.choice(paths)
            value = rng.choice(WRONG_TYPES)
            _set(data, path, value)
            expect, label = "any", f"wrong type {path}={value!r:.40}"
        elif kind == "unknown key":
            path = rng.choice(_MODEL_MAPPINGS)
            key = rng.choice(["colour", "password", "api_key", "Timezone", "x" * 100, "1", "path "])
            _set(data, (*path, key), "value")
            label = f"unknown key {path}.{key[:20]}"
        elif kind == "missing key":
            path = rng.choice(REQUIRED)
            _delete(data, path)
            label = f"missing {path}"
        elif kind == "bad value":
            path, value = rng.choice(BAD_VALUES)
            _set(data, path, value)
            label = f"bad value {path}={value!r:.40}"
        elif kind == "several":
            for _ in range(rng.randint(2, 5)):
                path, value = rng.choice(BAD_VALUES)
                with contextlib.suppress(KeyError, IndexError, TypeError):
                    _set(data, path, value)
            label = "several bad values"
        if kind == "yaml":
            text = rng.choice(BROKEN_TEXTS)
            if rng.random() < 0.5:  # broken in the middle of a good file
                good = yaml.safe_dump(data, sort_keys=False).splitlines(keepends=True)
                good.insert(rng.randrange(len(good) + 1), text)
                text = "".join(good)
                expect = "any"
            yield f"config {index}: yaml {text[:30]!r}", text.encode(), expect
            continue
        if kind == "binary":
            choice = rng.randrange(4)
            if choice == 0:
                raw = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3000)))
            elif choice == 1:
                raw = yaml.safe_dump(data, allow_unicode=True).replace("Acme", "\u00c4cme").encode(
                    "latin-1")
            elif choice == 2:
                raw = yaml.safe_dump(data).encode("utf-16")
            else:
                raw = yaml.safe_dump(data).encode()
                cut = rng.randrange(len(raw))
                raw = raw[:cut] + b"\x00\xff" + raw[cut:]
            yield f"config {index}: binary {choice}", raw, "bad"
            continue
        if kind == "huge":
            choice = rng.randrange(3)
            if choice == 0:
                text = yaml.safe_dump(data) + "#" + "x" * 5_000_000 + "\n"
                expect = "ok"
            elif choice == 1:
                data["clients"] += [{"name": f"Client {i}", "domains": [f"c{i}.example"]}
                                    for i in range(5000)]
                text = yaml.safe_dump(data)
                expect = "ok"
            else:
                data["clients"][0]["keywords"] = ["k" * 1_000_000]
                text = yaml.safe_dump(data, width=10**9)
                expect = "ok"
            yield f"config {index}: huge {choice}", text.encode(), expect
            continue
        yield f"config {index}: {label}", yaml.safe_dump(data, sort_keys=False).encode(), expect


_PROBLEM = re.compile(r"^  \S.*?: \S")


def check_config_file(path: Path, expect: str, label: str,
                      credentials: Path | None = None) -> list[str]:
    """``clientlove --config PATH check-config`` behaves: 0 for a valid file, 78 for a broken
    one with each problem on its own line as ``where: message``; never a traceback.

    ``credentials`` is the $CREDENTIALS_DIRECTORY holding the secrets the config names
    (check-config also checks that they resolve)."""
    limit = 30.0
    env = {"CREDENTIALS_DIRECTORY": str(credentials) if credentials else None}
    try:
        with time_limit(limit):
            result = CliRunner().invoke(cli, ["--config", str(path), "check-config"], env=env)
    except _Timeout:
        return [f"{label}: check-config took over {limit:.0f} s"]
    problems: list[str] = []
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        problems.append(f"{label}: raised {_short(result.exception)}")
    output = result.output
    if "Traceback" in output:
        problems.append(f"{label}: a traceback in the output")
    code = result.exit_code
    if code not in (0, EX_CONFIG):
        problems.append(f"{label}: exit code {code}: {output[-300:]!r}")
    if expect == "ok" and code != 0:
        problems.append(f"{label}: a valid config was refused: {result.stderr[:300]!r}")
    if expect == "bad" and code != EX_CONFIG:
        problems.append(f"{label}: a broken config was accepted (exit {code})")
    try:
        with time_limit(limit):
            load_config(path)
        loaded: list[str] | None = None
    except ConfigError as error:
        loaded = error.problems
    except _Timeout:
        return [*problems, f"{label}: load_config took over {limit:.0f} s"]
    except Exception as error:
        problems.append(f"{label}: load_config raised {_short(error)}")
        return problems
    if code == 0 and loaded is not None:
        problems.append(f"{label}: exit 0 but load_config refuses it")
    if code == EX_CONFIG:
        lines = result.stderr.splitlines()
        body = lines[1:] if lines and lines[0].startswith("config error") else lines
        if not body:
            problems.append(f"{label}: exit 78 without a problem listed")
        for line in body:
            if not _PROBLEM.match(line):
                problems.append(f"{label}: problem line names no path: {line[:160]!r}")
        if loaded is not None and [line[2:] for line in body] != loaded:
            problems.append(f"{label}: printed problems differ from load_config's "
                            f"({len(body)} lines, {len(loaded)} problems)")
    return problems


def run_broken_configs(examples: int, seed: int = 0) -> ScenarioResult:
    """``examples`` broken (and some valid) configs through ``clientlove check-config``."""
    result = ScenarioResult("bad config")
    with tempfile.TemporaryDirectory(prefix="clientlove-config-") as tmp:
        folder = Path(tmp)
        (folder / "history.ics").write_text(_cal())
        secrets = folder / "credentials"  # what base_config() names, as systemd would give
        secrets.mkdir()
        (secrets / "feed-pass").write_text("s3cret-pa55")
        (secrets / "feed-token").write_text("t" * 32)
        for index, (label, raw, expect) in enumerate(broken_configs(examples, seed)):
            path = folder / f"config-{index}.yaml"
            path.write_bytes(raw)
            result.inputs += 1
            result.add(check_config_file(path, expect, label, secrets))
            path.unlink()
        # and files that are no files
        for label, path, in (("missing file", folder / "nope.yaml"), ("a folder", folder)):
            result.inputs += 1
            result.add(check_config_file(path, "bad", label, secrets))
    return result


# == the corpus ===============================================================================


def run_corpus(corpus: Path = CORPUS) -> ScenarioResult:
    """Every file of the shared real-world corpus, read on both paths: no exception, sane
    events. (No corpus: nothing tried.)"""
    result = ScenarioResult("corpus")
    if not corpus.is_dir():
        return result
    for path in sorted(p for p in corpus.rglob("*") if p.is_file()):
        data = path.read_bytes()
        label = path.relative_to(corpus).as_posix()
        result.inputs += 1
        tzp.use_default()
        for prefilter in (False, True):
            _, _, found = read_checked(data, f"{label} [{'fast' if prefilter else 'full'}]",
                                       prefilter=prefilter, needles=NEEDLES if prefilter else ())
            result.add(found)
    return result


# == a huge source file =======================================================================

_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from datetime import date
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from daemon.config import load_config
    from daemon.cycle import read_scope
    from providers.ics import IcsSource
    config = load_config(Path(sys.argv[1]))
    scope = read_scope(config, date(2026, 11, 23))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.monotonic()
    changes = IcsSource("big", path=Path(sys.argv[2])).changes(None, scope)
    print(json.dumps({
        "seconds": time.monotonic() - began,
        "events": len(changes.upserted),
        "warnings": len(scope.warnings),
        "baseline_kb": before,
        "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }))
""")

_GENERATOR = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[4])
    from bench.generate import generate
    generate(int(sys.argv[1]), int(sys.argv[2]), 7, sys.argv[3])
""")

#: Bytes per generated event (bench/generate.py writes about 690).
_EVENT_BYTES = 690


@dataclass
class BigFileFigures:
    """What the child measured."""

    size_mb: float
    peak_mb: float
    baseline_mb: float
    seconds: float
    events: int


def big_file(megabytes: int, folder: Path) -> tuple[Path, Path]:
    """A generated history of about ``megabytes`` MB and a config naming 20 of its clients,
    so most events name no client (the generator runs in a child: its memory is its own)."""
    events = max(100, megabytes * 1_000_000 // _EVENT_BYTES)
    subprocess.run([sys.executable, "-c", _GENERATOR, str(events), "500", str(folder),
                    str(ROOT)], check=True, capture_output=True)
    config = folder / "config.yaml"
    data = yaml.safe_load(config.read_text())
    data["clients"] = data["clients"][:20]
    data.pop("announcements", None)
    config.write_text(yaml.safe_dump(data))
    return folder / "history.ics", config


def measure_big_file(history: Path, config: Path) -> BigFileFigures:
    """Read the file with ``IcsSource`` in a fresh child; its peak RSS and time."""
    child = subprocess.run([sys.executable, "-c", _CHILD, str(config), str(history), str(ROOT)],
                           check=True, capture_output=True, text=True)
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    return BigFileFigures(size_mb=history.stat().st_size / 1e6,
                          peak_mb=figures["peak_kb"] / 1024,
                          baseline_mb=figures["baseline_kb"] / 1024,
                          seconds=figures["seconds"], events=figures["events"])


def memory_budget_mb(size_mb: float) -> float:
    """Peak RSS allowed for reading a file of ``size_mb``: its size + 100 MB (the interpreter
    and libraries take about 55). Holding it whole would take more than that alone: the bytes
    and the decoded text are twice the size, and icalendar's parse of it ten times more."""
    return size_mb + 100


def run_big_file(megabytes: int, tmp: Path) -> ScenarioResult:
    """A ``megabytes`` MB source read within ``size + 100 MB`` of peak RSS."""
    result = ScenarioResult(f"{megabytes} MB source")
    history, config = big_file(megabytes, tmp)
    result.inputs = 1
    figures = measure_big_file(history, config)
    result.figures = figures  # type: ignore[attr-defined]  # for the report
    budget = memory_budget_mb(figures.size_mb)
    if figures.peak_mb > budget:
        result.violations.append(
            f"reading {figures.size_mb:.0f} MB peaked at {figures.peak_mb:.0f} MB RSS "
            f"(budget {budget:.0f} MB)")
    if figures.events == 0:
        result.violations.append("the big file gave no events")
    return result


__all__ = [
    "BigFileFigures",
    "broken_configs",
    "broken_inputs",
    "check_config_file",
    "check_input",
    "memory_budget_mb",
    "raw_events",
    "run_big_file",
    "run_broken_configs",
    "run_broken_icalendar",
    "run_corpus",
]
