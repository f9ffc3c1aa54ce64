"""The doubling contact counter (DESIGN section 3), as a pure replay over dates.

The interval ``I`` is kept in whole days. ``max`` is in calendar months, so its cap depends
on the date it is measured from: the cap of an interaction on ``d`` is ``max.after(d) - d``.
Keeping ``I`` capped after every step means the on-schedule test (``gap >= I - early``)
compares against the interval that was really in force, and the reported interval always
stays within ``[base, max]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from daemon.durations import Span
from daemon.model import Interaction

TWO_MONTHS = Span(months=2)


@dataclass(frozen=True, slots=True)
class CounterRule:
    """The counter's settings, in the units the rule works in."""

    base_days: int = 7
    max: Span = TWO_MONTHS
    early_days: int = 2

    def cap_days(self, day: date) -> int:
        """The longest interval allowed from ``day``: ``max`` in calendar months."""
        return (self.max.after(day) - day).days

    def capped(self, interval: int, day: date) -> int:
        return min(interval, self.cap_days(day))


@dataclass(frozen=True, slots=True)
class Step:
    """One interaction as the counter saw it; kept so the status can explain itself."""

    day: date
    interval_days: int
    why: str  # "first", "reset", "announcement", "doubled", "held"


@dataclass(frozen=True, slots=True)
class CounterState:
    """Where the counter stands after the last interaction (all ``None`` when never met)."""

    last: date | None
    interval_days: int | None
    due: date | None
    steps: tuple[Step, ...] = ()

    def next_interval_days(self, rule: CounterRule) -> int:
        """The interval the next on-schedule, fine check-in would give."""
        if self.interval_days is None:
            return rule.base_days
        return 2 * self.interval_days


def merge_by_day(interactions: Iterable[Interaction]) -> list[Interaction]:
    """Several interactions on one date are one; a reset on any of them counts.

    The merged entry keeps the title and description of the latest non-empty one seen,
    preferring a real meeting over one of our reminders, so the prep note can quote it.
    """
    by_day: dict[date, Interaction] = {}
    for item in interactions:
        seen = by_day.get(item.day)
        if seen is None:
            by_day[item.day] = item
            continue
        keep = seen if (seen.title and (item.ours or not seen.ours)) else item
        by_day[item.day] = Interaction(
            day=item.day,
            title=keep.title or seen.title or item.title,
            description=keep.description or seen.description or item.description,
            reset=seen.reset or item.reset,
            ours=seen.ours and item.ours,
        )
    return [by_day[d] for d in sorted(by_day)]


def replay(
    interactions: Iterable[Interaction],
    rule: CounterRule,
    announcements: Sequence[date] = (),
) -> CounterState:
    """Walk a client's interactions in date order and return the counter's state.

    ``announcements`` are dates of news naming this client: the first interaction on or
    after each resets the counter (rule 2).
    """
    days = merge_by_day(interactions)
    if not days:
        return CounterState(last=None, interval_days=None, due=None)
    pending_news = sorted(set(announcements))
    steps: list[Step] = []
    interval = rule.base_days
    prev: date | None = None
    for item in days:
        news = False
        while pending_news and pending_news[0] <= item.day:
            pending_news.pop(0)
            news = prev is not None
        if prev is None:
            interval, why = rule.base_days, "first"
        elif item.reset:
            interval, why = rule.base_days, "reset"
        elif news:
            interval, why = rule.base_days, "announcement"
        elif (item.day - prev).days >= interval - rule.early_days:
            interval, why = 2 * interval, "doubled"
        else:
            why = "held"
        interval = max(rule.base_days, rule.capped(interval, item.day))
        steps.append(Step(item.day, interval, why))
        prev = item.day
    assert prev is not None
    due = prev + timedelta(days=interval)
    return CounterState(last=prev, interval_days=interval, due=due, steps=tuple(steps))
