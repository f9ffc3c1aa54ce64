"""End to end through the CLI on the embedded default: ICS in, ICS out, SQLite state.

The clock is moved with ``--now`` over several months while the history and the user's
hand on the reminders file change, as they would in real use.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import icalendar
import pytest
import vobject
import yaml
from click.testing import CliRunner

from daemon.cli import cli
from daemon.reminder_ical import key_of
from tests.harness import IcsHarness

ROOT = Path(__file__).resolve().parents[1]
ME = "consultant@myfirm.example"


def vevent(uid: str, start: str, summary: str, *, attendees=(), extra=()) -> str:
    value = f"DTSTART;VALUE=DATE:{start}" if len(start) == 8 else \
        f"DTSTART;TZID=Europe/London:{start}"
    lines = ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", value,
             f"SUMMARY:{summary}"]
    lines += [f"ATTENDEE;PARTSTAT={p}:mailto:{e}" for e, p in attendees]
    lines += list(extra)
    lines.append("END:VEVENT")
    return "\r\n".join(lines)


def calendar(*events: str) -> str:
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//test//EN", *events,
                        "END:VCALENDAR"]) + "\r\n"


@dataclass
class Workspace:
    root: Path
    runner: CliRunner

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def history(self) -> Path:
        return self.root / "history.ics"

    @property
    def reminders(self) -> Path:
        return self.root / "reminders.ics"

    def run(self, *args: str, now: str, code: int = 0):
        result = self.runner.invoke(cli, ["--config", str(self.config), "--now", now, *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result

    def status(self, now: str) -> dict[str, dict]:
        rows = json.loads(self.run("status", "--json", now=now).stdout)
        return {row["client"]: row for row in rows}

    def ours(self) -> list[icalendar.cal.Component]:
        cal = icalendar.Calendar.from_ical(self.reminders.read_bytes())
        return [e for e in cal.walk("VEVENT") if key_of(e)]

    def pending(self, today: date) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for event in self.ours():
            if event["dtstart"].dt.date() >= today:
                out.setdefault(str(event["summary"]), []).append(str(event["uid"]))
        return out


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    config = {
        "timezone": "Europe/London",
        "me": [ME],
        "state_path": "state.sqlite",
        "sources": [{"type": "ics", "path": "history.ics"}],
        "target": {"type": "ics", "path": "reminders.ics"},
        "clients": [
            {"name": "Acme Corp", "emails": ["jane.doe@acme.example"], "domains": ["acme.example"],
             "notes": {"coffee": "flat white", "family": "two kids, Tom and Ann"},
             "birthday": "01-20"},
            {"name": "Globex", "emails": ["hank@globex.example"], "keywords": ["Globex"]},
            {"name": "Initech", "domains": ["initech.example"]},
        ],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "history.ics").write_text(calendar(
        vevent("a1", "20260105T100000", "Kick-off", attendees=[("jane.doe@acme.example",
                                                                 "ACCEPTED")],
               extra=["DESCRIPTION:Talked about the data migration and Jane's new team."]),
        vevent("i0", "20260102T150000", "Initech intro", attendees=[("peter@initech.example", "")]),
        vevent("i1", "20260107T150000", "TPS review", attendees=[("peter@initech.example", "")]),
        vevent("noise", "20260105T120000", "Dentist"),
    ))
    return Workspace(tmp_path, CliRunner())


def test_months_of_use(workspace: Workspace):
    ws = workspace
    # Tuesday 6 January: Acme met yesterday, Globex never, Initech met on the 2nd (due the 9th)
    # and booked for tomorrow.
    ws.run("sync", now="2026-01-06T08:00")
    status = ws.status("2026-01-06T08:00")
    assert status["Acme Corp"]["reminder"] == "2026-01-12"
    assert status["Acme Corp"]["interval_days"] == 7
    assert status["Globex"]["reminder"] == "2026-01-06"
    assert status["Globex"]["last_contact"] is None
    assert status["Initech"]["booked"] == "2026-01-07" and status["Initech"]["reminder"] is None
    assert ws.pending(date(2026, 1, 6)).keys() == {"Client love: Acme Corp",
                                                    "Client love: Globex"}

    # nothing changed: no write, byte-identical
    before = ws.reminders.read_bytes()
    mtime = ws.reminders.stat().st_mtime_ns
    result = ws.run("sync", now="2026-01-06T09:00")
    assert "0 writes" in result.stdout
    assert ws.reminders.read_bytes() == before and ws.reminders.stat().st_mtime_ns == mtime

    # 13 January: the Acme reminder of the 12th is history and counts as an on-time check-in.
    ws.run("sync", now="2026-01-13T08:00")
    status = ws.status("2026-01-13T08:00")
    assert status["Acme Corp"]["last_contact"] == "2026-01-12"
    assert status["Acme Corp"]["interval_days"] == 14
    assert status["Acme Corp"]["reminder"] == "2026-01-26"
    # Initech met on the 7th, five days after the 2nd: on schedule (7 - 2), so doubled
    assert status["Initech"]["interval_days"] == 14
    assert status["Initech"]["reminder"] == "2026-01-21"

    # the user moves the Acme reminder and deletes Globex's pending one
    harness = IcsHarness(ws.reminders)
    acme_key = next(key_of(e) for e in ws.ours()
                    if e["dtstart"].dt.date() == date(2026, 1, 26))
    harness.user_edit(acme_key, summary="Client love: Acme Corp (call Jane on her mobile)")
    # Globex: the reminder of the 6th counted as contact, so one is due today, the 13th
    globex = [key_of(e) for e in ws.ours() if "Globex" in str(e["summary"])
              and e["dtstart"].dt.date() == date(2026, 1, 13)]
    assert len(globex) == 1
    harness.user_delete(globex[0])

    ws.run("sync", now="2026-01-13T12:00")
    ws.run("sync", now="2026-01-14T08:00")
    edited = [e for e in ws.ours() if key_of(e) == acme_key]
    assert str(edited[0]["summary"]).endswith("(call Jane on her mobile)")
    status = ws.status("2026-01-14T08:00")
    assert status["Globex"]["reminder"] == "2026-01-20", "skipped: one base later"
    assert status["Globex"]["last_contact"] == "2026-01-06"
    assert all(key_of(e) != globex[0] for e in ws.ours()), "deleted reminder not re-created"

    # a new meeting in the history moves Acme's due date, but the user's edit still wins
    ws.history.write_text(ws.history.read_text().replace(
        "END:VCALENDAR", vevent("a2", "20260120T100000", "Acme steering",
                                attendees=[("jane.doe@acme.example", "ACCEPTED")]) +
        "\r\nEND:VCALENDAR"))
    for now in ("2026-01-21T08:00", "2026-02-02T08:00", "2026-03-02T08:00",
                "2026-04-01T08:00", "2026-05-04T08:00"):
        ws.run("sync", now=now)
        today = date.fromisoformat(now[:10])
        for summary, uids in ws.pending(today).items():
            assert len(uids) == 1, f"{summary} has {len(uids)} pending reminders on {today}"
    uids = [str(e["uid"]) for e in ws.ours()]
    assert len(uids) == len(set(uids))
    assert len(ws.ours()) >= 8

    # the output parses with icalendar and validates with vobject
    text = ws.reminders.read_text()
    icalendar.Calendar.from_ical(text)
    parsed = vobject.readOne(text, validate=True)
    assert parsed.vevent_list
    for event in ws.ours():
        assert "ATTENDEE" not in event and "ORGANIZER" not in event
        assert event["transp"] == "TRANSPARENT"
        assert len(event.walk("VALARM")) == 1


def test_prep_note_carries_everything(workspace: Workspace):
    ws = workspace
    ws.run("sync", now="2026-01-06T08:00")
    (acme,) = [e for e in ws.ours() if "Acme" in str(e["summary"])]
    note = str(acme["description"])
    for expected in ("jane.doe@acme.example", "Last contact: 2026-01-05 Kick-off",
                     "Last conversation: Talked about the data migration",
                     "now every 1 week", "next in 2 weeks", "#need", "#skip",
                     "Coffee: flat white", "Family: two kids, Tom and Ann",
                     "Birthday: Tuesday 20 January", "Idea:", "As per our conversation",
                     "Hi Jane,"):
        assert expected in note, expected
    (alarm,) = acme.walk("VALARM")
    assert alarm["trigger"].to_ical() == b"-P1D"


def test_dry_run_writes_nothing(workspace: Workspace):
    result = workspace.run("sync", "--dry-run", now="2026-01-06T08:00")
    assert "would create: Acme Corp 2026-01-12" in result.stdout
    assert not workspace.reminders.exists()


def test_missing_source_file_is_a_clear_error_and_writes_nothing(workspace: Workspace):
    workspace.history.unlink()
    result = workspace.run("sync", now="2026-01-06T08:00", code=1)
    assert "history" in result.output and "Traceback" not in result.output
    assert not workspace.reminders.exists()


def test_broken_config_exits_78_naming_every_problem(tmp_path: Path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "sources": [{"type": "ics"}],
        "target": {"type": "ics", "path": "r.ics"},
        "clients": [{"name": "A", "emails": ["not-an-email"]}, {"nam": "B"}],
        "bogus": 1,
    }))
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "c.yaml"), "check-config"])
    assert result.exit_code == 78
    for path in ("sources[0]", "clients[0].emails[0]", "clients[1].nam", "bogus"):
        assert path in result.output, path


def test_discover_lists_uncovered_people(workspace: Workspace):
    workspace.history.write_text(calendar(
        vevent("n1", "20260105T100000", "Coffee", attendees=[("ann@newco.example", "ACCEPTED"),
                                                             (ME, "ACCEPTED")]),
        vevent("a1", "20260106T100000", "Acme", attendees=[("jane.doe@acme.example", "")]),
    ))
    out = workspace.run("discover", now="2026-01-10T08:00").stdout
    entries = yaml.safe_load(out)
    assert entries == [{"name": "Newco", "domains": ["newco.example"],
                        "emails": ["ann@newco.example"]}]


def test_shipped_example_runs_as_the_readme_says(tmp_path: Path):
    """`clientlove --config config.example.yaml sync` through the real entry point, on a copy
    of the shipped files; a second run writes nothing."""
    shutil.copy(ROOT / "config.example.yaml", tmp_path / "config.example.yaml")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path)}
    command = [sys.executable, "-m", "daemon", "--config", "config.example.yaml", "sync"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = tmp_path / "reminders.ics"
    cal = icalendar.Calendar.from_ical(written.read_bytes())
    assert any(key_of(e) for e in cal.walk("VEVENT"))
    # one state per config file (issue 12 point 6): named after it, never the shared one
    assert [p.name.split("-")[0] for p in (tmp_path / "state" / "clientlove").glob(
        "*.sqlite")] == ["config.example"]
    before = written.read_bytes()
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120,
                           cwd=tmp_path)
    assert again.returncode == 0 and "0 writes" in again.stdout
    assert written.read_bytes() == before
