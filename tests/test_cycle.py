"""The cycle runner on in-memory providers: writes, guards, crashes, failing providers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from daemon.config import parse_config
from daemon.cycle import SOURCE_GUARD_MIN, run_cycle
from daemon.model import Attendee, ChangeSet, Event, PartStat, ReadScope
from daemon.reconcile import Kind
from daemon.retry import Backoff
from daemon.state import SCHEMA_VERSION, State, StateError
from providers.base import AlreadyExists, Transient
from providers.memory import MemorySource, MemoryTarget

TZ = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # a Monday
NO_WAIT = Backoff(attempts=2, base=0.0, cap=0.0)
CLIENTS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli"]


@pytest.fixture
def config(tmp_path: Path):
    return parse_config(
        {
            "timezone": "Europe/London",
            "me": ["me@myfirm.example"],
            "sources": [{"type": "ics", "path": "unused.ics", "name": "work"}],
            "target": {"type": "ics", "path": "unused-out.ics"},
            "clients": [{"name": n, "domains": [f"{n.lower()}.example"]} for n in CLIENTS],
        },
        tmp_path,
    )


@pytest.fixture
def state() -> State:
    return State(":memory:")


def meeting(client: str, day: date, uid: str | None = None) -> Event:
    return Event(source="work", uid=uid or f"{client}-{day}", start=day, summary="Meeting",
                 attendees=(Attendee(f"boss@{client.lower()}.example", PartStat.ACCEPTED),))


def history(n_noise: int = 0) -> list[Event]:
    events = [meeting(c, date(2026, 11, 16)) for c in CLIENTS]
    events += [Event(source="work", uid=f"noise{i}", start=date(2026, 10, 1), summary="Gym")
               for i in range(n_noise)]
    return events


def cycle(config, state, source, target, now=NOW, **kw):
    return run_cycle(config, state, [source], target, now, backoff=NO_WAIT, **kw)


def test_one_reminder_per_due_client_then_nothing(config, state):
    source, target = MemorySource("work", history()), MemoryTarget()
    report = cycle(config, state, source, target)
    assert report.ok and report.writes == len(CLIENTS)
    assert sorted(r.key for r in target.list_ours()) == sorted(f"{c.lower()}.1" for c in CLIENTS)
    again = cycle(config, state, source, target)
    assert again.writes == 0 and all(a.kind is Kind.KEEP for a in again.actions)
    assert target.writes == len(CLIENTS)


def test_source_suddenly_empty_is_refused_until_forced(config, state):
    source, target = MemorySource("work", history(n_noise=SOURCE_GUARD_MIN)), MemoryTarget()
    cycle(config, state, source, target)
    source.set_events([])
    report = cycle(config, state, source, target, now=datetime(2026, 11, 24, 8, tzinfo=UTC))
    assert report.refused and "suddenly returned no events" in report.refused
    assert report.writes == 0 and len(target.list_ours()) == len(CLIENTS)
    forced = cycle(config, state, source, target, now=datetime(2026, 11, 24, 8, tzinfo=UTC),
                   force=True)
    assert forced.refused is None


def test_target_suddenly_empty_is_refused_until_forced(config, state):
    source, target = MemorySource("work", history()), MemoryTarget()
    cycle(config, state, source, target)
    target.objects.clear()
    report = cycle(config, state, source, target)
    assert report.refused and "none of the" in report.refused
    assert report.writes == 0 and target.list_ours() == []
    assert len(state.reminders()) == len(CLIENTS), "nothing forgotten while refusing"
    forced = cycle(config, state, source, target, force=True)
    assert forced.refused is None


def test_crash_after_write_before_state_save_makes_no_duplicate(config, state):
    source, target = MemorySource("work", history()), MemoryTarget()
    report = cycle(config, state, source, target, dry_run=True)
    for action in report.actions:  # the writes happen, then the process dies
        target.create(action.reminder)
    assert state.reminders() == []
    after = cycle(config, state, source, target)
    assert after.writes == 0
    assert len(target.list_ours()) == len(CLIENTS)
    assert len(state.reminders()) == len(CLIENTS), "the state learnt the keys it had missed"


def test_two_instances_on_one_target_keep_one_reminder_each(config, tmp_path):
    source, target = MemorySource("work", history()), MemoryTarget()
    first, second = State(tmp_path / "a.sqlite"), State(tmp_path / "b.sqlite")
    plan_a = cycle(config, first, source, target, dry_run=True)
    cycle(config, second, source, target)
    for action in plan_a.actions:  # the first instance writes what it planned, late
        with pytest.raises(AlreadyExists):  # the conditional create must refuse
            target.create(action.reminder)
    cycle(config, first, source, target)
    assert len(target.list_ours()) == len(CLIENTS)


def test_deleted_pending_reminder_is_a_skip(config, state):
    source, target = MemorySource("work", history()), MemoryTarget()
    cycle(config, state, source, target)
    target.user_delete("acme.1@clientlove")
    report = cycle(config, state, source, target)
    acme = next(p for p in report.plans if p.client == "Acme")
    assert acme.skipped == date(2026, 11, 23) and acme.reminder_day == date(2026, 11, 30)
    keys = {r.key for r in target.list_ours()}
    assert "acme.1" not in keys and "acme.2" in keys


class FlakySource(MemorySource):
    def __init__(self, *args, failures: int = 1, **kw):
        super().__init__(*args, **kw)
        self.failures = failures

    def changes(self, cursor: str | None, scope: ReadScope) -> ChangeSet:
        if self.failures:
            self.failures -= 1
            raise Transient("connection reset", provider=self.name)
        return super().changes(cursor, scope)


def test_transient_source_fault_is_retried(config, state):
    source, target = FlakySource("work", history(), failures=1), MemoryTarget()
    report = cycle(config, state, source, target)
    assert report.ok and report.writes == len(CLIENTS)


def test_source_never_read_means_no_write(config, state):
    source, target = FlakySource("work", history(), failures=99), MemoryTarget()
    report = cycle(config, state, source, target)
    assert not report.ok and report.writes == 0 and target.list_ours() == []
    assert any("connection reset" in e for e in report.errors)


def test_failing_source_after_a_good_read_uses_the_cache(config, state):
    source, target = FlakySource("work", history(), failures=0), MemoryTarget()
    cycle(config, state, source, target)
    source.failures = 99
    report = cycle(config, state, source, target)
    assert report.errors and report.writes == 0
    assert all(p.last_contact is not None for p in report.plans)


def test_state_schema_newer_than_us_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    State(path).db.execute("UPDATE meta SET value=? WHERE name='schema_version'",
                           (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StateError, match="newer"):
        State(path)


def test_state_is_not_a_database(tmp_path):
    path = tmp_path / "s.sqlite"
    path.write_text("not sqlite at all, just text " * 100)
    with pytest.raises(StateError):
        State(path)
