"""What expanding recurrences may cost, counted from inside dateutil's own loop.

A hostile or merely careless series (every second since 1990, or a rule that walks to the
year 9999 looking for 30 February) must cost only itself: its event is skipped with a
warning and the cycle goes on. Counting occurrences is not enough, since dateutil can spin
for minutes without yielding one, so the meter counts the periods, days and passes dateutil
works through, and a clock bounds the rest.
"""

from __future__ import annotations

import time as clock
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FunctionType, MethodType

import dateutil.rrule

#: What expanding recurrences may cost, in steps (see :class:`Meter`: dateutil's periods,
#: the days and times it looks at, the values it yields), per event and per source, and in
#: seconds of expansion. A step is about a microsecond; real series take a few thousand.
#: Past a budget the event is skipped with a warning: a rule every second since 1990 (or one
#: that walks to the year 9999 without an occurrence) must not hold up the cycle.
EVENT_STEPS = 400_000
SOURCE_STEPS = 5_000_000
EVENT_SECONDS = 5.0
SOURCE_SECONDS = 20.0


@dataclass(slots=True)
class ReadBudget:
    """What the recurrence expansion of one source may cost, per event and in all.

    Steps are counted inside dateutil's loop (see :class:`Meter`), so a rule that walks to
    the year 9999 without one occurrence costs as much as one that yields every step; seconds
    are those spent expanding (not waiting for a server). A CalDAV source reads object by
    object: one budget serves all its reads, so a few hundred hostile objects cannot add up.
    """

    event_steps: int = field(default_factory=lambda: EVENT_STEPS)
    steps: int = field(default_factory=lambda: SOURCE_STEPS)
    event_seconds: float = field(default_factory=lambda: EVENT_SECONDS)
    seconds: float = field(default_factory=lambda: SOURCE_SECONDS)
    spent_steps: int = 0
    spent_seconds: float = 0.0


class OverBudget(Exception):
    """An event's expansion went past its budget or its source's; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: Weights of what dateutil does, in steps (about a microsecond each on a 2-core machine).
_VALUE_STEPS = 2  # one value a rule yields and the reader compares to the window
_PERIOD_STEPS = 4  # one period (a year, a month, a week, a day, an hour...) dateutil builds
_DAYS_PER_STEP = 8  # the days of a period dateutil filters by BYxxx, per BYSETPOS entry
_REBUILD_STEPS = 8  # a new month or year: dateutil rebuilds its masks
_TICKS_PER_STEP = 4  # passes of dateutil's search for the next valid time of a sub-daily rule

#: Steps between two looks at the clock (each value looks too: it may cost a zone lookup).
_CLOCK_EVERY = 4096


class Meter:
    """The budget of one event's expansion, charged from inside dateutil's loop.

    Every RRULE of the event is rebuilt (:meth:`metered`) to run dateutil's own ``_iter``
    code with two names swapped: its per-period helper (``_iterinfo``, called once per
    period with the days the period spans) and ``divmod`` (called on every pass of its
    search for the next valid time of a sub-daily rule, the loop that spins without
    yielding). So the count is of the work done, not only of the occurrences produced, and
    past the budget :class:`OverBudget` ends the walk wherever it is.
    """

    __slots__ = (
        "_iter",
        "budget",
        "check_at",
        "deadline",
        "deadline_is_event",
        "limit",
        "limit_is_event",
        "spent",
        "started",
        "ticks",
    )

    def __init__(self, budget: ReadBudget) -> None:
        self.budget = budget
        self.spent = 0
        self.ticks = 0
        left = budget.steps - budget.spent_steps
        self.limit = min(budget.event_steps, left)
        self.limit_is_event = budget.event_steps <= left
        self.check_at = min(self.limit + 1, _CLOCK_EVERY)
        self.started = clock.monotonic()
        time_left = budget.seconds - budget.spent_seconds
        self.deadline = self.started + min(budget.event_seconds, time_left)
        self.deadline_is_event = budget.event_seconds <= time_left
        self._iter: FunctionType | None = None

    def charge(self, steps: int) -> None:
        self.spent += steps
        if self.spent >= self.check_at:
            self.check()

    def value(self) -> None:
        """One value yielded: charged, and the clock looked at."""
        self.spent += _VALUE_STEPS
        if self.spent >= self.check_at or clock.monotonic() >= self.deadline:
            self.check()

    def divmod(self, a: int, b: int) -> tuple[int, int]:
        self.ticks += 1
        if self.ticks == _TICKS_PER_STEP:
            self.ticks = 0
            self.charge(1)
        return divmod(a, b)

    def check(self) -> None:
        if self.spent > self.limit:
            if self.limit_is_event:
                raise OverBudget(f"its recurrence needs over {self.budget.event_steps} steps "
                                  "to expand (the budget of one event)")
            raise OverBudget(f"the source's budget of {self.budget.steps} recurrence steps "
                              "is spent")
        if clock.monotonic() >= self.deadline:
            if self.deadline_is_event:
                raise OverBudget(f"its recurrence took over {self.budget.event_seconds:g} s "
                                  "to expand (the budget of one event)")
            raise OverBudget(f"the source's {self.budget.seconds:g} s for recurrences "
                              "are spent")
        self.check_at = min(self.limit + 1, self.spent + _CLOCK_EVERY)

    def close(self) -> None:
        """Book what this event spent on its source's budget (the time only of an event with
        a rule: a hundred thousand single events must not use up the time of the series)."""
        if self.spent:
            self.budget.spent_steps += self.spent
            self.budget.spent_seconds += clock.monotonic() - self.started

    def metered(self, rule: dateutil.rrule.rrule) -> dateutil.rrule.rrule:
        """A copy of ``rule`` without cache whose iteration charges this meter."""
        copy = rule.replace(cache=False)
        if self._iter is None:
            names = dict(_RRULE_NAMES)
            names["_iterinfo"] = self.period_info
            names["divmod"] = self.divmod
            code = dateutil.rrule.rrule._iter  # type: ignore[attr-defined]
            self._iter = FunctionType(code.__code__, names, "_iter", code.__defaults__,
                                      code.__closure__)
        copy._iter = MethodType(self._iter, copy)  # type: ignore[attr-defined]
        copy._rrule__mod_distance = self.distance(  # type: ignore[attr-defined]
            copy._rrule__mod_distance)  # type: ignore[attr-defined]
        return copy

    def distance(self, original: Callable[[int, set, int], tuple]) -> Callable:
        """dateutil's step to the next valid hour, minute or second, charged for the most
        passes it makes (one per unit of ``base``)."""

        def counted(value: int, byxxx: set, base: int) -> tuple:
            self.charge(1 + base // (2 * _TICKS_PER_STEP))
            return original(value, byxxx, base)

        return counted

    def period_info(self, rule: dateutil.rrule.rrule) -> _MeteredInfo:
        return _MeteredInfo(rule, self)


#: The names dateutil's rule iteration runs with; :meth:`Meter.metered` swaps two of them.
_RRULE_NAMES = vars(dateutil.rrule)


class _MeteredInfo(dateutil.rrule._iterinfo):
    """dateutil's per-period helper, charging each period by the days dateutil will filter."""

    def __init__(self, rule: dateutil.rrule.rrule, meter: Meter) -> None:
        super().__init__(rule)
        self.meter = meter
        self.per_day = 1 + len(rule._bysetpos or ())  # type: ignore[attr-defined]

    def rebuild(self, year: int, month: int) -> None:
        self.meter.charge(_REBUILD_STEPS)
        super().rebuild(year, month)

    def _charged(self, found: tuple) -> tuple:
        _, start, end = found
        self.meter.charge(_PERIOD_STEPS + (end - start) * self.per_day // _DAYS_PER_STEP)
        return found

    def ydayset(self, year, month, day):
        return self._charged(super().ydayset(year, month, day))

    def mdayset(self, year, month, day):
        return self._charged(super().mdayset(year, month, day))

    def wdayset(self, year, month, day):
        return self._charged(super().wdayset(year, month, day))

    def ddayset(self, year, month, day):
        return self._charged(super().ddayset(year, month, day))
