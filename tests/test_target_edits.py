"""Issue 12 points 1 and 2, a person's days: what others write beside and into our reminders
stays, on every target, over cycles of the CLI and of the long-running service.

The history is an ICS file; the target is the ICS file, a real Radicale or Xandikos, or the
local Google Calendar API server. The user acts as their calendar app would: through the
harnesses of ``tests/harness.py``, and through vdirsyncer syncing a Radicale calendar to a
folder of ``.ics`` files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
import yaml
from click.testing import CliRunner

from daemon.cli import cli
from daemon.model import Reminder
from daemon.notify import Notifier
from daemon.reminder_ical import ALARM_PROP, key_of
from daemon.retry import Backoff
from daemon.service import Service
from providers.google import ALARM_FIELD, SCOPES
from tests.harness import (
    EXTRAS,
    CalDavHarness,
    GoogleHarness,
    IcsHarness,
    MemoryHarness,
    TargetHarness,
    add_ical_extras,
    ical_extras,
)
from tests.test_cli_e2e import calendar, vevent

TZ = ZoneInfo("Europe/London")
KEY = "acme-corp.1"
FIRST = "2026-11-16T08:00"  # Monday: Acme met on Thursday the 12th, due Thursday the 19th
SECOND = "2026-11-17T08:00"  # after a meeting on the 16th the reminder moves to Monday the 23rd


def meetings(*days: str) -> str:
    return calendar(*(vevent(f"m-{d}", f"{d}T100000", "Acme catch-up",
                             attendees=[("jane@acme.example", "ACCEPTED")]) for d in days))


@dataclass
class Day:
    """A consultant's setup: the config, the history file, the target as the user sees it."""

    root: Path
    config: Path
    harness: TargetHarness
    runner: CliRunner

    def history(self, *days: str) -> None:
        (self.root / "history.ics").write_text(meetings(*days))

    def sync(self, now: str) -> str:
        result = self.runner.invoke(cli, ["--config", str(self.config), "--now", now, "sync"])
        assert result.exit_code == 0, (result.output, result.exception)
        return result.output

    def reminder(self):
        (listed,) = [r for r in self.harness.target().list_ours() if r.key == KEY]
        return listed


@pytest.fixture(params=["ics", "radicale", "xandikos", "google"])
def day(request, tmp_path: Path, monkeypatch) -> Iterator[Day]:
    creds = tmp_path / "creds"
    creds.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    harness: TargetHarness
    if request.param == "ics":
        harness = IcsHarness(tmp_path / "reminders.ics")
        target: dict[str, object] = {"type": "ics", "path": "reminders.ics"}
    elif request.param == "google":
        api = request.getfixturevalue("google_api")
        harness = GoogleHarness(api)
        (creds / "google-me").write_text(json.dumps({
            "token": "t", "refresh_token": "r", "token_uri": f"{api.base_url}/token",
            "client_id": "c", "client_secret": "s", "scopes": SCOPES}))
        target = {"type": "google", "calendar": "Client love", "credential": "google-me",
                  "api_base": api.base_url}
    else:
        server = request.getfixturevalue(request.param)
        harness = CalDavHarness(server)
        (creds / "dav").write_text(server.password)
        target = {"type": "caldav", "url": harness.url, "username": server.username,
                  "credential": "dav"}
    config = {"timezone": "Europe/London", "me": ["me@myfirm.example"],
              "state_path": "state.sqlite",
              "sources": [{"type": "ics", "path": "history.ics"}], "target": target,
              "clients": [{"name": "Acme Corp", "emails": ["jane@acme.example"]}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    yield Day(tmp_path, tmp_path / "config.yaml", harness, CliRunner())


def test_a_move_keeps_what_the_user_added_to_our_reminder(day: Day):
    """Location, categories with #need, a colour, an X- property and a second alarm added in
    a calendar app stay when the next cycle moves the reminder; only our fields change."""
    day.history("20261112")
    day.sync(FIRST)
    assert day.reminder().start.date() == date(2026, 11, 19)
    day.harness.user_adds_extras(KEY)
    added = day.harness.extras(KEY)
    assert added["alarms"] == [30, 24 * 60]
    assert not day.reminder().user_edited  # nothing of ours changed: it is still ours to move
    day.history("20261112", "20261116")
    day.sync(SECOND)
    moved = day.reminder()
    assert moved.start == datetime(2026, 11, 23, 9, 30, tzinfo=TZ)
    assert "16 November" in moved.description or "2026-11-16" in moved.description
    assert not moved.user_edited
    assert day.harness.extras(KEY) == added
    if not isinstance(day.harness, GoogleHarness):
        assert "#need" in moved.categories  # the user's marker survives the move
    before = day.harness.extras(KEY), day.reminder().etag
    day.sync("2026-11-17T09:00")  # nothing changed: nothing written
    assert (day.harness.extras(KEY), day.reminder().etag) == before


# -- the service keeps one ICS target for its life ---------------------------------------------

APPEND = """
import sys
path, uid = sys.argv[1], sys.argv[2]
text = open(path, newline="").read()
event = ("BEGIN:VEVENT\\r\\nUID:" + uid + "\\r\\nDTSTAMP:20261101T000000Z\\r\\n"
         "DTSTART;TZID=Europe/London:20261120T080000\\r\\nSUMMARY:Dentist (" + uid + ")\\r\\n"
         "LOCATION:High Street 1\\r\\nEND:VEVENT\\r\\n")
at = text.rindex("END:VCALENDAR")
open(path, "w", newline="").write(text[:at] + event + text[at:])
"""


def other_program_adds(path: Path, uid: str) -> None:
    subprocess.run([sys.executable, "-c", APPEND, str(path), uid], check=True, timeout=60)


def foreign(path: Path) -> dict[str, bytes]:
    cal = icalendar.Calendar.from_ical(path.read_bytes())
    return {str(e["uid"]): e.to_ical() for e in cal.walk("VEVENT") if not key_of(e)}


def test_the_service_keeps_what_another_program_adds_to_its_file(tmp_path: Path):
    """``clientlove run`` keeps one target for its life: an event another program appends to
    the reminders file between cycles is still there, unchanged, after the cycles that move
    and add reminders of ours."""
    config = {"timezone": "Europe/London", "me": ["me@myfirm.example"],
              "state_path": "state.sqlite",
              "sources": [{"type": "ics", "path": "history.ics"}],
              "target": {"type": "ics", "path": "reminders.ics"},
              "clients": [{"name": "Acme Corp", "emails": ["jane@acme.example"]}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "history.ics").write_text(meetings("20261112"))
    clock = [datetime(2026, 11, 16, 8, 0, tzinfo=UTC)]
    service = Service(tmp_path / "config.yaml", clock=lambda: clock[0],
                      notifier=Notifier(None), backoff=Backoff(attempts=2, base=0.01, cap=0.02))
    path = tmp_path / "reminders.ics"
    try:
        assert service.cycle().ok
        other_program_adds(path, "dentist-1")
        seen = foreign(path)
        # the next day: a meeting moves Acme's reminder
        (tmp_path / "history.ics").write_text(meetings("20261112", "20261116"))
        clock[0] = datetime(2026, 11, 17, 8, 0, tzinfo=UTC)
        report = service.cycle()
        assert report.ok and report.writes == 1
        assert foreign(path) == seen
        other_program_adds(path, "dentist-2")
        seen = foreign(path)
        assert sorted(seen) == ["dentist-1", "dentist-2"]
        clock[0] = datetime(2026, 11, 17, 8, 30, tzinfo=UTC)
        assert service.cycle().writes == 0  # nothing of ours to change: the file stays
        (tmp_path / "history.ics").write_text(meetings("20261112", "20261116", "20261117"))
        clock[0] = datetime(2026, 11, 18, 8, 0, tzinfo=UTC)
        assert service.cycle().writes == 1
        assert foreign(path) == seen
    finally:
        service.state.close()
    (ours,) = [e for e in icalendar.Calendar.from_ical(path.read_bytes()).walk("VEVENT")
               if key_of(e)]
    assert ours["dtstart"].dt == datetime(2026, 11, 24, 9, 30, tzinfo=TZ)


# -- events written before our alarm carried its mark ----------------------------------------------

def make(day: date, alarm: timedelta = timedelta(days=1)) -> Reminder:
    return Reminder(key=KEY, client="Acme Corp", summary="Client love: Acme Corp",
                    start=datetime(day.year, day.month, day.day, 9, 30, tzinfo=TZ),
                    duration=timedelta(minutes=15), description="note", alarm_before=alarm,
                    alarm_text="Client love soon")


def unmark(event: icalendar.cal.Component) -> None:
    for alarm in event.walk("VALARM"):
        alarm.pop(ALARM_PROP, None)


@pytest.mark.parametrize("kind", ["memory", "ics"])
def test_an_older_event_without_our_alarm_mark_keeps_the_users_alarm(kind, tmp_path):
    harness = MemoryHarness() if kind == "memory" else IcsHarness(tmp_path / "r.ics")
    target = harness.target()
    target.create(make(date(2026, 11, 30)))
    target.flush()
    if kind == "memory":
        unmark(harness.target().objects[f"{KEY}@clientlove"][0])
    else:
        cal = icalendar.Calendar.from_ical(harness.path.read_bytes())
        for event in cal.walk("VEVENT"):
            unmark(event)
        harness.path.write_bytes(cal.to_ical())
    assert ALARM_PROP.encode() not in b"".join(e.to_ical() for e in harness.all_events())
    harness.user_adds_extras(KEY)  # a second alarm after ours, 30 minutes ahead
    target = harness.target()
    (current,) = target.list_ours()
    assert current.alarm_before == timedelta(days=1) and not current.user_edited
    target.update(current, make(date(2026, 12, 1), alarm=timedelta(days=2)))
    target.flush()
    (event,) = harness.all_events()
    assert ical_extras(event)["alarms"] == [30, 2 * 24 * 60]
    assert ical_extras(event)["location"] == EXTRAS["location"]


def test_google_keeps_the_users_popups_within_five(google_api):
    """Four popups of the user's beside ours (Google's limit is five): a move changes ours
    only. An event written before we recorded our popup's minutes works the same."""
    harness = GoogleHarness(google_api)
    target = harness.target()
    target.create(make(date(2026, 11, 30)))
    event_id = harness._id_of(KEY)
    theirs = [{"method": "popup", "minutes": 30}, {"method": "email", "minutes": 60},
              {"method": "popup", "minutes": 10}, {"method": "popup", "minutes": 120}]
    held = google_api.event(harness.calendar_id, event_id)
    google_api.user_edit(harness.calendar_id, event_id, reminders={
        "useDefault": False, "overrides": [*held["reminders"]["overrides"], *theirs]},
        extendedProperties={"private": {ALARM_FIELD: None}})  # as written before the field
    target = harness.target()
    (current,) = target.list_ours()
    assert current.alarm_before == timedelta(days=1) and not current.user_edited
    target.update(current, make(date(2026, 12, 1), alarm=timedelta(days=2)))
    after = google_api.event(harness.calendar_id, event_id)
    assert after["reminders"]["overrides"] == [{"method": "popup", "minutes": 2880}, *theirs]
    (listed,) = harness.target().list_ours()
    assert listed.alarm_before == timedelta(days=2) and not listed.user_edited
    assert listed.start.date() == date(2026, 12, 1)


# -- a real calendar client: vdirsyncer between Radicale and a folder -------------------------

VDIRSYNCER_CONFIG = """
[general]
status_path = "{root}/status/"

[pair reminders]
a = "local"
b = "server"
collections = null
conflict_resolution = "a wins"

[storage local]
type = "filesystem"
path = "{root}/vdir/"
fileext = ".ics"

[storage server]
type = "caldav"
url = "{url}"
username = "{username}"
password = "{password}"
"""


def vdirsyncer(root: Path, *args: str) -> None:
    command = shutil.which("vdirsyncer")
    if command is None:
        pytest.skip("vdirsyncer is not installed (pip install -e '.[test]' brings it)")
    reply = subprocess.run([command, "-c", str(root / "vdirsyncer.conf"), *args],
                           capture_output=True, text=True, timeout=120,
                           env={"PATH": "/usr/bin:/bin", "HOME": str(root)})
    assert reply.returncode == 0, reply.stdout + reply.stderr


def edit_in_folder(folder: Path) -> Path:
    """Add what a calendar app adds, to our reminder's file in the synced folder."""
    (path,) = [p for p in folder.glob("*.ics") if b"X-CLIENTLOVE-KEY" in p.read_bytes()]
    cal = icalendar.Calendar.from_ical(path.read_bytes())
    for event in cal.walk("VEVENT"):
        add_ical_extras(event)
    path.write_bytes(cal.to_ical())
    return path


def test_fields_added_through_vdirsyncer_survive_our_move(radicale, tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "dav").write_text(radicale.password)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    harness = CalDavHarness(radicale)
    config = {"timezone": "Europe/London", "me": ["me@myfirm.example"],
              "state_path": "state.sqlite",
              "sources": [{"type": "ics", "path": "history.ics"}],
              "target": {"type": "caldav", "url": harness.url, "username": radicale.username,
                         "credential": "dav"},
              "clients": [{"name": "Acme Corp", "emails": ["jane@acme.example"]}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "vdir").mkdir()
    (tmp_path / "vdirsyncer.conf").write_text(VDIRSYNCER_CONFIG.format(
        root=tmp_path, url=harness.url, username=radicale.username, password=radicale.password))
    day = Day(tmp_path, tmp_path / "config.yaml", harness, CliRunner())
    day.history("20261112")
    day.sync(FIRST)
    vdirsyncer(tmp_path, "discover")
    vdirsyncer(tmp_path, "sync")
    edited = edit_in_folder(tmp_path / "vdir")
    vdirsyncer(tmp_path, "sync")  # the user's fields go up to Radicale
    assert ical_extras(harness._ours(KEY))["location"] == EXTRAS["location"]
    day.history("20261112", "20261116")
    day.sync(SECOND)
    vdirsyncer(tmp_path, "sync")  # and our move comes down
    (event,) = icalendar.Calendar.from_ical(edited.read_bytes()).walk("VEVENT")
    assert event["dtstart"].dt == datetime(2026, 11, 23, 9, 30, tzinfo=TZ)
    extras = ical_extras(event)
    assert extras == {**EXTRAS, "alarms": [30, 24 * 60]}
