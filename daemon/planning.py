"""From a client's history to the day a reminder is due (docs/design.md section 3, "Then:").

Order of the adjustments, each a pure step:

1. the counter's due date (or today when never contacted);
2. an announcement not yet followed by contact caps it at the announcement's date;
3. a skipped reminder (deleted before its day, or marked ``#skip``) pushes it to one
   ``base`` after the skip when it would otherwise fall on or before it;
4. a pending reminder the user moved to another day: the contact is due then;
5. overdue (the day so found is before today) becomes today;
6. a day that is not a work day moves forward to the next work day;
7. a future meeting with the client on or before that day means no reminder (booked).

The time of day is not planned here: :mod:`daemon.placement` puts the reminder on its day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from daemon.counter import CounterRule, CounterState, following_interval, merge_by_day, replay
from daemon.model import Interaction

ALL_DAYS = frozenset(range(7))


@dataclass(frozen=True, slots=True)
class News:
    """An announcement as the planner needs it."""

    day: date
    text: str


@dataclass(frozen=True, slots=True)
class ClientPlan:
    """Everything the status, the prep note and the reconcile step need about one client."""

    client: str
    today: date
    counter: CounterState
    due: date
    booked: date | None
    reminder_day: date | None
    last_contact: Interaction | None = None
    news: tuple[News, ...] = ()
    skipped: date | None = None
    notes: tuple[str, ...] = field(default=())
    #: the reminder's start as the target holds it (or as the cycle will write it)
    reminder_at: datetime | None = None
    #: the user moved our pending reminder: it stays where they put it
    moved_by_user: bool = False
    #: the day the contact was due when that day is before today (the contact is late)
    overdue_since: date | None = None
    #: the interval that follows if the contact on ``reminder_day`` goes fine
    following_days: int | None = None

    @property
    def overdue(self) -> bool:
        """The contact is late: its due day (after skips, news and the user's moves) is past."""
        return self.overdue_since is not None


def next_workday(day: date, workdays: frozenset[int]) -> date:
    """``day`` itself when it is a work day, else the next one (at most a week on)."""
    if not workdays:
        return day
    for offset in range(7):
        candidate = day + timedelta(days=offset)
        if candidate.weekday() in workdays:
            return candidate
    return day


def plan_client(
    client: str,
    contacts: Iterable[Interaction],
    future: Iterable[date],
    rule: CounterRule,
    today: date,
    *,
    workdays: frozenset[int] = ALL_DAYS,
    news: Sequence[News] = (),
    skips: Iterable[date] = (),
    moved_to: date | None = None,
) -> ClientPlan:
    """Plan one client's next contact.

    ``contacts`` are interactions on or before today (meetings, and our past reminders);
    ``future`` the dates of meetings after today. ``news`` are the announcements naming
    this client; ``skips`` the days of reminders the user skipped; ``moved_to`` the day the
    user moved our pending reminder to (it stays there, and the contact is due then).
    """
    merged = merge_by_day(c for c in contacts if c.day <= today)
    state = replay(merged, rule, [n.day for n in news])
    last = merged[-1] if merged else None
    notes: list[str] = []

    due = state.due if state.due is not None else today
    if state.due is None:
        notes.append("never contacted")

    pending_news = tuple(n for n in sorted(news, key=lambda n: n.day)
                         if state.last is None or state.last < n.day)
    for item in pending_news:
        if item.day < due:
            due = item.day
            notes.append(f"announcement on {item.day.isoformat()}")

    relevant_skips = [s for s in skips if state.last is None or s > state.last]
    skipped = max(relevant_skips) if relevant_skips else None
    if skipped is not None and due <= skipped:
        due = skipped + timedelta(days=rule.base_days)
        notes.append(f"skipped {skipped.isoformat()}")

    if moved_to is not None:
        due = moved_to
        notes.append(f"moved by you to {moved_to.strftime('%a %Y-%m-%d')}")

    overdue_since = None
    if due < today:
        notes.append(f"overdue since {due.isoformat()}")
        overdue_since = due
        due = today
    shifted = next_workday(due, workdays)
    if shifted != due:
        notes.append(f"moved from {due.strftime('%a %Y-%m-%d')} to a work day")
        due = shifted

    upcoming = sorted(d for d in future if d > today)
    booked = upcoming[0] if upcoming else None
    reminder_day = None if booked is not None and booked <= due else due
    if moved_to is not None:
        reminder_day = moved_to  # the user's reminder stays where they put it
    following = None if reminder_day is None else following_interval(
        state, rule, reminder_day, [n.day for n in news])
    return ClientPlan(
        client=client,
        today=today,
        counter=state,
        due=due,
        booked=booked,
        reminder_day=reminder_day,
        last_contact=last,
        news=pending_news,
        skipped=skipped,
        notes=tuple(notes),
        overdue_since=overdue_since,
        moved_by_user=moved_to is not None,
        following_days=following,
    )
