"""Every calendar of the shared real-world corpus reads without a crash, on both paths.

The corpus (../shared/corpus/ics: test and fuzzing files of icalendar and
recurring-ical-events, exported by Google, Outlook, Thunderbird, Apple, Nextcloud...) is not
part of this repository; the tests skip when it is absent.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from icalendar.timezone import tzp

from daemon.icsread import DESCRIPTION_LIMIT, read_calendar
from daemon.model import Event, PartStat, ReadScope
from tests.compare import event_key

# The corpus holds vendor-prefixed TZIDs on purpose; icalendar says it guessed them.
pytestmark = pytest.mark.filterwarnings("ignore::icalendar.error.GloballyUniqueTZIDGuessed")

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "ics"
if not CORPUS.is_dir():
    pytest.skip(f"no corpus at {CORPUS}", allow_module_level=True)

FILES = sorted(path.relative_to(CORPUS).as_posix() for path in CORPUS.rglob("*.ics"))
ZONES = {"UTC": UTC, "Sydney": ZoneInfo("Australia/Sydney")}

# Files checked by hand to be broken (names alone are no guide: most "fuzzing_corpus_*" files
# are valid seed calendars). Each must give at least one warning.
BROKEN = {
    "icalendar/big_bad_calendar.ics",
    "icalendar/broken_dtstart.ics",
    "icalendar/broken_ical.ics",
    "icalendar/fuzz_testcase_0_char_in_component_name.ics",
    "icalendar/fuzz_testcase_invalid_month.ics",
    "icalendar/fuzz_testcase_vtimezone_lone_cr.ics",
    "icalendar/fuzzing_corpus_Index_Error.ics",
    "icalendar/fuzzing_corpus_Type_Error.ics",
    "icalendar/fuzzing_corpus_issue_104_mark_events_broken.ics",
    "icalendar/fuzzing_corpus_issue_464_invalid_rdate.ics",
    "icalendar/invalid_duration.ics",
    "icalendar/issue_104_broken_calendar.ics",
    "icalendar/issue_1081_invalid_rrule_freq.ics",
    "icalendar/issue_1081_invalid_start_and_end.ics",
    "icalendar/issue_1081_invalid_start_valid_end.ics",
    "icalendar/issue_165_missing_event.ics",
    "icalendar/parsing_error.ics",
    "icalendar/parsing_error_in_UTC_offset.ics",
    "icalendar/small_bad_calendar.ics",
    "icalendar/tests_events_issue_104_mark_events_broken.ics",
    "recurring-ical-events/bad_rrule_missing_until_event.ics",
}


@cache
def read(name: str, zone: str, prefilter: bool, needles: tuple[str, ...] = ()):
    """One read of a corpus file over 1990..2040, shared by the tests below."""
    tz = ZONES[zone]
    scope = ReadScope(
        start=datetime(1990, 1, 1, tzinfo=tz),
        end=datetime(2040, 1, 1, tzinfo=tz),
        tz=tz,
        needles=needles,
        prefilter=prefilter,
    )
    tzp.use_default()  # forget custom VTIMEZONEs of earlier reads, as a fresh process would
    events = read_calendar((CORPUS / name).read_bytes(), name, scope)
    return tuple(events), tuple(scope.warnings)




def assert_sane(event: Event, name: str, zone: str) -> None:
    tz = ZONES[zone]
    assert isinstance(event, Event)
    assert event.source == name
    assert isinstance(event.uid, str)
    assert event.uid
    start = event.start
    if isinstance(start, datetime):
        assert start.tzinfo is not None
        assert start.utcoffset() is not None
        assert datetime(1990, 1, 1, tzinfo=tz) <= start < datetime(2040, 1, 1, tzinfo=tz)
    else:
        assert isinstance(start, date)
        assert date(1990, 1, 1) <= start < date(2040, 1, 1)
    assert isinstance(event.summary, str)
    assert len(event.description) <= DESCRIPTION_LIMIT
    assert all(isinstance(c, str) and c for c in event.categories)
    assert event.organizer is None or not event.organizer.lower().startswith("mailto:")
    for attendee in event.attendees:
        assert attendee.email == attendee.email.lower()
        assert not attendee.email.startswith("mailto:")
        assert isinstance(attendee.partstat, PartStat)


@pytest.mark.parametrize("zone", list(ZONES))
@pytest.mark.parametrize("name", FILES)
def test_reads_without_crash_and_paths_agree(name, zone):
    full, full_warnings = read(name, zone, False)
    fast, _ = read(name, zone, True)
    for event in full:
        assert_sane(event, name, zone)
    assert all(w.startswith(f"{name}: ") for w in full_warnings)
    # no needles: the fast path filters by date only, and 1990..2040 keeps everything
    assert [event_key(e) for e in fast] == [event_key(e) for e in full]
    assert len({e.ident for e in full}) == len(full) or _duplicates_explained(full)


def _duplicates_explained(events: tuple[Event, ...]) -> bool:
    """Same ident twice only where the file itself repeats a UID without RECURRENCE-ID."""
    counts = Counter(e.ident for e in events)
    return all(not e.occurrence for e in events if counts[e.ident] > 1)


@pytest.mark.parametrize("name", sorted(BROKEN & set(FILES)))
def test_broken_files_give_warnings(name):
    _, warnings = read(name, "UTC", False)
    assert warnings, name
    # The fast path warns only about what it parses: a broken calendar-level line or an unused
    # VTIMEZONE (issue_104_broken_calendar, parsing_error_in_UTC_offset) costs no event and is
    # never read there. Its events equal the full path's (checked above).


@pytest.mark.parametrize("name", FILES)
def test_fast_path_keeps_every_group_that_names_a_needle(name):
    full, _ = read(name, "UTC", False)
    words: set[str] = set()
    for event in full:
        words.update(a.email for a in event.attendees)
        words.update(filter(None, [event.organizer]))
        words.update(w.lower() for w in re.findall(r"[A-Za-z]{4,}", event.summary)[:2])
    needles = tuple(sorted(w for w in words if w.isascii())[::2]) or ("nothing-matches",)
    fast, _ = read(name, "UTC", True, needles)

    def named(event: Event) -> bool:
        text = " ".join(
            [event.summary, event.description, event.organizer or "", *event.categories]
            + [a.email for a in event.attendees]
        ).lower()
        return any(needle in text for needle in needles)

    uids = {e.uid for e in full if named(e)}
    got = Counter(event_key(e) for e in fast)
    assert got - Counter(event_key(e) for e in full) == Counter()  # nothing invented
    assert Counter(event_key(e) for e in full if e.uid in uids) - got == Counter()  # nothing lost
