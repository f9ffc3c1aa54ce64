"""Placement: a reminder is never written into the past, and its alarm comes in time.

The pure rule (``daemon.placement``) checked over many moments of a day, then what the person
sees through the CLI as the clock moves: today 15:00, 15:40, 17:30, a Friday evening.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
import yaml
from click.testing import CliRunner

from daemon.placement import LEAD, SlotRule, alarm_for, place, start_for, when_text
from daemon.reminder_ical import key_of
from tests.test_cli_e2e import Workspace, calendar, vevent

TZ = ZoneInfo("Europe/London")
RULE = SlotRule(slot=time(9, 30), latest=time(17, 0), alarm_before=timedelta(days=1),
                workdays=frozenset(range(5)), tz=TZ)
TUESDAY = date(2006, 5, 16)


def at(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=TZ)


@pytest.mark.parametrize(("now", "expected"), [
    (at(TUESDAY, 8, 0), at(TUESDAY, 9, 30)),        # the slot, still ahead
    (at(TUESDAY, 9, 15), at(TUESDAY, 9, 30)),       # exactly 15 minutes ahead
    (at(TUESDAY, 9, 16), at(TUESDAY, 9, 45)),       # too close: the next quarter hour
    (at(TUESDAY, 15, 0), at(TUESDAY, 15, 15)),
    (at(TUESDAY, 15, 0, 1), at(TUESDAY, 15, 30)),   # seconds count
    (at(TUESDAY, 16, 45), at(TUESDAY, 17, 0)),      # the latest start of the working day
    (at(TUESDAY, 16, 46), at(TUESDAY + timedelta(1), 9, 30)),  # then the next work day
    (at(TUESDAY, 23, 50), at(TUESDAY + timedelta(1), 9, 30)),
])
def test_start_is_never_in_the_past(now: datetime, expected: datetime):
    assert start_for(TUESDAY, now, RULE) == expected


def test_friday_evening_goes_to_monday():
    friday = date(2006, 5, 19)
    assert start_for(friday, at(friday, 18, 0), RULE) == at(date(2006, 5, 22), 9, 30)


def test_a_future_day_keeps_its_slot():
    assert start_for(date(2006, 5, 23), at(TUESDAY, 15, 0), RULE) == at(date(2006, 5, 23), 9, 30)


def test_every_moment_of_a_day():
    """For each minute of a day: at least LEAD ahead, the alarm between now and the start,
    at most alarm_before ahead, whole minutes, and the words match the moment it fires."""
    for minute in range(0, 24 * 60, 7):
        now = at(TUESDAY, 0) + timedelta(minutes=minute, seconds=minute % 60)
        spot = place(TUESDAY, now, RULE)
        assert spot.start >= now + LEAD
        fires = spot.start - spot.alarm_before
        assert now - timedelta(minutes=1) < fires <= spot.start
        assert fires >= now.replace(second=0, microsecond=0)
        assert timedelta(0) <= spot.alarm_before <= RULE.alarm_before
        assert spot.alarm_before.total_seconds() % 60 == 0
        text = when_text(spot.start, spot.alarm_before, TZ)
        days = (spot.start.date() - fires.astimezone(TZ).date()).days
        assert text.startswith({0: "today at", 1: "tomorrow at"}.get(days, f"in {days} days"))


def test_alarm_one_day_ahead_when_there_is_time():
    start = at(TUESDAY + timedelta(2), 9, 30)
    assert alarm_for(start, at(TUESDAY, 8, 0), RULE) == timedelta(days=1)
    assert when_text(start, timedelta(days=1), TZ) == "tomorrow at 09:30"
    two = SlotRule(RULE.slot, RULE.latest, timedelta(days=2), RULE.workdays, TZ)
    assert when_text(start, alarm_for(start, at(TUESDAY, 8, 0), two), TZ) == \
        "in 2 days (Thu 09:30)"


def test_a_reminder_on_its_day_is_not_chased_by_the_clock():
    """Written at 15:00 for 15:15; at 15:10 and at 15:40 the same start and alarm."""
    first = place(TUESDAY, at(TUESDAY, 15, 0), RULE)
    assert (first.start, first.alarm_before) == (at(TUESDAY, 15, 15), timedelta(minutes=15))
    for later in (at(TUESDAY, 15, 10), at(TUESDAY, 15, 40), at(TUESDAY, 23, 0)):
        assert place(TUESDAY, later, RULE, (first.start, first.alarm_before)) == first
    # the slot was seen yesterday (alarm a day ahead): kept at 09:30 even at 15:00
    morning = place(TUESDAY, at(TUESDAY, 15, 0), RULE, (at(TUESDAY, 9, 30), timedelta(days=1)))
    assert (morning.start, morning.alarm_before) == (at(TUESDAY, 9, 30), timedelta(days=1))


def test_a_changed_alarm_setting_applies_while_there_is_time():
    later = TUESDAY + timedelta(days=3)
    held = (at(later, 9, 30), timedelta(days=1))
    two = SlotRule(RULE.slot, RULE.latest, timedelta(days=2), RULE.workdays, TZ)
    assert place(later, at(TUESDAY, 8, 0), two, held).alarm_before == timedelta(days=2)


# -- through the CLI -------------------------------------------------------------------------


def _workspace(tmp_path: Path, **extra) -> Workspace:
    config = {
        "timezone": "Europe/London",
        "state_path": "state.sqlite",
        "sources": [{"type": "ics", "path": "history.ics"}],
        "target": {"type": "ics", "path": "reminders.ics"},
        "clients": [{"name": "Acme Corp", "emails": ["jane@acme.example"]}],
        **extra,
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "history.ics").write_text(calendar(
        vevent("m1", "20060501T100000", "Acme review",
               attendees=[("jane@acme.example", "ACCEPTED")])))
    return Workspace(tmp_path, CliRunner())


def _ours(ws: Workspace) -> list[icalendar.cal.Component]:
    return [e for e in icalendar.Calendar.from_ical(ws.reminders.read_bytes()).walk("VEVENT")
            if key_of(e)]


def _alarm(event: icalendar.cal.Component) -> tuple[timedelta, str]:
    alarm = next(a for a in event.walk("VALARM"))
    return -alarm["trigger"].dt, str(alarm["description"])


def test_due_today_at_three_pm(tmp_path: Path):
    """The issue's repro: one meeting on 2006-05-01, a sync at 15:00 on the 16th."""
    ws = _workspace(tmp_path)
    ws.run("sync", now="2006-05-16T15:00")
    (event,) = _ours(ws)
    assert event["dtstart"].dt == at(TUESDAY, 15, 15)
    before, text = _alarm(event)
    assert before == timedelta(minutes=15)  # fires at 15:00, not yesterday
    assert "today at 15:15" in text and "tomorrow" not in text
    status = ws.status("2006-05-16T15:00")["Acme Corp"]
    assert status["reminder_at"].startswith("2006-05-16T15:15") if "reminder_at" in status \
        else status["reminder"] == "2006-05-16"
    assert status["overdue"] is True

    # later the same afternoon: nothing moves, nothing is written
    body = ws.reminders.read_bytes()
    assert "0 writes" in ws.run("sync", now="2006-05-16T15:40").stdout
    assert ws.reminders.read_bytes() == body

    # the next morning it is history: the consultant was told at 15:00
    status = ws.status("2006-05-17T08:00")["Acme Corp"]
    assert status["last_contact"] == "2006-05-16"


def test_after_the_working_day_the_next_work_day(tmp_path: Path):
    ws = _workspace(tmp_path)
    ws.run("sync", now="2006-05-15T17:30")  # a Monday evening
    (event,) = _ours(ws)
    assert event["dtstart"].dt == at(date(2006, 5, 16), 9, 30)
    before, text = _alarm(event)
    fires = event["dtstart"].dt - before  # a day ahead has passed: as soon as possible
    assert at(date(2006, 5, 15), 17, 30) <= fires < at(date(2006, 5, 15), 17, 31)
    assert "tomorrow at 09:30" in text
    assert ws.status("2006-05-15T17:30")["Acme Corp"]["reminder"] == "2006-05-16"


def test_friday_evening_reminder_on_monday(tmp_path: Path):
    ws = _workspace(tmp_path)
    ws.run("sync", now="2006-05-19T17:30")
    (event,) = _ours(ws)
    assert event["dtstart"].dt == at(date(2006, 5, 22), 9, 30)
    before, text = _alarm(event)
    assert before == timedelta(days=1) and "tomorrow at 09:30" in text  # fires on Sunday


def test_latest_is_configurable(tmp_path: Path):
    ws = _workspace(tmp_path, reminder={"latest": "19:00"})
    ws.run("sync", now="2006-05-16T17:30")
    (event,) = _ours(ws)
    assert event["dtstart"].dt == at(TUESDAY, 17, 45)


def test_google_popup_in_minutes(google_api, tmp_path: Path, monkeypatch):
    """The same placement on Google: one popup, in whole minutes, firing at 15:00."""
    from tests.test_google import credential

    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "google-me").write_text(credential(google_api))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    ws = _workspace(tmp_path, target={"type": "google", "calendar": "Client love",
                                      "credential": "google-me",
                                      "api_base": google_api.base_url})
    ws.run("sync", now="2006-05-16T15:00")
    (cal,) = [c for c in google_api.calendars.values() if c.summary == "Client love"]
    (item,) = google_api.events(cal.id)
    assert item["reminders"] == {"useDefault": False,
                                 "overrides": [{"method": "popup", "minutes": 15}]}
    assert item["start"]["dateTime"].startswith("2006-05-16T15:15")
    assert "0 writes" in ws.run("sync", now="2006-05-16T15:40").stdout


def test_an_evening_reminder_for_tomorrow_stays_as_written():
    """Due today, placed after the working day on tomorrow's slot: later cycles that evening
    and after midnight keep it, alarm included (found by the clock scenarios' oracle)."""
    first = place(TUESDAY, at(TUESDAY, 17, 0), RULE)
    assert (first.start, first.alarm_before) == (at(TUESDAY + timedelta(1), 9, 30),
                                                 timedelta(hours=16, minutes=30))
    for later in (at(TUESDAY, 17, 5), at(TUESDAY, 23, 55)):
        assert place(TUESDAY, later, RULE, (first.start, first.alarm_before)) == first
    wednesday = TUESDAY + timedelta(1)
    assert place(wednesday, at(wednesday, 0, 5), RULE, (first.start, first.alarm_before)) == first


def test_alarm_across_a_clock_change_is_exact():
    """Cairo's clocks go from 00:00 to 01:00 on Friday 2026-04-24: a reminder for 09:30 that
    Friday written on Thursday at 23:45 is 8 h 45 min away, not 9 h 45 min of wall clock."""
    cairo = ZoneInfo("Africa/Cairo")
    rule = SlotRule(time(9, 30), time(17, 0), timedelta(days=1), frozenset(range(5)), cairo)
    now = datetime(2026, 4, 23, 23, 45, tzinfo=cairo)
    spot = place(date(2026, 4, 24), now, rule)
    assert spot.start == datetime(2026, 4, 24, 9, 30, tzinfo=cairo)
    assert spot.alarm_before == timedelta(hours=8, minutes=45)
    assert when_text(spot.start, spot.alarm_before, cairo) == "tomorrow at 09:30"  # fires Thu
