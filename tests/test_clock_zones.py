"""Clock and time-zone scenarios (tests/scenarios_clock.py) with CI-sized parameters.

``CLIENTLOVE_SOAK=1`` runs the larger variants (every day from ten days before to ten days
after each clock change through the CLI too, many more jumps and rounds).
"""

from __future__ import annotations

import os
from datetime import date, time
from pathlib import Path

import pytest

from tests.scenarios_clock import (
    DAY_TIMES,
    ZONES,
    ClockResult,
    add_months,
    dst_changes,
    reference_plan,
    run_clock_and_zones,
    run_clock_jumps,
    run_mass_change_guard,
    run_need_marker_quoted,
    run_two_instances,
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
    """DESIGN section 3's worked example, through the scenarios' own reference."""
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
