"""Private data stays private, and text from others is made safe where it goes (issue 17,
points 8, 11, 12 and 13), through the CLI a consultant runs.

8: the prep note's "Last conversation" drops the dial-in lines of an invitation (or quotes all
   or nothing, as configured), never quotes a private or confidential event, and the state
   keeps no more of a description than the note needs.
11: secret files and the state are readable by their owner only from the first byte.
12: an event carrying our UID namespace is ours only with all our marks and no guests.
13: control characters never forge a log line, reach the terminal, break `discover`'s YAML
    or an ICS line we write; OAuth codes and PKCE verifiers are redacted at -vv.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
import yaml
from click.testing import CliRunner

from daemon.cli import cli
from daemon.logsetup import printable, setup_logging
from daemon.model import Event
from daemon.reminder_ical import ical_safe, key_of, owned_key
from daemon.state import State
from tests.google_server import FakeGoogleCalendar
from tests.servers import DavServer

TZ = ZoneInfo("Europe/London")
ME = "consultant@myfirm.example"
NOW = "2026-11-23T08:00"  # a Monday; Acme was met a week before

ZOOM = (
    "Agenda: the Q1 budget and the migration plan.\n"
    "Jane wants the churn numbers by Friday.\n"
    "\n"
    "Join Zoom Meeting\n"
    "https://us02web.zoom.us/j/81234567890?pwd=Zm9vYmFy\n"
    "Meeting ID: 812 3456 7890\n"
    "Passcode: 482913\n"
    "One tap mobile\n"
    "+16465588656,,81234567890#,,,,*482913# US (New York)\n"
    "Dial by your location: +49 69 7104 9922 Germany\n"
    "PIN: 5521\n"
)
SECRETS_IN_ZOOM = ("zoom.us", "812 3456 7890", "81234567890", "482913", "Zm9vYmFy", "5521",
                   "+16465588656", "7104 9922")


def vevent(uid: str, start: str, summary: str, *lines: str) -> str:
    body = "".join(f"{line}\r\n" for line in lines)
    return (f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:{start}\r\n"
            f"SUMMARY:{summary}\r\n{body}END:VEVENT\r\n")


def calendar(*events: str) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//test//EN\r\n" + "".join(events)
            + "END:VCALENDAR\r\n")


def escaped(text: str) -> str:
    """Text as an ICS TEXT value (the escapes RFC 5545 asks for)."""
    return (text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\n", "\\n"))


@dataclass
class Desk:
    """A consultant's machine: an ICS history, an ICS target, a config, the CLI."""

    root: Path
    runner: CliRunner

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def out(self) -> Path:
        return self.root / "out.ics"

    @property
    def state(self) -> Path:
        return self.root / "state.sqlite"

    def write(self, history: str, *, clients: list[dict] | None = None, **extra: object) -> None:
        (self.root / "history.ics").write_text(history, newline="")
        config = {
            "timezone": "Europe/London",
            "me": [ME],
            "state_path": str(self.state),
            "sources": [{"type": "ics", "name": "work", "path": "history.ics"}],
            "target": {"type": "ics", "path": "out.ics"},
            "clients": clients or [{"name": "Acme Corp", "domains": ["acme.example"]}],
            **extra,
        }
        self.config.write_text(yaml.safe_dump(config))  # escapes what YAML reads as a break

    def run(self, *args: str, now: str = NOW, code: int = 0):
        result = self.runner.invoke(cli, ["--config", str(self.config), "--now", now, *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result

    def reminders(self) -> list[icalendar.cal.Component]:
        cal = icalendar.Calendar.from_ical(self.out.read_bytes())
        return [e for e in cal.walk("VEVENT") if key_of(e)]

    def note(self) -> str:
        (reminder,) = self.reminders()
        return str(reminder["description"])


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    return Desk(tmp_path, CliRunner())


def acme_meeting(description: str, *extra: str, uid: str = "m-acme",
                 summary: str = "Acme review") -> str:
    return vevent(uid, "20261116T100000Z", summary, "DTEND:20261116T110000Z",
                  f"ORGANIZER:mailto:{ME}", "ATTENDEE;PARTSTAT=ACCEPTED:mailto:jane@acme.example",
                  f"DESCRIPTION:{escaped(description)}", *extra)


# -- 8: meeting passcodes in the note -----------------------------------------------------------


def test_redacted_note_quotes_the_agenda_without_the_dial_in(desk: Desk):
    desk.write(calendar(acme_meeting(ZOOM)))
    desk.run("sync")
    note = desk.note()
    assert "Last conversation: Agenda: the Q1 budget and the migration plan. Jane wants the " \
           "churn numbers by Friday." in note
    for secret in SECRETS_IN_ZOOM:
        assert secret not in note, secret


def test_last_conversation_full_or_off_as_configured(desk: Desk):
    desk.write(calendar(acme_meeting(ZOOM)), prep_note={"last_conversation": "full"})
    desk.run("sync")
    assert "Passcode: 482913" in desk.note(), "full: the description as it is"
    desk.write(calendar(acme_meeting(ZOOM)), prep_note={"last_conversation": "off"})
    desk.run("sync", now="2026-11-23T08:05")
    note = desk.note()
    assert "Last contact: 2026-11-16 Acme review" in note
    assert "Last conversation" not in note and "Agenda" not in note
    desk.write(calendar(acme_meeting(ZOOM)), prep_note={"last_conversation": "some"})
    result = desk.run("check-config", code=78)
    assert "prep_note.last_conversation" in result.output


@pytest.mark.parametrize("klass", ["CONFIDENTIAL", "PRIVATE", "X-SECRET"])
def test_private_or_confidential_event_is_never_quoted(desk: Desk, klass: str):
    desk.write(calendar(acme_meeting("Talked about the layoffs in the sales team.",
                                     f"CLASS:{klass}", summary="Acme: restructuring")),
               prep_note={"last_conversation": "full"})
    desk.run("sync")
    note = desk.note()
    assert "Last contact: 2026-11-16 (a private event)" in note
    assert "layoffs" not in note and "restructuring" not in note
    state = sqlite3.connect(desk.state)
    (data,) = state.execute("SELECT data FROM events WHERE uid='m-acme'").fetchone()
    assert "layoffs" not in data, "the state keeps none of a private event's description"


def test_public_class_is_quoted(desk: Desk):
    desk.write(calendar(acme_meeting("Talked about the roadmap.", "CLASS:PUBLIC")))
    desk.run("sync")
    assert "Last conversation: Talked about the roadmap." in desk.note()


def test_google_private_visibility_is_never_quoted(tmp_path: Path, monkeypatch):
    api = FakeGoogleCalendar(user="me@example.com", time_zone="Europe/London")
    api.start()
    try:
        creds = _google_creds(api, tmp_path, monkeypatch)
        start = datetime(2026, 11, 16, 10, 0, tzinfo=TZ)
        api.add_event("primary", _google_meeting("Acme: restructuring", start,
                                                 description="The layoffs, in confidence.",
                                                 visibility="private"))
        api.add_event("primary", _google_meeting("Globex review", start,
                                                 attendee="hank@globex.example",
                                                 description="Hank liked the roadmap."))
        config = _google_config(api, tmp_path, creds)
        runner = CliRunner()
        result = runner.invoke(cli, ["--config", str(config), "--now", NOW, "sync"])
        assert result.exit_code == 0, result.output
        (target,) = [c.id for c in api.calendars.values() if c.summary == "Client love"]
        notes = {str(e.get("summary")): str(e.get("description", ""))
                 for e in api.events(target)}
    finally:
        api.stop()
    assert "layoffs" not in notes["Client love: Acme Corp"]
    assert "(a private event)" in notes["Client love: Acme Corp"]
    assert "Last conversation: Hank liked the roadmap." in notes["Client love: Globex"]


def test_state_keeps_only_what_the_note_needs_and_a_late_marker_still_counts(desk: Desk):
    long_text = "Notes. " + "word " * 300 + "#need they want help with the rollout"
    desk.write(calendar(acme_meeting(long_text)))
    desk.run("sync")
    state = sqlite3.connect(desk.state)
    (data,) = state.execute("SELECT data FROM events WHERE uid='m-acme'").fetchone()
    stored = json.loads(data)[4]
    assert len(stored) <= 1100 and stored.startswith("Notes. word")
    assert "#need" in stored
    # Acme's contact carried #need: one week, not two, after the one before
    desk.write(calendar(
        vevent("m-acme-0", "20261109T100000Z", "Acme intro",
               "ATTENDEE;PARTSTAT=ACCEPTED:mailto:jane@acme.example"),
        acme_meeting(long_text)))
    rows = json.loads(desk.run("status", "--json", now="2026-11-23T09:00").stdout)
    assert rows[0]["interval_days"] == 7


def test_events_cached_by_an_older_version_are_not_quoted_until_read_again(tmp_path: Path):
    path = tmp_path / "state.sqlite"
    state = State(path)
    state.db.execute("INSERT INTO sources VALUES ('work', 'etag-1', 1, '2026-11-01')")
    old_row = ["m1", "2026-11-16T10:00:00+00:00", True, "Acme review", "Passcode: 1234",
               [], False, None, [], "", None]  # the eleven fields older versions stored
    state.db.execute("INSERT INTO events VALUES ('work', 'm1', 'm1', ?)", (json.dumps(old_row),))
    state.db.execute("DELETE FROM meta WHERE name='event_format'")
    state.close()
    state = State(path)
    (event,) = state.events(["work"])
    assert event.private, "of unknown class: never quoted"
    assert state.cursor("work") is None, "the next read of the source is a full one"
    state.close()


# -- 11: files ----------------------------------------------------------------------------------


def test_feed_token_output_never_writes_into_a_planted_file(tmp_path: Path):
    """Another user made the file first (0666, theirs, held open): the token goes into a
    new file of ours, 0600; what they hold receives nothing."""
    planted = tmp_path / "feed-token"
    planted.write_text("")
    os.chmod(planted, 0o666)
    if os.geteuid() == 0:
        os.chown(planted, 65534, 65534)
    before = os.stat(planted)
    with planted.open() as theirs:
        result = CliRunner().invoke(cli, ["feed", "token", "--output", str(planted), "--force"])
        assert result.exit_code == 0, result.output
        assert theirs.read() == "", "the planted file received the token"
    after = os.stat(planted)
    assert after.st_ino != before.st_ino
    assert stat.S_IMODE(after.st_mode) == 0o600 and after.st_uid == os.geteuid()
    assert len(planted.read_text().strip()) >= 40
    assert [p.name for p in tmp_path.iterdir()] == ["feed-token"], "no scratch file left"


def test_feed_token_output_never_follows_a_symlink(tmp_path: Path):
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("someone's file\n")
    link = tmp_path / "feed-token"
    link.symlink_to(elsewhere)
    result = CliRunner().invoke(cli, ["feed", "token", "--output", str(link), "--force"])
    assert result.exit_code == 0, result.output
    assert elsewhere.read_text() == "someone's file\n"
    assert not link.is_symlink() and stat.S_IMODE(link.stat().st_mode) == 0o600


def test_state_file_and_its_wal_and_shm_are_0600_whatever_the_umask(desk: Desk):
    desk.write(calendar(acme_meeting("Roadmap.")))
    old = os.umask(0)
    try:
        desk.run("sync")
        state = State(desk.state)  # open, so the -wal and -shm files exist
        state.claim_target("ics:somewhere")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode)
                 for p in desk.root.iterdir() if p.name.startswith("state.sqlite")}
        state.close()
    finally:
        os.umask(old)
    assert modes == {"state.sqlite": 0o600, "state.sqlite-wal": 0o600,
                     "state.sqlite-shm": 0o600}


def test_a_state_file_left_readable_by_others_is_narrowed(tmp_path: Path):
    path = tmp_path / "state.sqlite"
    State(path).close()
    os.chmod(path, 0o644)
    State(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- 12: our namespace cannot be forged ---------------------------------------------------------


def _ours(key: str = "acme-corp.1", **changes: object) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", f"{key}@clientlove")
    event.add("dtstart", datetime(2026, 11, 30, 9, 30, tzinfo=TZ))
    event.add("summary", "Client love: Acme Corp")
    event.add("x-clientlove-key", key)
    event.add("x-clientlove-hash", "0" * 32)
    for name, value in changes.items():
        prop = name.replace("_", "-")
        if prop in event:
            del event[prop]
        if value is not None:
            event.add(prop, value)
    return event


@pytest.mark.parametrize("changes", [
    {"organizer": "mailto:mallory@evil.example"},
    {"attendee": "mailto:consultant@myfirm.example"},
    {"x_clientlove_key": None},
    {"x_clientlove_key": "acme-corp.2"},
    {"x_clientlove_hash": None},
    {"x_clientlove_hash": ""},
    {"uid": "acme-corp.1@clientlove.evil.example"},
], ids=["organizer", "attendee", "no-key", "other-key", "no-hash", "empty-hash", "other-uid"])
def test_a_uid_in_our_namespace_is_not_enough(changes: dict):
    assert owned_key(_ours()) == "acme-corp.1"
    assert owned_key(_ours(**changes)) is None


def _invitation(uid: str, start: datetime) -> icalendar.Event:
    """What Mallory sends: our namespace and marks, with the ORGANIZER an invitation needs."""
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", datetime(2026, 11, 20, tzinfo=TZ))
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=15))
    event.add("summary", "Client love: Acme Corp")
    event.add("organizer", "mailto:mallory@evil.example")
    event.add("attendee", f"mailto:{ME}", parameters={"PARTSTAT": "NEEDS-ACTION"})
    event.add("x-clientlove-key", uid.partition("@")[0])
    event.add("x-clientlove-hash", "forged")
    return event


def test_forged_invitation_never_takes_the_place_of_our_reminder(radicale: DavServer,
                                                                  tmp_path: Path,
                                                                  monkeypatch):
    from tests.harness import CalDavHarness

    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "dav").write_text(radicale.password + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    (tmp_path / "history.ics").write_text(calendar(acme_meeting("Roadmap.")), newline="")
    target_url = radicale.new_calendar()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "timezone": "Europe/London", "me": [ME], "state_path": str(tmp_path / "state.sqlite"),
        "sources": [{"type": "ics", "name": "work", "path": "history.ics"}],
        "target": {"type": "caldav", "url": target_url, "username": radicale.username,
                   "credential": "dav"},
        "clients": [{"name": "Acme Corp", "domains": ["acme.example"]}],
    }))
    runner = CliRunner()

    def run(now: str) -> None:
        result = runner.invoke(cli, ["--config", str(config), "--now", now, "sync"])
        assert result.exit_code == 0, result.output

    run(NOW)
    target = CalDavHarness(radicale, calendar_url=target_url)
    (ours_before,) = [e for e in target.all_events() if owned_key(e)]
    assert str(ours_before["uid"]) == "acme-corp.1@clientlove"
    # an invitation in our namespace lands in the calendar: a later generation of Acme's key
    target.put_foreign(_invitation("acme-corp.7@clientlove",
                                   datetime(2026, 11, 24, 14, 0, tzinfo=TZ)))
    forged_before = {href: etag for href, (etag, cal) in target.objects().items()
                     if any(str(e["uid"]).startswith("acme-corp.7") for e in cal.walk("VEVENT"))}
    run("2026-11-23T08:30")
    events = {str(e["uid"]): e for e in target.all_events()}
    assert "acme-corp.1@clientlove" in events, "our reminder was deleted as a duplicate"
    assert events["acme-corp.1@clientlove"]["dtstart"].dt == datetime(2026, 11, 23, 9, 30,
                                                                      tzinfo=TZ)
    forged_after = {href: etag for href, (etag, _cal) in target.objects().items()
                    if href in forged_before}
    assert forged_after == forged_before, "the invitation is not ours to change"


def test_our_marks_on_a_meeting_never_hide_it_from_the_history(desk: Desk):
    desk.write(calendar(acme_meeting("Roadmap.", "X-CLIENTLOVE-KEY:m-acme",
                                     "X-CLIENTLOVE-HASH:x", uid="acme-corp.3@clientlove")))
    rows = json.loads(desk.run("status", "--json").stdout)
    assert rows[0]["last_contact"] == "2026-11-16", "a meeting with Jane is contact"


def test_google_event_with_guests_is_never_ours(tmp_path: Path, monkeypatch):
    """Our private properties on an event with attendees (a copy of ours the user invited
    people to): neither listed as our reminder nor hidden from the history."""
    from providers.google import google_id

    api = FakeGoogleCalendar(user="me@example.com", time_zone="Europe/London")
    api.start()
    try:
        creds = _google_creds(api, tmp_path, monkeypatch)
        target = api.add_calendar("Client love")
        start = datetime(2026, 11, 16, 10, 0, tzinfo=TZ)
        marks = {"private": {"clientlove": "1", "clientloveKey": "globex.1",
                             "clientloveHash": "0" * 32}}
        api.add_event(target, {**_google_meeting("Client love: Globex", start + timedelta(days=9),
                                                 attendee="hank@globex.example"),
                               "id": google_id("globex.1"), "extendedProperties": marks})
        api.add_event("primary", {**_google_meeting("Globex review", start,
                                                    attendee="hank@globex.example"),
                                  "extendedProperties": {"private": {"clientloveKey": "x.1"}}})
        config = _google_config(api, tmp_path, creds)
        result = CliRunner().invoke(cli, ["--config", str(config), "--now", NOW, "status",
                                          "--json"])
        assert result.exit_code == 0, result.output
        rows = {r["client"]: r for r in json.loads(result.stdout)}
    finally:
        api.stop()
    assert rows["Globex"]["last_contact"] == "2026-11-16", "our marks hid a meeting"
    assert rows["Globex"]["reminder"] == "2026-11-23", "the guests' event is not our reminder"


# -- 13: text from others made safe -------------------------------------------------------------


def test_a_uid_with_a_newline_cannot_forge_a_log_line(desk: Desk):
    evil = "bad\\nERROR clientlove: target wiped\\n\x1b[2J"
    desk.write(calendar(acme_meeting("Roadmap."),
                        vevent(evil, "20261118T100000Z", "Acme \x1b[31mlunch",
                               "RRULE:FREQ=DAILY;UNTIL=garbage",
                               "ATTENDEE:mailto:jane@acme.example")))
    result = desk.run("sync")
    err = result.stderr
    assert "skipped event bad\\nERROR clientlove: target wiped\\n\\x1b[2J" in err
    assert not any(line.startswith("ERROR") for line in err.splitlines())
    assert "\x1b" not in result.output


def test_terminal_output_escapes_names_and_server_words(desk: Desk):
    name = "Acme \x1b]0;pwned\x07Corp\u202e"
    desk.write(calendar(acme_meeting("Roadmap.")),
               clients=[{"name": name, "domains": ["acme.example"]}])
    sync = desk.run("sync")
    status = desk.run("status", now="2026-11-23T08:10")
    for out in (sync.output, status.output):
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
        assert "\\x1b]0;pwned\\x07Corp\\u202e" in out  # the name may wrap at its space


def test_discover_output_is_valid_yaml_whatever_the_titles(desk: Desk):
    titles = ["Intro\nclients: [{name: evil}]", "Lunch\u2028- name: injected",
              "Call \x1b[31mred\x1b[0m", "Pitch\x85done", "Nul\x00byte"]
    events = [vevent(f"d{i}", f"2026111{i}T100000Z", escaped(title).replace("\x00", ""),
                     f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:p{i}@prospect{i}.example")
              for i, title in enumerate(titles)]
    desk.write(calendar(*events).replace("Nulbyte", "Nul\x00byte"))
    out = desk.run("discover").stdout
    assert "\x1b" not in out and "\u2028" not in out and "\x85" not in out
    parsed = yaml.safe_load(out)
    assert sorted(e["domains"][0] for e in parsed) == [f"prospect{i}.example"
                                                       for i in range(len(titles))]
    assert all(set(e) == {"name", "domains", "emails"} for e in parsed)
    comments = [line for line in out.splitlines() if line.startswith("#")]
    assert len(comments) == len(titles)


def test_no_line_break_control_reaches_an_ics_line_we_write(desk: Desk):
    name = "Acme\u2028Corp"
    notes = {"coffee": "flat\x00white\u2029#need", "family": "two kids\x85a dog"}
    desk.write(calendar(acme_meeting("Agenda\u2028budget\x0bplan\x1cnext",
                                     summary="Review\x00\x1b[2J\u2028part 2")),
               clients=[{"name": name, "domains": ["acme.example"], "notes": notes}])
    desk.run("sync")
    raw = desk.out.read_bytes()
    for bad in ("\x00", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1b"):
        assert bad.encode() not in raw, repr(bad)
    assert b"\r" not in raw.replace(b"\r\n", b"")
    (reminder,) = desk.reminders()
    assert str(reminder["summary"]) == "Client love: Acme Corp"
    note = str(reminder["description"])
    assert "Coffee: flatwhite\n#need" in note
    # read back, the reminder hashes as written: the next cycle leaves it alone
    assert "0 writes" in desk.run("sync", now="2026-11-23T08:05").stdout


def test_ical_safe_is_idempotent():
    text = "a\r\nb\rc\u2028d\x00e\tf"
    once = ical_safe(text)
    assert once == "a\nb\nc\nde\tf" and ical_safe(once) == once
    assert ical_safe(text, one_line=True) == "a b c de\tf"


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    setup_logging(2, stream=stream)
    yield stream
    setup_logging(0)


@pytest.mark.parametrize(("logger", "line", "secrets"), [
    ("requests_oauthlib.oauth2_session",
     "Request body was grant_type=authorization_code&code=4%2F0AVG7fiQ&client_id=c&"
     "redirect_uri=http%3A%2F%2Flocalhost%3A8080%2F&code_verifier=Xk2vB9_verif",
     ["4%2F0AVG7fiQ", "Xk2vB9_verif"]),
    ("requests_oauthlib.oauth2_session",
     "Supplying headers {} and data {'grant_type': 'authorization_code', 'code': '4/0AVG7fiQ',"
     " 'code_verifier': 'Xk2vB9_verif', 'client_secret': 'GOCSPX-s'}",
     ["4/0AVG7fiQ", "Xk2vB9_verif", "GOCSPX-s"]),
    ("google_auth_oauthlib.flow",
     '"GET /?state=st8&code=4/0AVG7fiQ&scope=https://www.googleapis.com/auth/calendar '
     'HTTP/1.1" 200 65', ["4/0AVG7fiQ"]),
    ("requests_oauthlib.oauth2_session",
     'Obtained token {"id_token": "eyJhbGciOi.x.y", "access_token": "ya29.t"}',
     ["eyJhbGciOi.x.y", "ya29.t"]),
])
def test_oauth_codes_and_verifiers_are_redacted_at_debug(debug_log, logger, line, secrets):
    logging.getLogger(logger).warning(line)
    out = debug_log.getvalue()
    assert "***" in out
    for secret in secrets:
        assert secret not in out


def test_auth_google_at_debug_prints_no_code_and_replaces_a_planted_output(tmp_path: Path):
    """The installed-app flow at -vv, the sign-in written over a file planted 0666: the
    authorization code and the PKCE verifier appear nowhere; the file is a new one, 0600."""
    import subprocess
    import sys
    from urllib.parse import parse_qs, urlsplit

    import requests


    api = FakeGoogleCalendar(user="me@example.com", time_zone="Europe/London")
    api.start()
    secrets = tmp_path / "client_secret.json"
    secrets.write_text(json.dumps({"installed": {
        "client_id": "client-1", "client_secret": "shh-client",
        "auth_uri": f"{api.base_url}/o/oauth2/auth", "token_uri": f"{api.base_url}/token",
        "redirect_uris": ["http://localhost"]}}))
    out = tmp_path / "google-me.json"
    out.write_text("")
    os.chmod(out, 0o666)
    planted = out.open()
    env = {**os.environ, "OAUTHLIB_INSECURE_TRANSPORT": "1", "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "-vv", "auth", "google", "--client-secrets",
         str(secrets), "--credential", "google-me", "--output", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = ""
        while "http" not in url:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            url = line[line.find("http"):].strip() if "http" in line else ""
        query = parse_qs(urlsplit(url).query)
        code = api.issue_code(query["scope"][0])
        reply = requests.get(query["redirect_uri"][0], timeout=10,
                             params={"state": query["state"][0], "code": code,
                                     "scope": query["scope"][0]})
        assert reply.status_code == 200
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        verifiers = [r.get("code_verifier") for r in api.token_requests]
    finally:
        proc.kill()
        api.stop()
    assert "DEBUG" in stderr, "the flow was logged at debug"
    for secret in [code, *filter(None, verifiers)]:
        assert secret not in stderr and secret not in stdout
    assert planted.read() == "", "the planted file received the sign-in"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text())["refresh_token"]


def test_printable_escapes_what_would_break_a_line():
    assert printable("a\nb\x1b[2Jc\u2028d\x85e") == "a\\nb\\x1b[2Jc\\u2028d\\x85e"
    assert printable("Müller & Söhne") == "Müller & Söhne"


# -- helpers for the local Google server ------------------------------------------------------


def _google_creds(api: FakeGoogleCalendar, tmp_path: Path, monkeypatch) -> Path:
    from providers.google import SCOPES

    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "google-me").write_text(json.dumps({
        "token": "tok-1", "refresh_token": "refresh-1", "token_uri": f"{api.base_url}/token",
        "client_id": "client-1", "client_secret": "shh-client", "scopes": SCOPES}))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    return creds


def _google_meeting(summary: str, start: datetime, *, attendee: str = "jane@acme.example",
                    **extra: object) -> dict:
    return {
        "summary": summary,
        "start": {"dateTime": start.isoformat(), "timeZone": "Europe/London"},
        "end": {"dateTime": (start + timedelta(hours=1)).isoformat(),
                "timeZone": "Europe/London"},
        "attendees": [{"email": attendee, "responseStatus": "accepted"}],
        **extra,
    }


def _google_config(api: FakeGoogleCalendar, tmp_path: Path, creds: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "timezone": "Europe/London", "me": [ME], "state_path": str(tmp_path / "state.sqlite"),
        "sources": [{"type": "google", "calendar": "primary", "credential": "google-me",
                     "api_base": api.base_url}],
        "target": {"type": "google", "calendar": "Client love", "credential": "google-me",
                   "api_base": api.base_url},
        "clients": [{"name": "Acme Corp", "domains": ["acme.example"]},
                    {"name": "Globex", "emails": ["hank@globex.example"]}],
    }))
    return config


def test_event_private_follows_rfc_5545():
    start = datetime(2026, 11, 16, tzinfo=TZ)
    assert not Event("s", "u", start).private
    assert not Event("s", "u", start, classification="PUBLIC").private
    assert Event("s", "u", start, classification="CONFIDENTIAL").private
    assert Event("s", "u", start, classification="X-TOP-SECRET").private


def test_the_feed_of_a_held_reminder_carries_no_line_break_control():
    """A reminder the user edited on a CalDAV or Google target holds their text, whatever it
    is: the feed, an ICS we write, carries none of its control characters."""
    from daemon.model import RemoteReminder
    from daemon.service import reminders_view

    held = RemoteReminder(key="acme-corp.1", ref="x", start=datetime(2026, 11, 30, 9, 30,
                                                                      tzinfo=TZ),
                          end=datetime(2026, 11, 30, 9, 45, tzinfo=TZ),
                          summary="Client love: Acme\u2028\x00Corp",
                          description="Call Jane\u2029\x85about\x0bthe plan\x1b[2J",
                          stored_hash="h", alarm_before=timedelta(days=1))
    raw = reminders_view([held], "Client love", datetime(2026, 11, 23, 8, tzinfo=TZ), TZ)
    for bad in ("\x00", "\u2028", "\u2029", "\x85", "\x0b", "\x1b"):
        assert bad.encode() not in raw, repr(bad)
    (event,) = icalendar.Calendar.from_ical(raw).walk("VEVENT")
    assert str(event["summary"]) == "Client love: Acme Corp"
    assert str(event["description"]) == "Call Jane\n\nabout\nthe plan[2J"
