"""Clock and time-zone scenarios (tests/scenarios_clock.py) with CI-sized parameters.

``CLIENTLOVE_SOAK=1`` runs the larger variants (every day from ten days before to ten days
after each clock change through the CLI too, many more jumps and rounds).
"""

from __future__ import annotations

import os
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.scenarios_clock import (
    DAY_TIMES,
    ZONES,
    CliWorkspace,
    ClockResult,
    Meeting,
    add_months,
    alarms_of,
    dst_changes,
    ics_history,
    reference_alarm,
    reference_plan,
    reference_start,
    run_clock_and_zones,
    run_clock_jumps,
    run_mass_change_guard,
    run_need_marker_quoted,
    run_two_instances,
    writes_of,
)

SOAK = os.environ.get("CLIENTLOVE_SOAK") == "1"


def size(ci: int, soak: int) -> int:
    return soak if SOAK else ci


def assert_clean(result: ClockResult) -> None:
    """Print the figures (``-s`` shows them) and fail listing the violations."""
    print(f"\n{result.name}: {result.cycles} cycles, {result.faults} faults, "
          f"{result.handled} handled, {result.crashes} crashes, "
          f"{len(result.violations)} violations")
    for note in result.notes[:10]:
        print(f"  note: {note}")
    assert result.violations == [], "\n".join(result.violations[:40])


# -- the reference itself --------------------------------------------------------------------


def test_reference_counter_matches_the_seed_example():
    """docs/design.md section 3's worked example, through the scenarios' own reference."""
    contacts = [date(2006, 1, 2), date(2006, 1, 9), date(2006, 1, 23), date(2006, 2, 20),
                date(2006, 4, 17)]
    expected = [date(2006, 1, 9), date(2006, 1, 23), date(2006, 2, 20), date(2006, 4, 17),
                date(2006, 6, 19)]
    for n, due in enumerate(expected, start=1):
        assert reference_plan(contacts[:n], [], contacts[n - 1]).due == due
    plan = reference_plan(contacts, [date(2006, 6, 1)], date(2006, 4, 18))
    assert plan.booked == date(2006, 6, 1) and plan.reminder is None
    assert add_months(date(2026, 12, 31), 2) == date(2027, 2, 28)


def test_clock_changes_are_found_in_the_tz_database():
    london = dst_changes("Europe/London")
    assert [(c.day, c.kind, c.odd) for c in london] == [
        (date(2026, 3, 29), "gap", time(1, 30)), (date(2026, 10, 25), "fold", time(1, 30))]
    santiago = dst_changes("America/Santiago")
    assert [(c.day, c.kind, c.odd) for c in santiago] == [
        (date(2026, 4, 4), "fold", time(23, 30)), (date(2026, 9, 6), "gap", time(0, 30))]
    assert {c.kind for c in dst_changes("Asia/Kolkata")} == {"none"}


def test_reference_placement():
    """The scenarios' own placement rule on the issue's examples (a Tuesday in London)."""
    tz = ZoneInfo("Europe/London")
    tuesday = date(2006, 5, 16)

    def at(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
        return datetime.combine(day, time(hh, mm, ss), tzinfo=tz)

    wednesday = tuesday + timedelta(days=1)
    assert reference_start(tuesday, at(tuesday, 9, 15), tz) == at(tuesday, 9, 30)
    assert reference_start(tuesday, at(tuesday, 15, 0), tz) == at(tuesday, 15, 15)
    assert reference_start(tuesday, at(tuesday, 15, 0, 1), tz) == at(tuesday, 15, 30)
    assert reference_start(tuesday, at(tuesday, 16, 45), tz) == at(tuesday, 17, 0)
    assert reference_start(tuesday, at(tuesday, 16, 46), tz) == at(wednesday, 9, 30)
    friday = date(2006, 5, 19)
    assert reference_start(friday, at(friday, 18), tz) == at(date(2006, 5, 22), 9, 30)
    assert reference_alarm(at(wednesday, 9, 30), at(tuesday, 8), tz) == timedelta(days=1)
    assert reference_alarm(at(tuesday, 15, 15), at(tuesday, 15), tz) == timedelta(minutes=15)
    assert reference_alarm(at(tuesday, 15, 30), at(tuesday, 15, 0, 1), tz) == \
        timedelta(minutes=29)
    assert reference_alarm(at(tuesday, 9, 30), at(tuesday, 9, 40), tz) == timedelta(0)


# -- two placement bugs the scenarios' oracle found (fixed) ---------------------------------


def test_an_evening_pushed_reminder_is_not_rewritten_every_cycle(tmp_path: Path):
    """Due today, synced after the working day: the reminder goes to tomorrow's slot and
    stays as written while the service keeps running through the evening."""
    tz = ZoneInfo("Europe/London")
    ws = CliWorkspace(tmp_path, "Europe/London", clients=("Acme Corp",))
    ws.write_history(ics_history([Meeting("m@clock.test", "Acme Corp", date(2006, 5, 1),
                                          time(10))], tz))
    assert ws.invoke("sync", now="2006-05-16T17:00").exit_code == 0
    (first,) = ws.events()
    assert first["dtstart"].dt == datetime(2006, 5, 17, 9, 30, tzinfo=tz)
    assert alarms_of(first) == [timedelta(hours=16, minutes=30)]
    for now in ("2006-05-16T17:05", "2006-05-16T21:00", "2006-05-16T23:55"):
        synced = ws.invoke("sync", now=now)
        assert synced.exit_code == 0 and writes_of(synced.stdout) == 0, (now, synced.stdout)
    (event,) = ws.events()
    assert (event["dtstart"].dt, alarms_of(event)) == (first["dtstart"].dt, alarms_of(first))


def test_alarm_as_soon_as_possible_across_a_clock_change(tmp_path: Path):
    """Cairo moves its clocks on a Friday (2026-04-24, 00:00 -> 01:00): a reminder for that
    Friday's slot written on Thursday at 23:45 alarms 8 h 45 min ahead, from the cycle on."""
    ws = CliWorkspace(tmp_path, "Africa/Cairo", clients=("Acme Corp",))
    ws.write_history(ics_history([], ZoneInfo("Africa/Cairo")))
    assert ws.invoke("sync", now="2026-04-23T23:45").exit_code == 0
    (event,) = ws.events()
    assert event["dtstart"].dt == datetime(2026, 4, 24, 9, 30, tzinfo=ZoneInfo("Africa/Cairo"))
    assert alarms_of(event) == [timedelta(hours=8, minutes=45)]


# -- scenario 1: clock and zones -------------------------------------------------------------


@pytest.mark.parametrize("zone", ZONES)
def test_clock_and_zones_memory(zone: str, tmp_path: Path):
    """Every day from ten days before to ten after each change, five times a day."""
    result = run_clock_and_zones(tmp_path, zones=(zone,), targets=("memory",),
                                 days_around=10, times=DAY_TIMES)
    assert result.cycles >= 2 * 21 * len(DAY_TIMES)
    assert_clean(result)


@pytest.mark.parametrize("zone", ZONES)
def test_clock_and_zones_ics_through_the_cli(zone: str, tmp_path: Path):
    """``clientlove sync`` and ``status --json`` with ``--now`` around each change."""
    times = DAY_TIMES if SOAK else (time(0, 30), time(1, 30), time(2, 30), time(9, 30))
    result = run_clock_and_zones(tmp_path, zones=(zone,), targets=("ics",),
                                 days_around=size(4, 10), times=times)
    assert result.cycles >= 2 * 5 * 4
    assert_clean(result)


# -- scenario 2: clock jumps -----------------------------------------------------------------


@pytest.mark.parametrize(("target", "rounds"), [("memory", size(6, 40)), ("ics", size(3, 8))])
def test_clock_jumps(target: str, rounds: int, tmp_path: Path):
    result = run_clock_jumps(tmp_path, targets=(target,), rounds=rounds)
    assert_clean(result)


NEED_QUOTED = (
    "daemon bug: a reminder whose prep note quotes a '#need' contact ('Last contact: <day> "
    "<title>' or 'Last conversation: <description>') counts, once past, as another reset "
    "instead of an on-schedule check-in: prepnote.user_text only strips the 'Counter help' "
    "line, so cycle.plan_all -> attribution.reminder_interactions finds the quoted marker"
)



def test_clock_jumps_with_need_markers(tmp_path: Path):
    result = run_clock_jumps(tmp_path, targets=("memory",), rounds=size(6, 40), resets=True)
    assert_clean(result)



def test_need_marker_quoted_in_a_prep_note_is_not_a_reset():
    assert_clean(run_need_marker_quoted())


# -- scenario 3: two instances ---------------------------------------------------------------


def test_two_instances_caldav(radicale, tmp_path: Path):
    result = run_two_instances("caldav", radicale, tmp_path, rounds=size(20, 100))
    assert_clean(result)


def test_two_instances_google(google_api, tmp_path: Path):
    result = run_two_instances("google", google_api, tmp_path, rounds=size(20, 100))
    assert_clean(result)


# -- scenario 4: the mass-change guard -------------------------------------------------------


@pytest.mark.parametrize("kind", ["ics-source", "ics-target", "ics-target-missing"])
def test_mass_change_guard_ics(kind: str, tmp_path: Path):
    result = run_mass_change_guard(tmp_path, kind)
    assert_clean(result)
    assert (result.faults, result.handled) == (1, 1), "the refusal counts as handled"


def test_mass_change_guard_caldav_target(radicale, tmp_path: Path):
    result = run_mass_change_guard(tmp_path, "caldav-target", dav=radicale)
    assert_clean(result)
    assert (result.faults, result.handled) == (1, 1), "the refusal counts as handled"


INCREMENTAL_EMPTY = (
    "daemon bug: the source guard (cycle.read_sources) only looks at full reads "
    "(changes.full and not changes.upserted); a source read incrementally whose every event "
    "was deleted (CalDAV sync-collection, Google sync token) returns a delta deleting "
    "everything and the cycle acts on the empty history"
)



def test_mass_change_guard_caldav_source_emptied(radicale, tmp_path: Path):
    assert_clean(run_mass_change_guard(tmp_path, "caldav-source", dav=radicale))



def test_mass_change_guard_google_source_emptied(google_api, tmp_path: Path):
    assert_clean(run_mass_change_guard(tmp_path, "google-source", google=google_api))
