"""From the counter's due date to the reminder day: announcements, skips, overdue, work days,
booked meetings, never-contacted clients."""

from __future__ import annotations

from datetime import date

from daemon.counter import CounterRule
from daemon.durations import Span
from daemon.model import Interaction
from daemon.planning import News, plan_client

RULE = CounterRule(base_days=7, max=Span(months=2), early_days=2)
WORKDAYS = frozenset(range(5))
MONDAY = date(2026, 11, 23)


def plan(contacts=(), future=(), today=MONDAY, **kw):
    items = [c if isinstance(c, Interaction) else Interaction(c, "met") for c in contacts]
    return plan_client("Acme", items, list(future), RULE, today, workdays=WORKDAYS, **kw)


def test_never_contacted_is_due_today():
    p = plan()
    assert p.due == MONDAY and p.reminder_day == MONDAY and p.counter.interval_days is None
    assert "never contacted" in p.notes


def test_never_contacted_on_a_saturday_moves_to_monday():
    p = plan(today=date(2026, 11, 21))
    assert p.due == MONDAY


def test_overdue_becomes_today():
    p = plan([date(2026, 10, 1)])
    assert p.due == MONDAY and p.overdue


def test_future_meeting_on_or_before_due_means_booked():
    p = plan([date(2026, 11, 20)], future=[date(2026, 11, 26)])
    assert p.due == date(2026, 11, 27)
    assert p.booked == date(2026, 11, 26)
    assert p.reminder_day is None


def test_future_meeting_after_due_still_gets_a_reminder():
    p = plan([date(2026, 11, 20)], future=[date(2026, 12, 15)])
    assert p.booked == date(2026, 12, 15) and p.reminder_day == date(2026, 11, 27)


def test_meeting_today_is_contact_not_booked():
    p = plan([date(2026, 11, 16), MONDAY])
    assert p.last_contact.day == MONDAY and p.booked is None


def test_announcement_caps_due_when_not_contacted_since():
    news = [News(date(2026, 11, 25), "New product: the Widget 2")]
    p = plan([date(2026, 11, 20), date(2026, 11, 6)], news=news)
    assert p.due == date(2026, 11, 25)
    assert p.news == tuple(news)


def test_announcement_already_followed_by_contact_is_done():
    news = [News(date(2026, 11, 10), "old news")]
    p = plan([date(2026, 11, 20)], news=news)
    assert p.news == () and p.due == date(2026, 11, 27)


def test_skipped_reminder_pushes_the_next_one_base_later():
    p = plan([date(2026, 11, 13)], skips=[date(2026, 11, 20)])
    assert p.due == date(2026, 11, 27)


def test_skip_before_last_contact_is_ignored():
    p = plan([date(2026, 11, 20)], skips=[date(2026, 11, 13)])
    assert p.due == date(2026, 11, 27)


def test_reset_in_a_meeting_description():
    contacts = [date(2026, 9, 1), date(2026, 9, 8), date(2026, 9, 22), date(2026, 10, 20),
                Interaction(date(2026, 11, 16), "call", "they need help #NEED", reset=True)]
    p = plan(contacts)
    assert p.counter.interval_days == 7 and p.due == date(2026, 11, 23)
