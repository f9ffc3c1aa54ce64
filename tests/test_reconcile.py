"""The sync decision table, keys and our iCalendar marks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest

from daemon.identity import key_from_uid, make_key, parse_key, reminder_hash, slug
from daemon.model import Reminder, StoredReminder
from daemon.reconcile import Kind, detect_skips, next_key, reconcile
from daemon.reminder_ical import from_vevent, to_calendar_text, to_vevent

TZ = ZoneInfo("Europe/Berlin")
STAMP = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def reminder(key="acme-corp.1", day=date(2026, 11, 30), text="prep") -> Reminder:
    return Reminder(
        key=key, client="Acme Corp", summary="Client love: Acme Corp",
        start=datetime.combine(day, datetime.min.time().replace(hour=9, minute=30), tzinfo=TZ),
        duration=timedelta(minutes=15), description=text, alarm_before=timedelta(days=1),
        alarm_text="Client love for Acme Corp tomorrow",
    )


def remote(rem: Reminder, **edits):
    event = to_vevent(rem, STAMP)
    for name, value in edits.items():
        del event[name]
        event.add(name, value)
    result = from_vevent(event, ref=rem.uid, etag='"1"')
    assert result is not None
    return result


# -- identity ---------------------------------------------------------------------------------

def test_keys_round_trip_and_foreign_uids_are_not_ours():
    assert slug("Acme Corp, Inc.") == "acme-corp-inc"
    key = make_key("acme-corp", 3)
    assert parse_key(key) == ("acme-corp", 3)
    assert key_from_uid(f"{key}@clientlove") == key
    for foreign in ("abc@google.com", "acme-corp.3@clientlove.evil", "x@clientlove", ""):
        assert key_from_uid(foreign) is None


# -- the VEVENT ---------------------------------------------------------------------------------

def test_vevent_has_our_marks_alarm_and_no_attendee():
    text = to_calendar_text(reminder(), STAMP).decode()
    cal = icalendar.Calendar.from_ical(text)
    (event,) = cal.walk("VEVENT")
    assert event["uid"] == "acme-corp.1@clientlove"
    assert event["x-clientlove-key"] == "acme-corp.1"
    assert event["transp"] == "TRANSPARENT"
    assert "ATTENDEE" not in event and "ORGANIZER" not in event
    (alarm,) = event.walk("VALARM")
    assert alarm["action"] == "DISPLAY" and alarm["trigger"].dt == timedelta(days=-1)
    assert alarm["description"]
    assert cal.walk("VTIMEZONE"), "the zone of the reminder is described"
    assert "TRIGGER:-P1D" in text


def test_read_back_hash_matches_and_edits_are_seen():
    rem = reminder()
    back = remote(rem)
    assert back.stored_hash == back.content_hash == reminder_hash(rem)
    assert not back.user_edited
    assert remote(rem, summary="Client love: Acme Corp (call Jane)").user_edited
    moved = remote(rem, dtstart=rem.start + timedelta(days=1), dtend=rem.end + timedelta(days=1))
    assert moved.user_edited


def test_hash_ignores_serialisation_differences():
    rem = reminder(text="line one\nline two")
    event = to_vevent(rem, STAMP)
    event["description"] = "line one\r\nline two\n"
    back = from_vevent(icalendar.Event.from_ical(event.to_ical()), ref="x")
    assert not back.user_edited


# -- the decision table ---------------------------------------------------------------------------

def test_create_when_nothing_pending():
    (action,) = reconcile({"Acme Corp": reminder()}, {})
    assert action.kind is Kind.CREATE


def test_keep_when_same():
    rem = reminder()
    (action,) = reconcile({"Acme Corp": rem}, {"Acme Corp": [remote(rem)]})
    assert action.kind is Kind.KEEP and not action.writes


def test_update_when_moved_or_refreshed():
    old = reminder()
    (moved,) = reconcile({"Acme Corp": reminder(day=date(2026, 12, 1))},
                         {"Acme Corp": [remote(old)]})
    assert moved.kind is Kind.UPDATE and moved.why == "moved"
    (fresh,) = reconcile({"Acme Corp": reminder(text="new note")}, {"Acme Corp": [remote(old)]})
    assert fresh.kind is Kind.UPDATE and fresh.why == "refreshed"


def test_delete_when_booked():
    (action,) = reconcile({"Acme Corp": None}, {"Acme Corp": [remote(reminder())]})
    assert action.kind is Kind.DELETE


def test_user_edit_wins_and_blocks_a_second_reminder():
    edited = remote(reminder(), summary="my own words")
    for want in (reminder(day=date(2026, 12, 4)), None):
        (action,) = reconcile({"Acme Corp": want}, {"Acme Corp": [edited]})
        assert action.kind is Kind.LEAVE


def test_duplicates_are_cut_to_one():
    keep, dup = remote(reminder("acme-corp.2")), remote(reminder("acme-corp.1"))
    actions = reconcile({"Acme Corp": reminder("acme-corp.2")}, {"Acme Corp": [dup, keep]})
    assert sorted((a.kind.value, a.key) for a in actions) == [
        ("delete", "acme-corp.1"), ("keep", "acme-corp.2")]


def test_nothing_wanted_nothing_there():
    assert reconcile({"Acme Corp": None}, {}) == []


# -- keys and skips ------------------------------------------------------------------------

def test_next_key_reuses_pending_else_never_reuses():
    pending = [remote(reminder("acme-corp.4"))]
    assert next_key("acme-corp", pending, {"acme-corp.9"}) == "acme-corp.4"
    assert next_key("acme-corp", [], {"acme-corp.9", "globex.12"}) == "acme-corp.10"
    assert next_key("acme-corp", [], set()) == "acme-corp.1"


@pytest.mark.parametrize(("day", "skipped"), [(date(2026, 11, 30), True),
                                              (date(2026, 11, 23), True),
                                              (date(2026, 11, 20), False)])
def test_vanished_pending_is_a_skip_vanished_past_is_forgotten(day, skipped):
    stored = [StoredReminder("acme-corp.1", "Acme Corp", "r", day)]
    skips, forgotten = detect_skips(stored, set(), date(2026, 11, 23))
    assert (len(skips), len(forgotten)) == ((1, 0) if skipped else (0, 1))
    assert detect_skips(stored, {"acme-corp.1"}, date(2026, 11, 23)) == ([], [])
