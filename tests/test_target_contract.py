"""The Target contract of ``providers/base.py``, run against every target provider."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest

from daemon.identity import reminder_hash
from daemon.model import Reminder, RemoteReminder
from providers.base import (
    AlreadyExists,
    NotFound,
    PreconditionFailed,
    ProviderError,
    TargetLimits,
    Write,
)
from tests.harness import (
    CalDavHarness,
    GoogleHarness,
    IcsHarness,
    MemoryHarness,
    TargetHarness,
)

TZ = ZoneInfo("Europe/London")
NOTE = "Client love for Acme Corp.\nLast conversation: «Café», naïve résumé; commas, semis;\n" + (
    "a long line " * 20)


@pytest.fixture(params=["memory", "ics", "radicale", "xandikos", "google"])
def harness(request, tmp_path) -> TargetHarness:
    if request.param == "memory":
        return MemoryHarness()
    if request.param == "ics":
        return IcsHarness(tmp_path / "reminders.ics")
    if request.param == "google":
        return GoogleHarness(request.getfixturevalue("google_api"))
    return CalDavHarness(request.getfixturevalue(request.param))


def make(key="acme-corp.1", day=date(2026, 11, 30), note=NOTE,
         alarm_before=timedelta(days=1)) -> Reminder:
    return Reminder(key=key, client="Acme Corp", summary="Client love: Acme Corp",
                    start=datetime(day.year, day.month, day.day, 9, 30, tzinfo=TZ),
                    duration=timedelta(minutes=15), description=note,
                    alarm_before=alarm_before, alarm_text="Client love tomorrow")


def foreign(uid="dentist-1", summary="Dentist") -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", datetime(2026, 1, 1, tzinfo=TZ))
    event.add("dtstart", datetime(2026, 11, 30, 8, 0, tzinfo=TZ))
    event.add("summary", summary)
    event.add("attendee", "mailto:jane.doe@acme.example")
    return event


def test_create_then_list_reads_back_intact(harness):
    target = harness.target()
    rem = make()
    created = target.create(rem)
    target.flush()
    (listed,) = harness.target().list_ours()
    assert listed.key == created.key == rem.key
    assert listed.description.replace("\r\n", "\n").strip() == NOTE.strip()
    assert listed.stored_hash == listed.content_hash == reminder_hash(rem)
    assert not listed.user_edited
    (event,) = [e for e in harness.all_events() if str(e["uid"]) == rem.uid]
    assert "ATTENDEE" not in event and "ORGANIZER" not in event
    (alarm,) = event.walk("VALARM")
    assert alarm["trigger"].dt == -timedelta(days=1)


def test_create_never_overwrites(harness):
    target = harness.target()
    target.create(make())
    target.flush()
    with pytest.raises(AlreadyExists):
        harness.target().create(make(note="other"))


def test_update_is_conditional_on_the_etag(harness):
    target = harness.target()
    target.create(make())
    target.flush()
    target = harness.target()
    (current,) = target.list_ours()
    moved = make(day=date(2026, 12, 1))
    updated = target.update(current, moved)
    target.flush()
    assert updated.etag != current.etag
    (listed,) = harness.target().list_ours()
    assert listed.start.date() == date(2026, 12, 1) and not listed.user_edited
    with pytest.raises(PreconditionFailed):
        stale_target = harness.target()
        stale_target.update(current, make(day=date(2026, 12, 2)))


def test_delete_is_conditional_and_reports_missing(harness):
    target = harness.target()
    target.create(make())
    target.flush()
    target = harness.target()
    (current,) = target.list_ours()
    harness.user_edit("acme-corp.1", summary="mine now")
    target = harness.target()
    with pytest.raises(PreconditionFailed):
        target.delete(current)
    (fresh,) = target.list_ours()
    assert fresh.user_edited
    target.delete(fresh)
    target.flush()
    assert harness.target().list_ours() == []
    with pytest.raises(NotFound):
        harness.target().delete(fresh)


def test_foreign_events_are_not_ours_and_stay_untouched(harness):
    harness.put_foreign(foreign())
    harness.put_foreign(foreign("lookalike@clientlove.example", "Client love: fake"))
    before = harness.foreign_fingerprints()
    target = harness.target()
    assert target.list_ours() == []
    target.create(make())
    target.create(make("globex.1"))
    target.flush()
    target = harness.target()
    for remote in target.list_ours():
        target.delete(remote)
    target.flush()
    assert harness.foreign_fingerprints() == before


def test_user_edit_is_seen(harness):
    target = harness.target()
    target.create(make())
    target.flush()
    harness.user_edit("acme-corp.1", dtstart=datetime(2026, 12, 3, 15, 0, tzinfo=TZ))
    (listed,) = harness.target().list_ours()
    assert listed.user_edited


def test_user_delete_is_seen(harness):
    target = harness.target()
    target.create(make())
    target.create(make("globex.1"))
    target.flush()
    harness.user_delete("acme-corp.1")
    assert [r.key for r in harness.target().list_ours()] == ["globex.1"]


# -- issue 12.1: one instance for the service's life, others writing beside it ---------------

def test_a_reused_instance_keeps_what_others_wrote_between_cycles(harness):
    harness.put_foreign(foreign())
    target = harness.target()  # one instance, as `clientlove run` keeps it
    target.list_ours()
    target.create(make())
    target.flush()
    # between two cycles someone else adds an event and edits one of theirs
    harness.put_foreign(foreign("lunch-2", "Lunch with Jane"))
    harness.edit_foreign("dentist-1", "Dentist (moved)")
    before = harness.foreign_fingerprints()
    assert len(before) == 2
    (current,) = target.list_ours()  # the next cycle
    target.update(current, make(day=date(2026, 12, 1)))
    target.create(make("globex.1"))
    target.flush()
    assert harness.foreign_fingerprints() == before
    listed = {r.key: r for r in harness.target().list_ours()}
    assert sorted(listed) == ["acme-corp.1", "globex.1"]
    assert listed["acme-corp.1"].start.date() == date(2026, 12, 1)


def test_a_foreign_write_while_we_write_is_kept(harness):
    target = harness.target()
    target.create(make())
    target.flush()
    (current,) = target.list_ours()
    target.update(current, make(day=date(2026, 12, 1)))
    target.create(make("globex.1"))
    harness.put_foreign(foreign("lunch-2", "Lunch with Jane"))  # after our read, before flush
    before = harness.foreign_fingerprints()
    target.flush()
    assert harness.foreign_fingerprints() == before
    listed = {r.key: r for r in harness.target().list_ours()}
    assert sorted(listed) == ["acme-corp.1", "globex.1"]
    assert listed["acme-corp.1"].start.date() == date(2026, 12, 1)


def test_a_user_edit_of_ours_while_we_write_wins(harness):
    target = harness.target()
    target.create(make())
    target.flush()
    (current,) = target.list_ours()
    harness.user_edit("acme-corp.1", summary="mine now")
    with pytest.raises(PreconditionFailed):  # at the update, or at the flush of a file
        target.update(current, make(day=date(2026, 12, 1)))
        target.flush()
    (listed,) = harness.target().list_ours()
    assert listed.summary == "mine now" and listed.start.date() == date(2026, 11, 30)
    (again,) = target.list_ours()  # the same instance reads the file as it is
    assert again.summary == "mine now"


# -- issue 12.2: a move changes only what is ours ------------------------------------------------

def test_a_move_keeps_what_the_user_added(harness):
    target = harness.target()
    target.create(make())
    target.flush()
    harness.user_adds_extras("acme-corp.1")
    before = harness.extras("acme-corp.1")
    assert before["alarms"] == [30, 24 * 60]
    target = harness.target()
    (current,) = target.list_ours()
    assert not current.user_edited  # unrelated fields are not an edit of our event
    moved = Reminder(key="acme-corp.1", client="Acme Corp", summary="Client love: Acme Corp",
                     start=datetime(2026, 12, 2, 10, 0, tzinfo=TZ),
                     duration=timedelta(minutes=15), description="A new note",
                     alarm_before=timedelta(days=2), alarm_text="Client love in 2 days")
    target.update(current, moved)
    target.flush()
    (listed,) = harness.target().list_ours()
    assert listed.start == moved.start and listed.description.strip() == "A new note"
    assert listed.alarm_before == timedelta(days=2)
    assert not listed.user_edited and listed.stored_hash == reminder_hash(moved)
    assert harness.extras("acme-corp.1") == {**before, "alarms": [30, 2 * 24 * 60]}
    if harness.name != "google":
        assert "#need" in listed.categories


# -- issue 13: apply, flush, limits, one instance over several cycles ---------------------

def _ours(harness: TargetHarness) -> dict[str, RemoteReminder]:
    """Our reminders as a fresh instance (a new process) lists them."""
    return {r.key: r for r in harness.target().list_ours()}


def test_apply_gives_one_result_per_write_and_returns_errors(harness):
    """Several writes of every kind in one call: a result for each, in order; the failed
    ones are returned as typed errors, never raised, and never stop the others."""
    setup = harness.target()
    for key in ("keep.1", "gone.1", "taken.1", "stale.1", "ghost.1"):
        setup.create(make(key))
    setup.flush()
    listed = _ours(harness)  # what the cycle read; then the user acts before it writes
    harness.user_edit("stale.1", summary="mine now")
    harness.user_delete("ghost.1")
    target = harness.target()
    target.list_ours()
    writes = [
        Write("create", make("new.1")),
        Write("create", make("taken.1", note="other")),
        Write("update", make("keep.1", day=date(2026, 12, 1)), listed["keep.1"]),
        Write("delete", current=listed["gone.1"]),
        Write("update", make("stale.1", day=date(2026, 12, 2)), listed["stale.1"]),
        Write("update", make("ghost.1", day=date(2026, 12, 3)), listed["ghost.1"]),
    ]
    results = target.apply(writes)
    assert len(results) == len(writes)
    created, taken, kept, gone, stale, ghost = results
    assert isinstance(created, RemoteReminder) and created.key == "new.1"
    assert isinstance(taken, AlreadyExists) and not taken.gone
    assert isinstance(kept, RemoteReminder) and kept.key == "keep.1"
    assert kept.start.date() == date(2026, 12, 1) and kept.etag != listed["keep.1"].etag
    assert gone is None
    assert isinstance(stale, PreconditionFailed)
    assert isinstance(ghost, NotFound)
    assert all(r.provider == target.name for r in results if isinstance(r, ProviderError))
    target.flush()
    after = _ours(harness)
    assert sorted(after) == ["keep.1", "new.1", "stale.1", "taken.1"]
    assert after["keep.1"].start.date() == date(2026, 12, 1) and not after["keep.1"].user_edited
    assert after["taken.1"].description.replace("\r\n", "\n").strip() == NOTE.strip()
    assert after["stale.1"].summary == "mine now"


def test_apply_beyond_one_batch_and_of_nothing(harness):
    target = harness.target()
    assert target.apply([]) == []
    count = min(target.limits.batch_size, 50) + 1  # two batches where the target has them
    keys = [f"client-{n}.1" for n in range(count)]
    results = target.apply([Write("create", make(key)) for key in keys])
    assert [r.key for r in results] == keys  # type: ignore[union-attr]
    target.flush()
    assert sorted(_ours(harness)) == sorted(keys)


def test_flush_makes_the_writes_durable(harness):
    target = harness.target()
    target.create(make("keep.1"))
    target.create(make("gone.1"))
    target.flush()
    target = harness.target()
    listed = {r.key: r for r in target.list_ours()}
    target.update(listed["keep.1"], make("keep.1", day=date(2026, 12, 1)))
    target.delete(listed["gone.1"])
    target.create(make("new.1"))
    before = _ours(harness)
    if harness.writes_on_flush:  # nothing reached the calendar yet
        assert sorted(before) == ["gone.1", "keep.1"]
        assert before["keep.1"].start.date() == date(2026, 11, 30)
    else:
        assert sorted(before) == ["keep.1", "new.1"]
    target.flush()
    after = _ours(harness)
    assert sorted(after) == ["keep.1", "new.1"]
    assert after["keep.1"].start.date() == date(2026, 12, 1)


def test_flush_is_a_no_op_when_nothing_changed(harness):
    """A cycle with nothing to write writes nothing: not on a fresh instance, not on one
    that just flushed, not when its only write failed."""
    target = harness.target()
    target.create(make())
    target.flush()
    snapshot = harness.snapshot()
    target.flush()
    assert harness.snapshot() == snapshot
    fresh = harness.target()
    fresh.flush()  # before anything was read
    assert fresh.list_ours() and harness.snapshot() == snapshot
    fresh.flush()
    assert harness.snapshot() == snapshot
    (failed,) = fresh.apply([Write("create", make(note="other"))])
    assert isinstance(failed, AlreadyExists)
    fresh.flush()
    assert harness.snapshot() == snapshot


def test_limits_are_declared_and_a_reminder_within_them_round_trips(harness):
    target = harness.target()
    limits = target.limits
    assert isinstance(limits, TargetLimits)
    assert limits.max_alarms >= 1 and limits.batch_size >= 1
    # the design allows an alarm one or two days ahead: every target must hold that
    assert limits.max_alarm_before >= timedelta(days=2)
    aheads = {"one-day.1": timedelta(days=1), "two-days.1": timedelta(days=2),
              "limit.1": limits.max_alarm_before}
    for key, ahead in aheads.items():
        target.create(make(key, day=date(2027, 3, 1), alarm_before=ahead))
    target.flush()
    listed = _ours(harness)
    for key, ahead in aheads.items():
        assert listed[key].alarm_before == ahead, key
        assert not listed[key].user_edited
        assert listed[key].stored_hash == reminder_hash(
            make(key, day=date(2027, 3, 1), alarm_before=ahead))
    for key in aheads:
        (event,) = [e for e in harness.all_events() if str(e["uid"]) == f"{key}@clientlove"]
        assert 1 == len(event.walk("VALARM")) <= limits.max_alarms


def test_a_reused_instance_sees_another_writer_over_several_cycles(harness):
    """``clientlove run`` keeps one instance; another writer of ours (a second instance, a
    second machine) creates, moves and deletes between its cycles: each ``list_ours``
    shows the calendar as it is then, and writes on what it listed succeed."""
    kept = harness.target()
    assert kept.list_ours() == []  # cycle 1
    kept.create(make("acme.1"))
    kept.flush()
    other = harness.target()
    (acme,) = other.list_ours()
    other.create(make("globex.1"))
    other.update(acme, make("acme.1", day=date(2026, 12, 1)))
    other.flush()
    listed = {r.key: r for r in kept.list_ours()}  # cycle 2
    assert sorted(listed) == ["acme.1", "globex.1"]
    assert listed["acme.1"].start.date() == date(2026, 12, 1)
    assert not listed["acme.1"].user_edited  # another writer of ours is not the user
    kept.update(listed["globex.1"], make("globex.1", day=date(2026, 12, 4)))
    kept.flush()
    other = harness.target()
    (acme,) = [r for r in other.list_ours() if r.key == "acme.1"]
    other.delete(acme)
    other.flush()
    (globex,) = kept.list_ours()  # cycle 3
    assert globex.key == "globex.1" and globex.start.date() == date(2026, 12, 4)
    kept.update(globex, make("globex.1", day=date(2026, 12, 7)))
    kept.create(make("initech.1"))
    kept.flush()
    after = _ours(harness)
    assert sorted(after) == ["globex.1", "initech.1"]
    assert after["globex.1"].start.date() == date(2026, 12, 7)


# -- issue 12, "Done means": a cycle over every target -------------------------------------


def _cycle_config(tmp_path, *names: str):
    from daemon.config import parse_config

    return parse_config({
        "timezone": "Europe/London",
        "sources": [{"type": "ics", "path": "unused.ics", "name": "work"}],
        "target": {"type": "ics", "path": "unused-out.ics"},
        "clients": [{"name": n, "domains": ["acme.example"] if i == 0 else []}
                    for i, n in enumerate(names)],
    }, tmp_path)


def _history():
    from daemon.model import Attendee, Event, PartStat
    from providers.memory import MemorySource

    return MemorySource("work", [Event(
        source="work", uid="m1", start=date(2026, 11, 16), summary="Review",
        attendees=(Attendee("jane@acme.example", PartStat.ACCEPTED),))])


def test_a_user_move_is_left_alone_and_the_status_shows_it(harness, tmp_path):
    """Our cycle writes, the user moves our reminder in their calendar, the next cycles (one
    long-lived target instance, as the service keeps it) leave it where they put it."""
    from daemon.cycle import run_cycle
    from daemon.reconcile import Kind
    from daemon.retry import Backoff
    from daemon.state import State

    config = _cycle_config(tmp_path, "Acme Corp")
    state, source, target = State(":memory:"), _history(), harness.target()
    fast = Backoff(attempts=2, base=0.0, cap=0.0)
    now = datetime(2026, 11, 19, 8, 0, tzinfo=TZ)
    first = run_cycle(config, state, [source], target, now, backoff=fast)
    assert [a.kind for a in first.actions] == [Kind.CREATE] and first.writes == 1
    moved = datetime(2026, 11, 26, 14, 0, tzinfo=TZ)
    (key,) = [r.key for r in harness.target().list_ours()]
    harness.user_edit(key, dtstart=moved, dtend=moved + timedelta(minutes=15))
    for later in (now + timedelta(hours=1), now + timedelta(days=4)):
        report = run_cycle(config, state, [source], target, later, backoff=fast)
        assert report.writes == 0 and [a.kind for a in report.actions] == [Kind.LEAVE]
        (plan,) = report.plans
        assert plan.reminder_at == moved and plan.moved_by_user and not plan.overdue
        assert any("moved by you" in note for note in plan.notes)
    (listed,) = harness.target().list_ours()
    assert listed.start == moved


def test_a_name_of_1000_characters(harness, tmp_path):
    """A 1,000-character client name: one reminder, recognised as ours on the next cycle."""
    from daemon.cycle import run_cycle
    from daemon.retry import Backoff
    from daemon.state import State

    name = ("Société Générale des Très Longs Noms " * 30)[:1000].strip()
    config = _cycle_config(tmp_path, name)
    state, source, target = State(":memory:"), _history(), harness.target()
    fast = Backoff(attempts=2, base=0.0, cap=0.0)
    now = datetime(2026, 11, 19, 8, 0, tzinfo=TZ)
    assert run_cycle(config, state, [source], target, now, backoff=fast).writes == 1
    again = run_cycle(config, state, [source], target, now + timedelta(minutes=15),
                      backoff=fast)
    assert again.writes == 0 and not again.errors, again.errors
    (listed,) = harness.target().list_ours()
    assert len(listed.key) <= 80 and listed.summary.endswith(name)
