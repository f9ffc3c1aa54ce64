"""Budgets of the reader (issue 17, points 1 and 2): no invitation of a few kilobytes may cost
minutes or gigabytes.

1. Recurrence: each event and each source has a budget of work, counted inside dateutil's
   loop (so a rule that walks to the year 9999 without an occurrence counts too), and of
   time; past it the event is skipped with a warning naming source and UID, and the rest is
   read. The budgets are deterministic: inputs exceed the work budget long before any time.
2. Time zones: a VTIMEZONE with absurd numbers of transitions a year (or whose every offset
   lookup walks thousands of them) gives way to the IANA zone of its name, or UTC, with a
   warning naming source and TZID.

Every read is checked on the three paths (full, fast with needles, streamed), which must agree.
The hostile inputs at full size are in tests/hostile_recurrence.py (measured in a process of
their own).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from click.testing import CliRunner
from icalendar.timezone import tzp

from daemon import icsread
from daemon.cli import cli
from daemon.icsread import ReadBudget, read_calendar, read_calendar_stream
from daemon.model import Event, ReadScope
from providers.caldav import CalDavSource
from tests import hostile_recurrence as hostile
from tests.compare import event_key
from tests.servers import DavServer

LONDON = ZoneInfo("Europe/London")
BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 1, 1, tzinfo=LONDON)
END = datetime(2027, 1, 1, tzinfo=LONDON)
NEEDLES = ("acme",)
calendar, event = hostile.calendar, hostile.event


@pytest.fixture(autouse=True)
def fresh_zones():
    """icalendar keeps custom VTIMEZONEs process-wide by name: start each test without them."""
    tzp.use_default()
    yield
    tzp.use_default()


def read(text: str, budget: ReadBudget | None = None, *, prefilter: bool = False,
         source: str = "invites") -> tuple[list[Event], list[str]]:
    scope = ReadScope(START, END, LONDON, needles=NEEDLES if prefilter else (),
                      prefilter=prefilter)
    events = read_calendar(text, source, scope, budget=budget)
    return events, scope.warnings


def read_all_paths(text: str, source: str = "invites") -> tuple[list[Event], list[str]]:
    """The full read; the fast read (with a needle every event here carries) and the streamed
    one give the same events and warnings."""
    full, full_warnings = read(text, source=source)
    tzp.use_default()
    fast, fast_warnings = read(text, prefilter=True, source=source)
    tzp.use_default()
    scope = ReadScope(START, END, LONDON, needles=NEEDLES, prefilter=True)
    streamed = read_calendar_stream(io.BytesIO(text.encode()), source, scope,
                                    chunk_size=512, whole_below=1024)
    assert [event_key(e) for e in fast] == [event_key(e) for e in full]
    assert [event_key(e) for e in streamed] == [event_key(e) for e in full]
    assert fast_warnings == full_warnings == scope.warnings
    return full, full_warnings


def skipped(warnings: list[str], source: str, uid: str) -> str:
    """The warning that skips ``uid``, naming its source (exactly one)."""
    found = [w for w in warnings if w.startswith(f"{source}: skipped event {uid}: ")]
    assert len(found) == 1, warnings
    return found[0]


def weekly(uid: str, first: str = "20260105T090000Z") -> str:
    return event(uid, f"DTSTART:{first}", "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=20")


# == point 1: recurrence budgets ==============================================================


def test_a_rule_every_second_since_1990_is_skipped_and_the_rest_is_read():
    tick = event("tick", "DTSTART:19900101T000000Z", "RRULE:FREQ=SECONDLY",
                 "RRULE:FREQ=SECONDLY;INTERVAL=2")
    text = calendar(weekly("before"), tick, weekly("after"), hostile.MEETING)
    events, warnings = read_all_paths(text)
    assert "budget of one event" in skipped(warnings, "invites", "tick")
    assert {e.uid for e in events} == {"before", "after", "acme-review-1"}
    assert len([e for e in events if e.uid == "after"]) == 20


def test_a_rule_that_never_yields_is_counted_and_skipped():
    """FREQ=MINUTELY;BYMONTH=1;BYYEARDAY=200 walks every day to the year 9999 without one
    occurrence: no occurrence is produced, the walk is what costs."""
    never = event("never", "DTSTART:19900101T000000Z",
                  "RRULE:FREQ=MINUTELY;BYMONTH=1;BYYEARDAY=200")
    events, warnings = read_all_paths(calendar(never, hostile.MEETING))
    assert "budget of one event" in skipped(warnings, "invites", "never")
    assert [e.uid for e in events] == ["acme-review-1"]


@pytest.mark.parametrize("rule", [
    "FREQ=SECONDLY;BYHOUR=5;BYMINUTE=0",  # dateutil searches ~86,000 seconds a day
    "FREQ=HOURLY;BYMONTH=1;BYYEARDAY=200",
    "FREQ=DAILY;BYMONTH=2;BYYEARDAY=1",
])
def test_other_walks_without_occurrences_are_counted(rule: str):
    events, warnings = read(calendar(event("walk", "DTSTART:19900101T000000Z",
                                           f"RRULE:{rule}")))
    assert "budget of one event" in skipped(warnings, "invites", "walk")
    assert events == []


def _steps(text: str) -> int:
    budget = ReadBudget(event_steps=10**9, steps=10**9, event_seconds=60, seconds=60)
    read(text, budget)
    return budget.spent_steps


def test_the_rule_lines_of_an_event_share_its_budget():
    """Today's limit was per RRULE line, so 300 lines multiplied it: one budget per event."""
    one = calendar(event("one", "DTSTART:20000101T090000Z", "RRULE:FREQ=DAILY"))
    two = calendar(event("two", "DTSTART:20000101T090000Z", "RRULE:FREQ=DAILY",
                         "RRULE:FREQ=DAILY;BYHOUR=10"))
    cost = _steps(one)
    assert _steps(two) >= 2 * cost
    budget = ReadBudget(event_steps=cost * 3 // 2)
    events, warnings = read(one, budget)
    assert len(events) == 365 and warnings == []
    events, warnings = read(two, budget)
    assert "budget of one event" in skipped(warnings, "invites", "two")
    assert events == []


def test_past_the_source_budget_recurring_events_are_skipped_and_single_ones_read():
    series = [event(f"daily-{n}", "DTSTART:20000101T090000Z", "RRULE:FREQ=DAILY")
              for n in range(4)]
    text = calendar(*series, hostile.MEETING)
    cost = _steps(calendar(series[0]))
    budget = ReadBudget(steps=cost * 5 // 2)
    events, warnings = read(text, budget)
    assert {e.uid for e in events} == {"daily-0", "daily-1", "acme-review-1"}
    for uid in ("daily-2", "daily-3"):
        assert "the source's budget of" in skipped(warnings, "invites", uid)
    # the budget goes on with the next read of the same source, and a fresh one starts anew
    events, warnings = read(calendar(series[0]), budget)
    assert events == [] and "budget of" in skipped(warnings, "invites", "daily-0")
    events, warnings = read(calendar(series[0]), ReadBudget(steps=cost * 5 // 2))
    assert len(events) == 365 and warnings == []


def test_past_the_time_budget_the_event_is_skipped():
    """The time budget stands behind the work budget (for work dateutil does that is not
    counted): a budget already spent trips at the first look at the clock."""
    text = calendar(weekly("series"), hostile.MEETING)
    events, warnings = read(text, ReadBudget(event_seconds=0.0))
    assert "took over 0 s" in skipped(warnings, "invites", "series")
    assert [e.uid for e in events] == ["acme-review-1"]
    events, warnings = read(text, ReadBudget(seconds=5.0, spent_seconds=5.0))
    assert "the source's 5 s for recurrences are spent" in skipped(warnings, "invites",
                                                                   "series")
    events, warnings = read(text, ReadBudget())
    assert len(events) == 21 and warnings == []


def test_real_series_stay_well_inside_the_budgets():
    """What a consultant's calendar holds costs a small part of a budget: a daily series since
    1990, a weekly one since 2000, a yearly birthday since 1900, the last workday monthly."""
    rules = [("19900101T090000Z", "FREQ=DAILY"),
             ("20000103T090000Z", "FREQ=WEEKLY;BYDAY=MO,WE,FR"),
             ("19000101T090000Z", "FREQ=YEARLY"),
             ("20000101T090000Z", "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1")]
    for start, rule in rules:
        assert _steps(calendar(event("u", f"DTSTART:{start}", f"RRULE:{rule}"))) \
            < icsread.EVENT_STEPS // 3, rule


def test_a_caldav_source_has_one_budget_for_all_its_objects(radicale: DavServer, monkeypatch):
    """The source's budget is not per object: a calendar of many hostile objects cannot add
    up their budgets (real Radicale, one object per event)."""
    series = [event(f"daily-{n}", "DTSTART:20000101T090000Z", "RRULE:FREQ=DAILY",
                    summary=f"Acme daily {n}") for n in range(4)]
    cost = _steps(calendar(series[0]))
    monkeypatch.setattr(icsread.budget, "SOURCE_STEPS", cost * 5 // 2)  # where it is read
    url = radicale.new_calendar()
    with requests.Session() as http:
        for n, text in enumerate([*(calendar(s) for s in series), calendar(hostile.MEETING)]):
            reply = http.put(f"{url}{n}.ics", data=text.encode(),
                             headers={"Content-Type": "text/calendar"})
            assert reply.status_code in (201, 204), reply.status_code
    scope = ReadScope(START, END, LONDON, needles=NEEDLES)
    changes = CalDavSource("work", url).changes(None, scope)
    read_ = {e.uid for e in changes.upserted}
    assert "acme-review-1" in read_ and len(read_) == 3  # two series fit (in the server's order)
    for uid in {f"daily-{n}" for n in range(4)} - read_:
        assert "the source's budget of" in skipped(scope.warnings, "work", uid)


def _run(config: Path, now: str, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config), "--now", now, *args])


def test_a_hostile_invitation_costs_only_itself_day_after_day(tmp_path: Path):
    """Through the CLI: the cycle skips the invitation with a warning naming source and UID and
    plans Acme from the real meeting; the next cycle (the unchanged file is not read again)
    writes nothing, and the day after, the reminder is the last contact."""
    tick = event("tick", "DTSTART:19900101T000000Z",
                 *[f"RRULE:FREQ=SECONDLY;INTERVAL={n}" for n in range(1, 6)])
    code, output, reminders = hostile.sync(tmp_path, ("invites", calendar(tick)),
                                           ("work", calendar(hostile.MEETING)))
    hostile.expect_skipped(code, output, reminders, "invites", "tick")
    config = tmp_path / "config.yaml"
    again = _run(config, "2026-11-23T08:30", "sync")
    assert again.exit_code == 0, again.output[-1500:]
    assert "0 writes" in again.output
    status = _run(config, "2026-11-24T08:00", "status", "--json")
    assert status.exit_code == 0, status.output[-1500:]
    rows = {row["client"]: row for row in json.loads(status.stdout)}
    assert rows["Acme Corp"]["last_contact"] == "2026-11-23"  # our reminder, now past


# == point 2: time zones with absurd transition rules =========================================


def absurd_zone(tzid: str, start: str = "20200101") -> str:
    return hostile.absurd_zone(tzid).replace("16010101", start)


def zoned(tzid: str, zone: str, starts: tuple[str, ...] = ("20260105T100000",
                                                           "20260706T100000")) -> str:
    events = [event(f"z-{n}", f"DTSTART;TZID={tzid}:{start}",
                    "RRULE:FREQ=DAILY;COUNT=3") for n, start in enumerate(starts)]
    return calendar(*events, zones=zone)


def offsets(events: list[Event]) -> dict[str, timedelta | None]:
    return {f"{e.uid}/{e.start:%m-%d}": e.start.utcoffset() for e in events}


def test_a_zone_with_thousands_of_transitions_a_year_is_read_as_utc():
    text = zoned("Hostile Zone", absurd_zone("Hostile Zone"))
    events, warnings = read_all_paths(text)
    (warning,) = [w for w in warnings if "VTIMEZONE" in w]
    assert warning.startswith("invites: bad VTIMEZONE Hostile Zone ignored: up to ")
    assert warning.endswith("; read as UTC")
    assert len(events) == 6
    assert all(e.start.utcoffset() == timedelta(0) for e in events)
    assert events[0].start.astimezone(UTC) == datetime(2026, 1, 5, 10, tzinfo=UTC)


def test_a_zone_with_absurd_rules_under_a_known_name_is_read_as_that_iana_zone():
    text = zoned("W. Europe Standard Time", absurd_zone("W. Europe Standard Time"))
    events, warnings = read_all_paths(text)
    (warning,) = [w for w in warnings if "VTIMEZONE" in w]
    assert warning.startswith("invites: bad VTIMEZONE W. Europe Standard Time ignored: up to ")
    assert warning.endswith(" transitions in 2020 (a zone has a few a year, at most 8); "
                            "read as Europe/Berlin")
    starts = {e.start.astimezone(UTC) for e in events}
    assert datetime(2026, 1, 5, 9, tzinfo=UTC) in starts  # 10:00 in Berlin, winter
    assert datetime(2026, 7, 6, 8, tzinfo=UTC) in starts  # 10:00 in Berlin, summer


def test_a_zone_whose_every_lookup_walks_thousands_of_transitions_is_replaced():
    """Yearly rules from the year 1: each offset lookup walks 2,000 years of them."""
    zone = (hostile.CRLF.join([
        "BEGIN:VTIMEZONE", "TZID:Ancient Zone",
        "BEGIN:STANDARD", "DTSTART:00011025T030000", "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100",
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", "END:STANDARD",
        "BEGIN:DAYLIGHT", "DTSTART:00010329T020000", "TZOFFSETFROM:+0100", "TZOFFSETTO:+0200",
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "END:DAYLIGHT", "END:VTIMEZONE"])
        + hostile.CRLF)
    events, warnings = read_all_paths(zoned("Ancient Zone", zone))
    (warning,) = [w for w in warnings if "VTIMEZONE" in w]
    assert "Ancient Zone ignored: each offset lookup walks up to" in warning
    assert warning.endswith("read as UTC") and len(events) == 6


OUTLOOK = hostile.CRLF.join([
    "BEGIN:VTIMEZONE", "TZID:Customized Time Zone",
    "BEGIN:STANDARD", "DTSTART:16010101T030000", "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100",
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", "END:STANDARD",
    "BEGIN:DAYLIGHT", "DTSTART:16010101T020000", "TZOFFSETFROM:+0100", "TZOFFSETTO:+0200",
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "END:DAYLIGHT", "END:VTIMEZONE"]) + "\r\n"
#: tzurl.org's Fiji: a Sunday among seven days of the month (one a year, not seven)
FIJI = hostile.CRLF.join([
    "BEGIN:VTIMEZONE", "TZID:custom_Pacific/Fiji",
    "BEGIN:DAYLIGHT", "TZOFFSETFROM:+1200", "TZOFFSETTO:+1300", "DTSTART:20101024T020000",
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYMONTHDAY=21,22,23,24,25,26,27;BYDAY=SU", "END:DAYLIGHT",
    "BEGIN:STANDARD", "TZOFFSETFROM:+1300", "TZOFFSETTO:+1200", "DTSTART:20140119T020000",
    "RRULE:FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=18,19,20,21,22,23,24;BYDAY=SU", "END:STANDARD",
    "BEGIN:STANDARD", "TZOFFSETFROM:+1300", "TZOFFSETTO:+1200", "DTSTART:20130120T030000",
    "RDATE:20120122T030000", "RDATE:20130120T030000", "END:STANDARD",
    "END:VTIMEZONE"]) + "\r\n"


@pytest.mark.parametrize("tzid, zone, winter, summer", [
    ("Customized Time Zone", OUTLOOK, 1, 2),
    ("custom_Pacific/Fiji", FIJI, 13, 12),
])
def test_real_zones_are_kept(tzid: str, zone: str, winter: int, summer: int):
    events, warnings = read_all_paths(zoned(tzid, zone))
    assert warnings == []
    hours = {e.start.strftime("%m"): e.start.utcoffset() // timedelta(hours=1) for e in events}
    assert hours == {"01": winter, "07": summer}


def test_a_hostile_zone_through_the_cli_is_named_and_the_cycle_goes_on(tmp_path: Path):
    invites = calendar(*[event(f"tz-{n}", "DTSTART;TZID=Hostile Zone:20261102T100000",
                               "RRULE:FREQ=DAILY;COUNT=10", summary=f"Acme sync {n}")
                         for n in range(5)], zones=absurd_zone("Hostile Zone"))
    code, output, reminders = hostile.sync(tmp_path, ("invites", invites),
                                           ("work", calendar(hostile.MEETING)))
    flat = " ".join(output.split())
    assert code == 0 and "Traceback" not in output, output[-1500:]
    assert "invites: bad VTIMEZONE Hostile Zone ignored:" in flat and "read as UTC" in flat
    assert "Client love: Acme Corp" in reminders
