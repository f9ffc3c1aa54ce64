"""The doubling contact counter (docs/design.md section 3), as a pure replay over dates.

The interval ``I`` is kept in whole days. ``max`` is in calendar months, so its cap depends
on the date it is measured from: the cap of an interaction on ``d`` is ``max.after(d) - d``.
Keeping ``I`` capped after every step means the on-schedule test (``gap >= I - early``)
compares against the interval that was really in force, and the reported interval always
stays within ``[base, max]``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

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


def merge_by_day(interactions: Iterable[Interaction]) -> list[Interaction]:
    """Several interactions on one date are one; a reset on any of them counts.

    The merged entry quotes one of them, so the prep note names the day's last conversation:
    a real meeting over one of our reminders, one with a title or description over one
    without, then the latest start (all-day events before timed ones).
    """
    by_day: dict[date, list[Interaction]] = defaultdict(list)
    for item in interactions:
        by_day[item.day].append(item)
    merged: list[Interaction] = []
    for day in sorted(by_day):
        items = by_day[day]
        quoted = max(items, key=_quote_rank)
        merged.append(replace(
            quoted,
            reset=any(i.reset for i in items),
            ours=all(i.ours for i in items),
        ))
    return merged


def _quote_rank(item: Interaction) -> tuple[bool, bool, bool, datetime, str, str]:
    """How well an interaction speaks for its day; the text breaks ties, not input order."""
    at = item.at or _NO_TIME
    if at.tzinfo is None:  # floating: read as UTC, only to compare within one day
        at = at.replace(tzinfo=UTC)
    return (not item.ours, bool(item.title or item.description), item.at is not None, at,
            item.title, item.description)


_NO_TIME = datetime.min.replace(tzinfo=UTC)


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
        interval, why = step(rule, prev, interval, item.day, reset=item.reset, news=news)
        steps.append(Step(item.day, interval, why))
        prev = item.day
    assert prev is not None
    due = prev + timedelta(days=interval)
    return CounterState(last=prev, interval_days=interval, due=due, steps=tuple(steps))


def step(rule: CounterRule, prev: date | None, interval: int, day: date, *, reset: bool,
         news: bool) -> tuple[int, str]:
    """One interaction on ``day`` after one on ``prev`` under ``interval`` (rules 1 to 5)."""
    if prev is None:
        interval, why = rule.base_days, "first"
    elif reset:
        interval, why = rule.base_days, "reset"
    elif news:
        interval, why = rule.base_days, "announcement"
    elif (day - prev).days >= interval - rule.early_days:
        interval, why = 2 * interval, "doubled"
    else:
        why = "held"
    return max(rule.base_days, rule.capped(interval, day)), why


def following_interval(
    state: CounterState,
    rule: CounterRule,
    day: date,
    announcements: Sequence[date] = (),
) -> int:
    """The interval that follows if the contact on ``day`` goes fine (the prep note says it).

    Exactly what :func:`replay` makes of the history plus one fine interaction on ``day``:
    the step after ``state``, so an announcement since the last contact resets it, an early
    check-in holds it, the cap is measured from ``day`` and a first contact gives ``base``.
    """
    if state.last is None or state.interval_days is None:
        return rule.base_days
    if day <= state.last:  # merged into the last contact's day: nothing changes
        return state.interval_days
    news = any(state.last < a <= day for a in announcements)
    interval, _ = step(rule, state.last, state.interval_days, day, reset=False, news=news)
    return interval
