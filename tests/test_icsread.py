"""Reading iCalendar exports into Event occurrences (daemon/icsread.py).

The fixtures in tests/data are shaped like real exports of Google Calendar, Outlook and
Thunderbird; each test names the rule it holds the reader to.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from icalendar.timezone import tzp

from daemon.icsread import DESCRIPTION_LIMIT, iter_vevent_blocks, read_calendar
from daemon.model import Attendee, Event, PartStat, ReadScope
from tests.compare import event_key

DATA = Path(__file__).parent / "data"
FIXTURES = sorted(path.name for path in DATA.glob("*.ics"))
BERLIN = ZoneInfo("Europe/Berlin")
SYDNEY = ZoneInfo("Australia/Sydney")
START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2025, 1, 1, tzinfo=UTC)


def scope(
    tz=BERLIN,
    start: datetime = START,
    end: datetime = END,
    needles: tuple[str, ...] = (),
    prefilter: bool = False,
) -> ReadScope:
    return ReadScope(start=start, end=end, tz=tz, needles=needles, prefilter=prefilter)


def read(
    what: str | bytes, *, source: str | None = None, **kwargs
) -> tuple[list[Event], list[str]]:
    """Read a fixture (by file name) or literal calendar text; return events and warnings."""
    if isinstance(what, str) and what.endswith(".ics"):
        source = source or what
        what = (DATA / what).read_bytes()
    the_scope = scope(**kwargs)
    events = read_calendar(what, source or "test", the_scope)
    return events, the_scope.warnings


def calendar(*events: str, header: str = "") -> str:
    """A minimal calendar around literal VEVENT bodies."""
    blocks = "".join(f"BEGIN:VEVENT\r\n{body.strip()}\r\nEND:VEVENT\r\n" for body in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{header}{blocks}END:VCALENDAR\r\n"


def by_summary(events: list[Event], summary: str) -> list[Event]:
    return [event for event in events if event.summary == summary]


def one(events: list[Event], summary: str) -> Event:
    (event,) = by_summary(events, summary)
    return event


# --- recurrences: RRULE, EXDATE, RECURRENCE-ID, cancelled ------------------------------------


def test_google_weekly_series_expands_with_exdate_override_and_cancelled_instance():
    events, warnings = read("google_export.ics")
    series = [e for e in events if e.uid == "5q9c1v0e8m3k2j1h0g9f8e7d6c@google.com"]
    starts = [e.start.astimezone(BERLIN).replace(tzinfo=None) for e in series]
    assert starts == [
        datetime(2024, 1, 8, 10),
        datetime(2024, 1, 15, 10),
        # 22 January is an EXDATE
        datetime(2024, 1, 29, 10),
        datetime(2024, 2, 7, 14),  # the 5 February slot, moved to Wednesday afternoon
        datetime(2024, 2, 12, 10),  # cancelled, but still returned
        datetime(2024, 2, 19, 10),
        datetime(2024, 2, 26, 10),  # UNTIL is inclusive
    ]
    moved = series[3]
    assert moved.summary == "Acme weekly sync (moved)"
    assert moved.occurrence == "20240205T090000Z"  # the slot it fills, not where it went
    assert [e.cancelled for e in series] == [False, False, False, False, True, False, False]
    assert len({e.ident for e in series}) == len(series)
    assert all(e.occurrence for e in series)
    assert warnings == []


def test_non_recurring_event_has_empty_occurrence():
    events, _ = read("google_export.ics")
    lunch = one(events, "Lunch with Peter")
    assert lunch.occurrence == ""
    assert lunch.ident == lunch.uid


def test_orphan_override_without_its_series_is_read_by_its_recurrence_id():
    text = calendar(
        "UID:shared-instance@google.com\r\nRECURRENCE-ID:20240301T090000Z\r\n"
        "DTSTART:20240301T100000Z\r\nSUMMARY:One instance I was invited to"
    )
    (event,), _ = read(text)
    assert event.start == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert event.occurrence == "20240301T090000Z"


def test_outlook_monthly_series_with_windows_zone_exdate():
    events, _ = read("outlook_export.ics")
    series = by_summary(events, "Initech steering committee")
    assert [e.start.astimezone(UTC) for e in series] == [
        datetime(2024, 1, 9, 8, tzinfo=UTC),  # 09:00 CET
        datetime(2024, 2, 13, 8, tzinfo=UTC),
        # 12 March is an EXDATE
        datetime(2024, 4, 9, 7, tzinfo=UTC),  # 09:00 CEST
        datetime(2024, 5, 14, 7, tzinfo=UTC),
        datetime(2024, 6, 11, 7, tzinfo=UTC),
    ]


def test_cancelled_events_are_returned_flagged():
    events, _ = read("outlook_export.ics")
    workshop = one(events, "Canceled: Acme architecture workshop")
    assert workshop.cancelled
    assert not one(events, "Globex quarterly review").cancelled


# --- all-day and timed starts, zones ---------------------------------------------------------


@pytest.mark.parametrize("tz", [BERLIN, SYDNEY, ZoneInfo("America/Los_Angeles"), UTC])
def test_all_day_events_are_dates_whatever_the_zone(tz):
    events, _ = read("outlook_export.ics", tz=tz)
    assert one(events, "Anzac Day (public holiday)").start == date(2024, 4, 25)
    events, _ = read("google_export.ics", tz=tz)
    birthday = one(events, "Anna's birthday")
    assert birthday.start == date(2024, 4, 10)
    assert birthday.all_day
    assert birthday.occurrence == "20240410"
    events, _ = read("thunderbird_export.ics", tz=tz)
    assert one(events, "Acme offsite").start == date(2024, 5, 20)


def test_all_day_is_decided_by_value_type_not_by_duration():
    text = calendar(
        "UID:a\r\nDTSTART;VALUE=DATE:20240301\r\nDURATION:PT1H\r\nSUMMARY:date, odd duration",
        "UID:b\r\nDTSTART;VALUE=DATE:20240302\r\nDTEND:20240302T120000Z\r\nSUMMARY:date, timed end",
        "UID:c\r\nDTSTART:20240303T000000Z\r\nDTEND:20240304T000000Z\r\nSUMMARY:exactly one day",
        "UID:d\r\nDTSTART:20240305\r\nSUMMARY:date without VALUE",
    )
    events, _ = read(text)
    assert one(events, "date, odd duration").start == date(2024, 3, 1)
    assert one(events, "date, timed end").start == date(2024, 3, 2)
    assert one(events, "exactly one day").start == datetime(2024, 3, 3, tzinfo=UTC)
    assert one(events, "date without VALUE").start == date(2024, 3, 5)


def test_end_before_start_does_not_move_the_start():
    text = calendar("UID:x\r\nDTSTART:20240310T100000Z\r\nDTEND:20240310T090000Z\r\nSUMMARY:x")
    (event,), _ = read(text)
    assert event.start == datetime(2024, 3, 10, 10, tzinfo=UTC)


def test_outlook_windows_zone_with_vtimezone_at_0830_sydney():
    events, warnings = read("outlook_export.ics")
    review = one(events, "Globex quarterly review")
    # 12 February is summer in Sydney (AEDT, +11): 08:30 local is 21:30 UTC the day before.
    assert review.start.astimezone(UTC) == datetime(2024, 2, 11, 21, 30, tzinfo=UTC)
    assert review.start.replace(tzinfo=None) == datetime(2024, 2, 12, 8, 30)
    assert review.local_date(SYDNEY) == date(2024, 2, 12)
    assert review.local_date(BERLIN) == date(2024, 2, 11)
    lunch = one(events, "Team lunch")  # July is winter in Sydney (AEST, +10)
    assert lunch.start.astimezone(UTC) == datetime(2024, 7, 5, 2, 30, tzinfo=UTC)
    assert warnings == []


@pytest.mark.parametrize(
    ("tzid", "offset"),
    [("Tokyo Standard Time", 9), ("AUS Eastern Standard Time", 11), ("Romance Standard Time", 1)],
)
def test_windows_zone_names_without_vtimezone(tzid, offset):
    text = calendar(f"UID:w\r\nDTSTART;TZID={tzid}:20240212T083000\r\nSUMMARY:w")
    (event,), warnings = read(text)
    assert event.start.utcoffset() == timedelta(hours=offset)
    assert event.start.replace(tzinfo=None) == datetime(2024, 2, 12, 8, 30)
    assert warnings == []


def test_unknown_tzid_without_vtimezone_is_floating_in_scope_tz_with_warning():
    text = calendar("UID:m\r\nDTSTART;TZID=Mars/Olympus_Mons:20240212T083000\r\nSUMMARY:m")
    (event,), warnings = read(text, tz=SYDNEY, source="mars.ics")
    assert event.start == datetime(2024, 2, 12, 8, 30, tzinfo=SYDNEY)
    assert len(warnings) == 1
    assert warnings[0].startswith("mars.ics: ")
    assert "Mars/Olympus_Mons" in warnings[0]


def test_floating_time_becomes_aware_in_scope_tz():
    for tz in (BERLIN, SYDNEY):
        events, _ = read("thunderbird_export.ics", tz=tz)
        coffee = one(events, "Coffee with Peter")
        assert coffee.start == datetime(2024, 4, 18, 15, tzinfo=tz)
        assert coffee.start.tzinfo is tz


def test_utc_and_tzid_times_stay_aware_and_exact():
    events, _ = read("google_export.ics", tz=SYDNEY)
    # Google writes UTC and names the calendar zone in X-WR-TIMEZONE; the instant is kept.
    assert one(events, "Lunch with Peter").start == datetime(2024, 3, 15, 11, 30, tzinfo=UTC)
    sync = by_summary(events, "Acme weekly sync")[0]
    assert sync.start.utcoffset() == timedelta(hours=1)  # Europe/Berlin in winter


def test_x_wr_timezone_applies_to_floating_google_times():
    text = calendar(
        "UID:g\r\nDTSTART:20240612T090000\r\nSUMMARY:g",
        header="X-WR-TIMEZONE:America/New_York\r\n",
    )
    (event,), _ = read(text, tz=SYDNEY)
    assert event.start == datetime(2024, 6, 12, 9, tzinfo=ZoneInfo("America/New_York"))


# --- people, text and our marks --------------------------------------------------------------


def test_partstats_organizer_and_mailto_stripping():
    events, _ = read("google_export.ics")
    briefing = one(events, "Globex vendor briefing")
    assert briefing.organizer == "hank@globex.example"
    assert briefing.attendees == (
        Attendee("hank@globex.example", PartStat.ACCEPTED),
        # the address is split across a folded line in the file
        Attendee("consultant@myfirm.example", PartStat.DECLINED),
    )
    lunch = one(events, "Lunch with Peter")
    assert lunch.attendees == (Attendee("peter@initech.example", PartStat.TENTATIVE),)

    events, _ = read("outlook_export.ics")
    review = one(events, "Globex quarterly review")
    assert review.organizer == "hank@globex.example"  # MAILTO:Hank@Globex.Example
    assert review.attendees == (
        Attendee("consultant@myfirm.example", PartStat.ACCEPTED),
        Attendee("finance@globex.example", PartStat.NEEDS_ACTION),
    )


def test_attendee_without_partstat_or_mailto():
    text = calendar(
        "UID:p\r\nDTSTART:20240301T090000Z\r\nSUMMARY:p\r\n"
        "ORGANIZER:MailTo: Boss@MyFirm.Example \r\n"
        "ATTENDEE;CN=Jane:jane.doe@acme.example\r\n"
        "ATTENDEE;PARTSTAT=X-MAYBE:mailto:hank@globex.example\r\n"
        "ATTENDEE;PARTSTAT=delegated:MAILTO:peter@initech.example"
    )
    (event,), _ = read(text)
    assert event.organizer == "boss@myfirm.example"
    assert event.attendees == (
        Attendee("jane.doe@acme.example", PartStat.NEEDS_ACTION),
        Attendee("hank@globex.example", PartStat.OTHER),
        Attendee("peter@initech.example", PartStat.DELEGATED),
    )


def test_folded_lines_escapes_and_categories():
    events, _ = read("thunderbird_export.ics")
    prep = one(events, "Workshop prep, Acme")  # SUMMARY:Workshop prep\, Acme
    assert Attendee("jane.doe@acme.example", PartStat.ACCEPTED) in prep.attendees
    assert prep.description.startswith(
        "Agenda: budget, roadmap, hiring. Bring the Q1 numbers; Jane asked for the churn"
    )
    assert prep.description.endswith("the onboarding funnel and the support backlog.")
    assert prep.categories == ("Clients", "Acme", "Follow-up")
    assert prep.organizer == "consultant@myfirm.example"


def test_description_is_cut():
    text = calendar(f"UID:d\r\nDTSTART:20240301T090000Z\r\nSUMMARY:d\r\nDESCRIPTION:{'x' * 5000}")
    (event,), _ = read(text)
    assert len(event.description) == DESCRIPTION_LIMIT == 2000


def test_clientlove_key_is_read():
    events, _ = read("google_export.ics")
    ours = one(events, "Client love: Acme")
    assert ours.clientlove_key == "acme.2"
    assert ours.uid == "acme.2@clientlove"
    assert all(e.clientlove_key is None for e in events if e is not ours)


def test_only_vevents_are_read():
    events, _ = read("thunderbird_export.ics")
    assert "c1d2e3f4-0a1b-4c2d-8e3f-9a0b1c2d3e4f" not in {e.uid for e in events}  # a VTODO
    events, _ = read("broken_events.ics")
    assert "todo@myfirm.example" not in {e.uid for e in events}


def test_event_without_uid_gets_a_stable_made_up_one():
    text = calendar(
        "DTSTART:20240301T090000Z\r\nSUMMARY:no uid one",
        "DTSTART:20240302T090000Z\r\nSUMMARY:no uid two",
    )
    first, _ = read(text)
    again, _ = read(text.replace("VERSION:2.0", "VERSION:2.0\r\nX-EXPORTED:now"))
    assert [e.uid for e in first] == [e.uid for e in again]
    assert len({e.uid for e in first}) == 2
    assert all(e.uid.startswith("no-uid-") for e in first)


# --- encodings and input forms ---------------------------------------------------------------


def test_non_utf8_file_is_read_as_cp1252_with_warning():
    events, warnings = read("outlook_cp1252.ics")
    (event,) = events
    assert event.summary == "Besprechung mit Jürgen – Café"
    assert event.organizer == "juergen.weiss@initech.example"
    assert event.start == datetime(2024, 1, 16, 9, tzinfo=UTC)
    assert warnings == ["outlook_cp1252.ics: not UTF-8, read as cp1252"]


def test_utf8_bom_and_str_input():
    raw = (DATA / "thunderbird_export.ics").read_bytes()
    plain, _ = read(raw)
    with_bom, warnings = read(b"\xef\xbb\xbf" + raw)
    as_text, _ = read("\ufeff" + raw.decode())
    assert plain == with_bom == as_text
    assert warnings == []


def test_lf_line_endings_and_lowercase_names():
    text = calendar("uid:l\r\ndtstart:20240301T090000Z\r\nsummary:lower").replace("\r\n", "\n")
    text = text.replace("BEGIN:VEVENT", "begin:vevent").replace("END:VEVENT", "end:vevent")
    for prefilter in (False, True):
        (event,), _ = read(text, prefilter=prefilter)
        assert event.summary == "lower"


# --- robustness ------------------------------------------------------------------------------


def test_broken_events_are_skipped_with_warnings_naming_source_and_uid():
    for prefilter in (False, True):
        events, warnings = read("broken_events.ics", prefilter=prefilter)
        assert [e.uid for e in events] == [
            "good-before@myfirm.example",
            "good-after@myfirm.example",
        ]
        assert len(warnings) == 4
        prefixes = [
            "broken_events.ics: skipped event no-start@myfirm.example: no DTSTART",
            "broken_events.ics: skipped event bad-date@myfirm.example: bad DTSTART",
            "broken_events.ics: skipped event bad-rrule@myfirm.example: bad RRULE",
            "broken_events.ics: skipped event typo-until@myfirm.example: ",
        ]
        for prefix, warning in zip(prefixes, warnings, strict=True):
            assert warning.startswith(prefix)
            assert len(warning) < 250


def test_skipped_event_without_uid_is_named_with_question_mark():
    _, warnings = read(calendar("SUMMARY:nothing else"), source="s.ics")
    assert warnings == ["s.ics: skipped event ?: no DTSTART"]


@pytest.mark.parametrize(
    "data",
    [b"", b"hello world", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "<html><body>404</body></html>"],
)
def test_not_a_calendar_gives_one_warning(data):
    for prefilter in (False, True):
        events, warnings = read(data, source="feed", prefilter=prefilter)
        assert events == []
        assert len(warnings) == 1
        assert warnings[0].startswith("feed: not a calendar: ")


def test_empty_calendar_is_no_warning():
    assert read("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n") == ([], [])


def test_cut_off_download_keeps_the_complete_events():
    raw = (DATA / "google_export.ics").read_bytes()
    cut = raw[: raw.index(b"SUMMARY:Lunch with Peter")]
    for prefilter in (False, True):
        events, warnings = read(cut, source="cut", prefilter=prefilter)
        assert {e.summary for e in events} == {
            "Acme weekly sync",
            "Acme weekly sync (moved)",
            "Globex vendor briefing",
        }
        assert any("damaged calendar" in w for w in warnings)


def test_garbage_at_calendar_level_does_not_lose_events():
    raw = (DATA / "outlook_export.ics").read_text()
    broken = raw.replace("X-WR-CALNAME:Calendar", "THIS LINE IS NOT ICALENDAR")
    for prefilter in (False, True):
        events, warnings = read(broken, source="o", prefilter=prefilter)
        assert events == read("outlook_export.ics", source="o", prefilter=prefilter)[0]
        if not prefilter:
            assert any("damaged calendar" in w for w in warnings)


def test_broken_vtimezone_costs_only_its_zone():
    raw = (DATA / "outlook_export.ics").read_text()
    broken = raw.replace("TZOFFSETTO:+1000", "TZOFFSETTO:+5744", 1)
    for prefilter in (False, True):
        events, warnings = read(broken, prefilter=prefilter)
        assert len(events) == 9
        assert any("bad VTIMEZONE AUS Eastern Standard Time" in w for w in warnings)
        steering = by_summary(events, "Initech steering committee")
        assert steering[0].start.astimezone(UTC) == datetime(2024, 1, 9, 8, tzinfo=UTC)


def test_endless_fine_grained_rule_is_capped():
    text = calendar("UID:tick\r\nDTSTART:20240101T000000Z\r\nRRULE:FREQ=MINUTELY\r\nSUMMARY:tick")
    events, warnings = read(text)
    assert len(events) == 20_000
    assert any("over 20000 occurrences" in w for w in warnings)


def test_mangled_exports_never_raise():
    rng = random.Random(20240101)
    sources = [(DATA / name).read_bytes() for name in FIXTURES]
    for _ in range(150):
        lines = rng.choice(sources).split(b"\n")
        for _ in range(rng.randint(1, 6)):
            index = rng.randrange(len(lines))
            choice = rng.random()
            if choice < 0.4:
                del lines[index]
            elif choice < 0.7:
                cut = rng.randrange(len(lines[index]) + 1)
                lines[index] = lines[index][:cut]
            else:
                lines.insert(index, rng.choice(lines))
        data = b"\n".join(lines)
        for prefilter in (False, True):
            the_scope = scope(tz=SYDNEY, prefilter=prefilter, needles=("acme", "globex"))
            for event in read_calendar(data, "m", the_scope):
                assert isinstance(event, Event)


# --- the window ------------------------------------------------------------------------------


def test_window_includes_start_and_excludes_end():
    text = calendar(
        "UID:at-start\r\nDTSTART:20240301T000000Z\r\nSUMMARY:at start",
        "UID:at-end\r\nDTSTART:20240302T000000Z\r\nSUMMARY:at end",
        "UID:long\r\nDTSTART:20240220T000000Z\r\nDTEND:20240305T000000Z\r\nSUMMARY:long",
    )
    start, end = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC)
    for prefilter in (False, True):
        events, _ = read(text, start=start, end=end, prefilter=prefilter)
        assert [e.summary for e in events] == ["at start"]


def test_naive_window_is_a_programming_error():
    with pytest.raises(ValueError):
        read_calendar(b"", "x", ReadScope(start=datetime(2024, 1, 1), end=END, tz=UTC))


# --- the fast path ---------------------------------------------------------------------------




def _words(events: list[Event]) -> list[str]:
    found: set[str] = set()
    for event in events:
        found.update(a.email for a in event.attendees)
        found.update(filter(None, [event.organizer]))
        found.update(word.lower() for word in event.summary.split() if len(word) > 3)
    return sorted(word for word in found if word.isascii())


def fresh_read(data: bytes, the_scope: ReadScope) -> list[Event]:
    """Read as a fresh process would: icalendar keeps the custom VTIMEZONEs it has parsed in a
    process-wide cache, which would otherwise hide a zone the fast path failed to pass on."""
    tzp.use_default()
    return read_calendar(data, "s", the_scope)


def _assert_fast_matches_full(data: bytes, tz, start, end, needles: tuple[str, ...]) -> None:
    full = fresh_read(data, scope(tz=tz, start=start, end=end))
    fast = fresh_read(data, scope(tz=tz, start=start, end=end, needles=needles, prefilter=True))

    def named(event: Event) -> bool:
        text = " ".join(
            [event.summary, event.description, event.organizer or "", event.uid]
            + [a.email for a in event.attendees]
            + list(event.categories)
        ).lower()
        return not needles or any(needle in text for needle in needles)

    uids = {event.uid for event in full if named(event)}
    expected = Counter(event_key(event) for event in full if event.uid in uids)
    got = Counter(event_key(event) for event in fast)
    assert got - Counter(event_key(event) for event in full) == Counter()  # nothing invented
    assert expected - got == Counter()  # nothing lost that names a needle


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("tz", [BERLIN, SYDNEY])
def test_fast_path_equals_full_path_on_fixtures(name, tz):
    data = (DATA / name).read_bytes()
    everything = read_calendar(data, "s", scope(tz=tz))
    words = _words(everything)
    needle_sets = [(), tuple(words), tuple(words[::3]), ("jane.doe@acme.example",), ("nothing",)]
    windows = [(START, END), (datetime(2024, 2, 10, tzinfo=UTC), datetime(2024, 4, 19, tzinfo=UTC))]
    for start, end in windows:
        for needles in needle_sets:
            _assert_fast_matches_full(data, tz, start, end, needles)
    every_uid = tuple(sorted({e.uid.lower() for e in everything}))
    fast_all = fresh_read(data, scope(tz=tz, needles=every_uid, prefilter=True))
    assert [event_key(e) for e in fast_all] == [event_key(e) for e in everything]


def test_custom_vtimezone_reaches_the_fast_path():
    zone = (
        "BEGIN:VTIMEZONE\r\nTZID:Customized Time Zone\r\nBEGIN:STANDARD\r\n"
        "DTSTART:16010101T000000\r\nTZOFFSETFROM:+0530\r\nTZOFFSETTO:+0530\r\n"
        "END:STANDARD\r\nEND:VTIMEZONE\r\n"
    )
    text = calendar(
        'UID:c\r\nDTSTART;TZID="Customized Time Zone":20240301T090000\r\nSUMMARY:jane',
        header=zone,
    ).encode()
    for prefilter in (False, True):
        the_scope = scope(needles=("jane",), prefilter=prefilter)
        (event,) = fresh_read(text, the_scope)
        assert event.start == datetime(2024, 3, 1, 3, 30, tzinfo=UTC)
        assert the_scope.warnings == []


def test_needles_match_unfolded_unescaped_lowercased_text():
    # jane.doe@ | @acme.example is split across a fold in the Thunderbird file
    events, _ = read("thunderbird_export.ics", needles=("jane.doe@acme.example",), prefilter=True)
    assert {e.summary for e in events} == {"Workshop prep, Acme"}
    # SUMMARY:Workshop prep\, Acme
    events, _ = read("thunderbird_export.ics", needles=("prep, acme",), prefilter=True)
    assert {e.summary for e in events} == {"Workshop prep, Acme"}
    # MAILTO:Peter@Initech.Example
    events, _ = read("outlook_export.ics", needles=("peter@initech.example",), prefilter=True)
    assert {e.summary for e in events} == {"Initech steering committee"}
    assert len(events) == 5


def test_needle_beyond_ascii_matches_like_ignorecase():
    text = calendar(
        "UID:t\r\nDTSTART:20240301T090000Z\r\nSUMMARY:İSTANBUL OFİS toplantısı",
        "UID:s\r\nDTSTART:20240302T090000Z\r\nSUMMARY:Straße und Maſs",
    )
    cases = [("istanbul ofis", "t"), ("toplantısı", "t"), ("strasse", "s"), ("maſs", "s")]
    cases += [("ıstanbul", "t"), ("straße", "s")]
    for needle, uid in cases:
        events, _ = read(text, needles=(needle,), prefilter=True)
        assert [e.uid for e in events] == [uid], needle


def test_needle_with_dotless_i_matches_ascii_title():
    text = calendar("UID:a\r\nDTSTART:20240301T090000Z\r\nSUMMARY:AKBANK TIP review")
    events, _ = read(text, needles=("akbank tıp",), prefilter=True)
    assert [e.uid for e in events] == ["a"]


def test_valarm_uid_does_not_decide_the_group():
    # RFC 9074 gives alarms a UID; here it comes first. The override, dated far outside the
    # window, belongs to the series and moves its 12 February occurrence out of the window.
    series = (
        "BEGIN:VALARM\r\nUID:alarm-1\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\n"
        "TRIGGER:-PT15M\r\nEND:VALARM\r\nUID:s1\r\nDTSTART:20240108T100000Z\r\n"
        "RRULE:FREQ=WEEKLY;COUNT=8\r\nSUMMARY:Acme weekly"
    )
    moved = "UID:s1\r\nRECURRENCE-ID:20240212T100000Z\r\nDTSTART:20190101T100000Z\r\nSUMMARY:x"
    text = calendar(series, moved)
    full, _ = read(text)
    fast, _ = read(text, needles=("acme",), prefilter=True)
    assert fast == full
    assert len(full) == 7
    assert "20240212T100000Z" not in {e.occurrence for e in full}


def test_needle_in_an_override_keeps_the_whole_series():
    needles = ("trade fair",)  # only in the DESCRIPTION of the moved instance
    fast, _ = read("google_export.ics", needles=needles, prefilter=True)
    full, _ = read("google_export.ics")
    series = [e for e in full if e.uid == "5q9c1v0e8m3k2j1h0g9f8e7d6c@google.com"]
    assert fast == series
    assert len(fast) == 7


def test_windows_zones_reach_the_fast_path():
    for name in ("outlook_export.ics", "outlook_cp1252.ics"):
        full, _ = read(name)
        fast, _ = read(name, needles=("globex", "initech"), prefilter=True)
        assert fast
        assert [event_key(e) for e in fast] == [event_key(e) for e in full if e in fast]


def test_prefilter_does_not_parse_what_cannot_matter():
    broken = "X-BROKEN\r\nDTEND:notadate"  # a parse of these events would warn
    text = calendar(
        f"UID:old\r\nDTSTART:20190301T090000Z\r\nSUMMARY:jane, long ago\r\n{broken}",
        f"UID:nobody\r\nDTSTART:20240301T090000Z\r\nSUMMARY:dentist\r\n{broken}",
        "UID:jane\r\nDTSTART:20240302T090000Z\r\nSUMMARY:jane",
    )
    full, full_warnings = read(text)
    assert [e.uid for e in full] == ["jane"]
    assert len([w for w in full_warnings if "skipped event" in w]) == 2
    fast, fast_warnings = read(text, needles=("jane",), prefilter=True)
    assert [e.uid for e in fast] == ["jane"]
    assert fast_warnings == []


def test_empty_needles_filter_by_date_only():
    text = calendar(
        "UID:old\r\nDTSTART:20190301T090000Z\r\nSUMMARY:old\r\nDTEND:broken",
        "UID:new\r\nDTSTART:20240301T090000Z\r\nSUMMARY:new",
        'UID:unreadable-start\r\nDTSTART;TZID="odd:zone":20190301T090000\r\nSUMMARY:odd',
        "UID:old-series\r\nDTSTART:20190301T090000Z\r\nRRULE:FREQ=YEARLY\r\nSUMMARY:yearly",
    )
    events, warnings = read(text, prefilter=True)
    assert [e.uid for e in events] == ["new", "old-series"]
    assert [w for w in warnings if "old:" in w or "skipped event old" in w] == []


def test_date_prefilter_keeps_a_margin_for_zones():
    # 31 Dec 23:30 in Los Angeles is already 1 January in UTC: inside a 2024 window.
    text = calendar("UID:la\r\nDTSTART;TZID=America/Los_Angeles:20231231T233000\r\nSUMMARY:la")
    start = datetime(2024, 1, 1, 5, tzinfo=UTC)
    fast, _ = read(text, start=start, prefilter=True)
    full, _ = read(text, start=start)
    assert fast == full
    assert len(fast) == 1


def test_iter_vevent_blocks_splits_without_parsing():
    text = (DATA / "thunderbird_export.ics").read_text()
    blocks = list(iter_vevent_blocks(text))
    assert len(blocks) == 4  # the VTODO is not a VEVENT
    assert all(b.startswith("BEGIN:VEVENT") and b.rstrip().endswith("END:VEVENT") for b in blocks)
    assert "jane.doe@acme.example" in blocks[0]  # unfolded
    assert "BEGIN:VALARM" in blocks[0]


def test_event_inside_an_old_event_whose_end_was_lost():
    """Found by tests/test_fuzz_ical.py: an old event lost its END line, so the next one sits
    inside it. The date prefilter, reading the outer event's own DTSTART (2019), dropped the
    inner one (2024) silently; a block holding another VEVENT is now always parsed."""
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"
        "BEGIN:VEVENT\r\nUID:old\r\nDTSTART:20190301T090000Z\r\nSUMMARY:jane, long ago\r\n"
        "BEGIN:VEVENT\r\nUID:inner\r\nDTSTART:20240301T090000Z\r\nSUMMARY:jane\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    full, _ = read(text)
    fast, _ = read(text, needles=("jane",), prefilter=True)
    assert [e.uid for e in fast] == [e.uid for e in full] == ["inner"]
