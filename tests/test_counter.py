"""The contact counter of docs/design.md section 3, replayed over dates."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.counter import CounterRule, following_interval, merge_by_day, replay
from daemon.durations import Span
from daemon.model import Interaction
from daemon.planning import next_workday, plan_client

RULE = CounterRule(base_days=7, max=Span(months=2), early_days=2)
WORKDAYS = frozenset(range(5))


def met(*days: date, reset: set[date] = frozenset()) -> list[Interaction]:
    return [Interaction(d, f"meeting {d}", reset=d in reset) for d in days]


def test_seed_example_replays_exactly():
    """Met 2006-01-02, then fine check-ins on each due date: 01-09, 01-23, 02-20, 04-17, 06-19."""
    history = [date(2006, 1, 2)]
    expected = [date(2006, 1, 9), date(2006, 1, 23), date(2006, 2, 20), date(2006, 4, 17),
                date(2006, 6, 19)]
    for due in expected:
        today = history[-1]
        plan = plan_client("Acme", met(*history), [], RULE, today, workdays=WORKDAYS)
        assert plan.due == due
        history.append(due)


def test_two_month_cap_is_calendar_months_then_workday():
    state = replay(met(date(2006, 1, 2), date(2006, 1, 9), date(2006, 1, 23),
                       date(2006, 2, 20), date(2006, 4, 17)), RULE)
    assert state.due == date(2006, 6, 17)  # a Saturday: two calendar months, not 56 days
    assert state.interval_days == 61
    assert next_workday(state.due, WORKDAYS) == date(2006, 6, 19)


def test_first_interaction_gives_base():
    state = replay(met(date(2026, 3, 4)), RULE)
    assert (state.interval_days, state.due) == (7, date(2026, 3, 11))


def test_early_check_in_within_two_days_still_doubles():
    state = replay(met(date(2026, 3, 2), date(2026, 3, 7)), RULE)  # gap 5 = 7 - 2
    assert state.interval_days == 14


def test_busy_project_holds_the_interval():
    days = [date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 12), date(2026, 3, 14)]
    state = replay(met(*days), RULE)
    assert [s.why for s in state.steps] == ["first", "doubled", "held", "held"]
    assert state.interval_days == 14
    assert state.due == date(2026, 3, 28)


def test_reset_marker_goes_back_to_base():
    days = [date(2026, 1, 5), date(2026, 1, 12), date(2026, 1, 26), date(2026, 2, 23)]
    state = replay(met(*days, reset={date(2026, 2, 23)}), RULE)
    assert state.steps[-1].why == "reset"
    assert state.interval_days == 7


def test_announcement_resets_first_interaction_on_or_after_it():
    days = [date(2026, 1, 5), date(2026, 1, 12), date(2026, 1, 26), date(2026, 2, 23)]
    state = replay(met(*days), RULE, announcements=[date(2026, 2, 1)])
    assert [s.why for s in state.steps] == ["first", "doubled", "doubled", "announcement"]
    assert state.interval_days == 7


def test_several_interactions_on_one_date_are_one():
    items = [Interaction(date(2026, 1, 5), "call"), Interaction(date(2026, 1, 5), "lunch",
                                                                 reset=True)]
    merged = merge_by_day(items)
    assert len(merged) == 1 and merged[0].reset


def test_never_contacted_has_no_interval():
    state = replay([], RULE)
    assert state.last is None and state.interval_days is None and state.due is None


@pytest.mark.parametrize(
    ("last", "expected"),
    [(date(2026, 1, 31), date(2026, 3, 31)), (date(2025, 12, 31), date(2026, 2, 28))],
)
def test_max_uses_month_arithmetic_at_month_ends(last, expected):
    assert RULE.max.after(last) == expected


# -- properties ---------------------------------------------------------------------------

dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 12, 31))
gaps = st.lists(st.integers(min_value=0, max_value=120), min_size=0, max_size=40)


@st.composite
def histories(draw):
    start = draw(dates)
    days = [start]
    for gap in draw(gaps):
        days.append(days[-1] + timedelta(days=gap))
    resets = draw(st.sets(st.sampled_from(days)))
    return met(*days, reset=resets)


@given(histories())
def test_interval_stays_within_base_and_max(history):
    state = replay(history, RULE)
    for step in state.steps:
        assert RULE.base_days <= step.interval_days <= RULE.cap_days(step.day)
    assert state.due <= RULE.max.after(state.last)


@given(histories(), st.integers(min_value=0, max_value=200))
def test_a_reset_always_gives_base(history, gap):
    last = max(i.day for i in history)
    state = replay([*history, Interaction(last + timedelta(days=gap), "x", reset=True)], RULE)
    assert state.interval_days == RULE.base_days


@given(histories())
def test_an_on_schedule_fine_check_in_doubles(history):
    before = replay(history, RULE)
    on_time = before.due
    after = replay([*history, Interaction(on_time, "check-in")], RULE)
    assert after.interval_days == min(2 * before.interval_days, RULE.cap_days(on_time))
    # never shorter, except that two calendar months measured from a later date can be a day
    # or two fewer (62 days from 31 July, 61 from 30 September)
    assert after.interval_days >= min(before.interval_days, RULE.cap_days(on_time))


# -- the day's last conversation -----------------------------------------------------------

LONDON = ZoneInfo("Europe/London")


def at(hour: int, zone=LONDON) -> datetime:
    return datetime(2026, 1, 5, hour, tzinfo=zone)


@pytest.mark.parametrize("order", [1, -1])
def test_merge_quotes_the_latest_real_meeting_whatever_the_input_order(order):
    items = [
        Interaction(date(2026, 1, 5), "Client love call", ours=True, at=at(18)),
        Interaction(date(2026, 1, 5), "Workshop (all day)", "agenda"),
        Interaction(date(2026, 1, 5), "Kick-off", "scope", at=at(10)),
        Interaction(date(2026, 1, 5), "Follow-up", "Jane asked for a plan", reset=True,
                    at=at(16)),
        Interaction(date(2026, 1, 5), "", "", at=at(17)),  # nothing to quote
        Interaction(date(2026, 1, 5), "Call with NYC", "budget", at=at(9, ZoneInfo(
            "America/New_York"))),  # 14:00 in London: before 16:00
    ][::order]
    (merged,) = merge_by_day(items)
    assert (merged.title, merged.description) == ("Follow-up", "Jane asked for a plan")
    assert merged.reset and not merged.ours


def test_merge_of_our_reminders_only_stays_ours():
    items = [Interaction(date(2026, 1, 5), "Client love call", ours=True),
             Interaction(date(2026, 1, 5), "Client love call", ours=True, reset=True)]
    (merged,) = merge_by_day(items)
    assert merged.ours and merged.reset and merged.title == "Client love call"


# -- the interval that follows a fine contact ----------------------------------------------------


def test_following_interval_after_an_announcement_is_base():
    days = [date(2006, 1, 2), date(2006, 1, 9), date(2006, 1, 23), date(2006, 2, 20),
            date(2006, 4, 17)]
    state = replay(met(*days), RULE)
    assert state.interval_days == 61
    assert following_interval(state, RULE, date(2006, 5, 1), [date(2006, 5, 1)]) == 7
    assert following_interval(state, RULE, date(2006, 5, 1), [date(2006, 5, 2)]) == 61
    assert following_interval(state, RULE, date(2006, 6, 19), [date(2006, 4, 17)]) == 61


def test_following_interval_early_holds_on_time_doubles_never_met_is_base():
    state = replay(met(date(2026, 1, 5), date(2026, 1, 12)), RULE)  # every 14 days
    assert following_interval(state, RULE, date(2026, 1, 15)) == 14  # 3 < 14 - 2: held
    assert following_interval(state, RULE, date(2026, 1, 24)) == 28  # 12 = 14 - 2: doubled
    assert following_interval(replay([], RULE), RULE, date(2026, 1, 6)) == 7


@given(histories(), st.integers(min_value=0, max_value=150),
       st.lists(st.integers(min_value=-200, max_value=200), max_size=3))
def test_following_interval_is_the_replay_with_one_more_fine_contact(history, gap, news):
    last = max(i.day for i in history)
    day = last + timedelta(days=gap)
    announcements = [last + timedelta(days=n) for n in news]
    state = replay(history, RULE, announcements)
    again = replay([*history, Interaction(day, "fine")], RULE, announcements)
    assert following_interval(state, RULE, day, announcements) == again.interval_days
