"""A consultant's days through the CLI (issue 11, points 2, 6, 7 and 8).

Each test moves the clock with ``--now`` and edits the files as a person (or their calendar
app) would, then checks what they see: ``status``, the reminders file, the exit code.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta
from pathlib import Path

import icalendar
import pytest
import yaml
from click.testing import CliRunner

from daemon.reminder_ical import key_of
from tests.test_cli_e2e import ME, Workspace, calendar, vevent


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    config = {
        "timezone": "Europe/London",
        "me": [ME],
        "state_path": "state.sqlite",
        "sources": [{"type": "ics", "path": "history.ics"}],
        "target": {"type": "ics", "path": "reminders.ics"},
        "clients": [
            {"name": "Acme Corp", "emails": ["jane.doe@acme.example"]},
            {"name": "Globex", "emails": ["hank@globex.example"]},
        ],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "history.ics").write_text(calendar(
        vevent("a1", "20260105T100000", "Acme kick-off",
               attendees=[("jane.doe@acme.example", "ACCEPTED")]),
        vevent("g1", "20260106T100000", "Globex intro",
               attendees=[("hank@globex.example", "ACCEPTED")]),
    ))
    return Workspace(tmp_path, CliRunner())


def _edit(ws: Workspace, summary: str, **changes: object) -> None:
    """Change our reminder in the file as a calendar app would (and bump SEQUENCE)."""
    cal = icalendar.Calendar.from_ical(ws.reminders.read_bytes())
    for event in cal.walk("VEVENT"):
        if key_of(event) and str(event["summary"]) == summary:
            for name, value in changes.items():
                event.pop(name, None)
                event.add(name, value)
            event["sequence"] = int(event.get("sequence", 0)) + 1
    ws.reminders.write_bytes(cal.to_ical())


def _drop(ws: Workspace, summary: str) -> None:
    cal = icalendar.Calendar.from_ical(ws.reminders.read_bytes())
    cal.subcomponents[:] = [c for c in cal.subcomponents
                            if not (c.name == "VEVENT" and str(c.get("summary")) == summary)]
    ws.reminders.write_bytes(cal.to_ical())


def _starts(ws: Workspace) -> dict[str, list[datetime]]:
    out: dict[str, list[datetime]] = {}
    for event in ws.ours():
        out.setdefault(str(event["summary"]), []).append(event["dtstart"].dt)
    return out


# -- point 2: status tells the truth -------------------------------------------------------


def test_a_reminder_the_user_moved_shows_where_it_is(ws: Workspace):
    ws.run("sync", now="2026-01-09T08:00")
    assert ws.status("2026-01-09T08:00")["Acme Corp"]["reminder"] == "2026-01-12"
    # the consultant drags it to Thursday afternoon in their calendar app
    moved = datetime(2026, 1, 15, 14, 0, tzinfo=ws_tz())
    _edit(ws, "Client love: Acme Corp", dtstart=moved, dtend=moved + timedelta(minutes=15))
    for now in ("2026-01-09T09:00", "2026-01-13T08:00"):
        ws.run("sync", now=now)
        acme = ws.status(now)["Acme Corp"]
        assert acme["reminder"] == "2026-01-15", acme
        assert acme["reminder_at"].startswith("2026-01-15T14:00")
        assert acme["moved_by_user"] is True
        assert any("moved by you" in n for n in acme["notes"])
        assert acme["overdue"] is False  # due when the user said, not late
        assert _starts(ws)["Client love: Acme Corp"] == [moved]  # left where they put it
    table = ws.run("status", now="2026-01-13T08:00").stdout
    assert "moved by you" in " ".join(table.split())


def ws_tz():
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/London")


def test_overdue_is_false_after_a_skip_with_the_next_reminder_ahead(ws: Workspace):
    ws.run("sync", now="2026-01-09T08:00")
    _drop(ws, "Client love: Acme Corp")  # deleted before its day: a skip
    ws.run("sync", now="2026-01-09T09:00")
    acme = ws.status("2026-01-13T08:00")["Acme Corp"]
    assert acme["reminder"] == "2026-01-19" and acme["overdue"] is False, acme
    assert not any(n.startswith("overdue") for n in acme["notes"])
    # once that day has passed without contact, it is late, and says so
    ws.run("sync", now="2026-01-19T08:00")
    _drop(ws, "Client love: Acme Corp")
    later = ws.status("2026-01-21T08:00")["Acme Corp"]
    assert later["overdue"] is (any(n.startswith("overdue") for n in later["notes"]))


def test_overdue_agrees_with_the_notes_after_an_announcement(ws: Workspace):
    config = yaml.safe_load(ws.config.read_text())
    config["announcements"] = [{"date": "2026-01-08", "text": "New offer",
                                "clients": ["Acme Corp"]}]
    ws.config.write_text(yaml.safe_dump(config))
    acme = ws.status("2026-01-09T08:00")["Acme Corp"]
    assert "overdue since 2026-01-08" in acme["notes"]
    assert acme["overdue"] is True


# -- point 6: a dry run writes nothing anywhere --------------------------------------------


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.iterdir()
            if p.is_file()}


def test_dry_run_writes_nothing_anywhere(ws: Workspace):
    # before any sync: no state file, no target, nothing created
    before = _snapshot(ws.root)
    out = ws.run("sync", "--dry-run", now="2026-01-09T08:00").stdout
    assert "would create: Acme Corp" in out
    assert _snapshot(ws.root) == before

    ws.run("sync", now="2026-01-09T08:00")
    # the history changes (a new meeting), the user deletes a reminder
    ws.history.write_text(calendar(
        vevent("a1", "20260105T100000", "Acme kick-off",
               attendees=[("jane.doe@acme.example", "ACCEPTED")]),
        vevent("a2", "20260109T090000", "Acme call",
               attendees=[("jane.doe@acme.example", "ACCEPTED")]),
        vevent("g1", "20260106T100000", "Globex intro",
               attendees=[("hank@globex.example", "ACCEPTED")]),
    ))
    os.utime(ws.history, ns=(1, 1))
    _drop(ws, "Client love: Globex")
    before = _snapshot(ws.root)
    out = ws.run("sync", "--dry-run", now="2026-01-09T10:00").stdout
    assert "would move/refresh: Acme Corp" in out
    assert _snapshot(ws.root) == before  # not the state, its journal, nor the target
    # and the real sync afterwards still sees every change
    out = ws.run("sync", now="2026-01-09T10:00").stdout
    assert "move/refresh: Acme Corp" in out
    assert ws.status("2026-01-09T10:00")["Globex"]["reminder"] == "2026-01-20"  # skipped


# -- point 7: a source that is not a calendar ----------------------------------------------

LOGIN_PAGE = "<!DOCTYPE html><html><body><form>Sign in</form></body></html>\n"


def test_a_login_page_instead_of_the_calendar_fails_the_source(ws: Workspace):
    ws.run("sync", now="2026-01-09T08:00")
    reminders = ws.reminders.read_bytes()
    ws.history.write_text(LOGIN_PAGE)
    result = ws.run("sync", now="2026-01-09T09:00", code=1)
    assert "is not a calendar" in " ".join(result.output.split())
    assert ws.reminders.read_bytes() == reminders  # no "never contacted" rewrite
    rows = json.loads(ws.run("status", "--json", now="2026-01-09T09:00", code=1).stdout)
    acme = next(r for r in rows if r["client"] == "Acme Corp")
    assert acme["last_contact"] == "2026-01-05"  # planned from the last good read
    # the calendar comes back: all is as before
    ws.history.write_text(calendar(
        vevent("a1", "20260105T100000", "Acme kick-off",
               attendees=[("jane.doe@acme.example", "ACCEPTED")]),
        vevent("g1", "20260106T100000", "Globex intro",
               attendees=[("hank@globex.example", "ACCEPTED")])))
    assert "0 writes" in ws.run("sync", now="2026-01-09T10:00").stdout


def test_a_login_page_on_the_first_run_writes_nothing(ws: Workspace):
    ws.history.write_text(LOGIN_PAGE)
    result = ws.run("sync", now="2026-01-09T08:00", code=1)
    assert "is not a calendar" in " ".join(result.output.split())
    assert not ws.reminders.exists()


def test_a_proxy_page_from_a_calendar_url_fails_too(tmp_path: Path):
    """After a good read, the URL answers 200 with a proxy's HTML page, then nothing."""
    from tests.test_ics_source import FeedServer  # a real HTTP server on loopback

    server = FeedServer()
    try:
        server.body = calendar(vevent("a1", "20260105T100000", "Acme kick-off",
                                      attendees=[("jane.doe@acme.example", "ACCEPTED")])
                               ).encode()
        config = {"timezone": "Europe/London", "state_path": "state.sqlite",
                  "sources": [{"type": "ics", "url": server.url}],
                  "target": {"type": "ics", "path": "reminders.ics"},
                  "clients": [{"name": "Acme Corp", "emails": ["jane.doe@acme.example"]}]}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        ws = Workspace(tmp_path, CliRunner())
        ws.run("sync", now="2026-01-09T08:00")
        reminders = ws.reminders.read_bytes()
        for body, reason in ((b"<html><body>502 Bad Gateway</body></html>", "no VCALENDAR"),
                             (b"", "empty")):
            server.body = body
            result = ws.run("sync", now="2026-01-09T09:00", code=1)
            text = " ".join(result.output.split())
            assert "is not a calendar" in text and reason in text, text
            assert ws.reminders.read_bytes() == reminders
    finally:
        server.close()


# -- point 8: removed clients leave nothing behind -----------------------------------------


def test_a_removed_client_loses_its_pending_reminder_and_keeps_its_history(ws: Workspace):
    ws.run("sync", now="2026-01-09T08:00")
    ws.run("sync", now="2026-01-14T08:00")  # Acme's reminder of the 12th is history now
    assert set(_starts(ws)) == {"Client love: Acme Corp", "Client love: Globex"}
    config = yaml.safe_load(ws.config.read_text())
    config["clients"] = [c for c in config["clients"] if c["name"] != "Acme Corp"]
    ws.config.write_text(yaml.safe_dump(config))

    before = ws.reminders.read_bytes()
    out = ws.run("sync", "--dry-run", now="2026-01-14T09:00").stdout
    assert "would delete: acme-corp" in out and "client no longer configured" in out
    assert ws.reminders.read_bytes() == before

    ws.run("sync", now="2026-01-14T09:00")
    acme = [e["dtstart"].dt.date() for e in ws.ours()
            if str(e["summary"]) == "Client love: Acme Corp"]
    assert acme == [date(2026, 1, 12)]  # the past one stays, the pending one is gone
    assert "0 writes" in ws.run("sync", now="2026-01-14T10:00").stdout


def test_a_renamed_client_moves_its_reminder_to_the_new_name(ws: Workspace):
    ws.run("sync", now="2026-01-09T08:00")
    config = yaml.safe_load(ws.config.read_text())
    config["clients"][0]["name"] = "ACME Corporation"
    ws.config.write_text(yaml.safe_dump(config))
    ws.run("sync", now="2026-01-09T09:00")
    pending = {s for s, days in _starts(ws).items()
               if any(d.date() >= date(2026, 1, 9) for d in days)}
    assert pending == {"Client love: ACME Corporation", "Client love: Globex"}
