"""Hostile inputs against private data and our namespace (issue 17, points 8, 11, 12, 13).

Each case builds a small hostile input (an invitation, a calendar, a planted file), runs it
through the real CLI, reader, providers and a real Radicale, and checks what must hold:
no passcode or confidential text in a note, no file written through for another user, no
forged event taken as ours, no control character reaching a log line, the terminal, the
YAML of `discover` or an ICS line. See tests/hostile.py for how cases are run and measured.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import icalendar
import yaml
from click.testing import CliRunner

from daemon.cli import cli
from daemon.reminder_ical import key_of, owned_key
from tests.hostile import ROOT, case
from tests.test_private import (
    ME,
    NOW,
    SECRETS_IN_ZOOM,
    TZ,
    ZOOM,
    _invitation,
    acme_meeting,
    calendar,
    escaped,
    vevent,
)

TEAMS = (
    "Quarterly review with the Globex board.\n"
    "________________________________________________________________________________\n"
    "Microsoft Teams meeting\n"
    "Join on your computer, mobile app or room device\n"
    "Click here to join the meeting<https://teams.microsoft.com/l/meetup-join/19%3ameeting>\n"
    "Meeting ID: 351 229 884 112\n"
    "Passcode: nJ7mQs\n"
    "Or call in (audio only)\n"
    "+49 69 120064752,,781234056#   Germany, Frankfurt am Main\n"
    "Phone Conference ID: 781 234 056#\n"
)
SECRETS_IN_TEAMS = ("teams.microsoft.com", "351 229 884 112", "nJ7mQs", "120064752",
                    "781 234 056", "781234056")


def _desk(root: Path, history: str, **config: object) -> Path:
    (root / "history.ics").write_text(history, newline="")
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump({
        "timezone": "Europe/London", "me": [ME], "state_path": str(root / "state.sqlite"),
        "sources": [{"type": "ics", "name": "work", "path": "history.ics"}],
        "target": {"type": "ics", "path": "out.ics"},
        "clients": [{"name": "Acme Corp", "domains": ["acme.example"]},
                    {"name": "Globex", "domains": ["globex.example"]}],
        **config,
    }))
    return path


def _cli(config: Path, *args: str, now: str = NOW) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), "--now", now, *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{type(result.exception).__name__}: {result.exception}")
    return result.exit_code, result.stdout, result.stderr


def _token_to(path: Path) -> tuple[int, str]:
    """`clientlove feed token --output PATH --force` (no config: the default credential)."""
    result = CliRunner().invoke(cli, ["feed", "token", "--output", str(path), "--force"])
    return result.exit_code, result.output


def _subprocess_cli(config: Path, *args: str) -> tuple[int, str, str]:
    """The `clientlove` command in a process of its own: real stderr, real logging."""
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(config), "--now", NOW, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    return done.returncode, done.stdout, done.stderr


@case("note-passcodes", "a Zoom and a Teams invitation (links, ids, passcodes, dial-in PINs) "
                        "and a CLASS:CONFIDENTIAL meeting as the last contacts")
def note_passcodes(scratch: Path) -> tuple[int, str]:
    history = calendar(
        acme_meeting(ZOOM, uid="zoom"),
        vevent("teams", "20261116T140000Z", "Globex board",
               "ATTENDEE;PARTSTAT=ACCEPTED:mailto:hank@globex.example",
               f"DESCRIPTION:{escaped(TEAMS)}"),
        vevent("secret", "20261116T160000Z", "Acme: restructuring", "CLASS:CONFIDENTIAL",
               "ATTENDEE;PARTSTAT=ACCEPTED:mailto:jane@acme.example",
               "DESCRIPTION:The layoffs in sales\\, in confidence."))
    config = _desk(scratch, history)
    code, _out, err = _cli(config, "sync")
    assert code == 0, err
    written = (scratch / "out.ics").read_text()
    state = (scratch / "state.sqlite").read_bytes()
    for secret in (*SECRETS_IN_ZOOM, *SECRETS_IN_TEAMS):
        assert secret not in written.replace("\r\n ", ""), f"{secret} in the note"
    assert "layoffs" not in written and "restructuring" not in written
    assert b"layoffs" not in state, "a confidential description reached the state"
    assert "Quarterly review with the Globex board." in written.replace("\r\n ", "")
    return len(history), "dial-in lines dropped from the notes; confidential text never quoted"


@case("forged-namespace", "an invitation (ORGANIZER, ATTENDEE) with UID acme-corp.7@clientlove "
                          "and our X- marks, in a Radicale target holding our reminder")
def forged_namespace(scratch: Path) -> tuple[int, str]:
    from tests.harness import CalDavHarness
    from tests.servers import start_server

    server = start_server("radicale", scratch / "radicale")
    try:
        target_url = server.new_calendar()
        creds = scratch / "creds"
        creds.mkdir()
        (creds / "dav").write_text(server.password)
        os.environ["CREDENTIALS_DIRECTORY"] = str(creds)
        config = _desk(scratch, calendar(acme_meeting("Roadmap.")),
                       target={"type": "caldav", "url": target_url,
                               "username": server.username, "credential": "dav"})
        code, _out, err = _cli(config, "sync")
        assert code == 0, err
        target = CalDavHarness(server, calendar_url=target_url)
        forged = _invitation("acme-corp.7@clientlove", datetime(2026, 11, 24, 14, tzinfo=TZ))
        target.put_foreign(forged)
        before = {href: etag for href, (etag, _cal) in target.objects().items()}
        code, _out, err = _cli(config, "sync", now="2026-11-23T08:30")
        assert code == 0, err
        after = {href: etag for href, (etag, _cal) in target.objects().items()}
        events = target.all_events()
    finally:
        server.stop()
    assert after == before, "an event changed or vanished (ours deleted as a duplicate?)"
    acme = [str(e["uid"]) for e in events if (owned_key(e) or "").startswith("acme-corp.")]
    assert acme == ["acme-corp.1@clientlove"], f"ours among Acme's events: {acme}"
    return len(forged.to_ical()), "not ours: left alone; our reminder kept"


@case("uid-newline-log", "an event whose UID holds escaped newlines and ANSI escapes (a forged "
                         "ERROR line, clear screen), its title red, its rule broken")
def uid_newline_log(scratch: Path) -> tuple[int, str]:
    evil = "x\\nERROR clientlove.cycle: target wiped\\n\x1b[2J\x1b]0;owned\x07"
    history = calendar(acme_meeting("Roadmap."),
                       vevent(evil, "20261118T100000Z", "Acme \x1b[31mlunch\x1b[0m",
                              "RRULE:FREQ=DAILY;UNTIL=garbage",
                              "ATTENDEE:mailto:jane@acme.example"))
    config = _desk(scratch, history)
    code, out, err = _subprocess_cli(config, "-v", "sync")
    assert code == 0, err
    for stream in (out, err):
        assert "\x1b" not in stream and "\x07" not in stream, "an escape reached the terminal"
    assert not any(line.startswith("ERROR") for line in err.splitlines()), "a forged log line"
    assert "skipped event x\\nERROR clientlove.cycle: target wiped\\n\\x1b[2J" in err
    return len(history), "one warning line, the UID's controls escaped"


@case("discover-yaml", "meeting titles with a newline and YAML, U+2028, U+0085, NUL and ANSI "
                       "escapes, from people no client covers")
def discover_yaml(scratch: Path) -> tuple[int, str]:
    titles = ["Intro\nclients: [{name: evil}]", "Lunch\u2028- name: injected",
              "Call \x1b[31mred\x1b[0m", "Pitch\x85done", "Nul\x00byte", "Bidi \u202egnp.exe"]
    events = [vevent(f"d{i}", f"2026111{i}T100000Z", escaped(title),
                     f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:p{i}@prospect{i}.example")
              for i, title in enumerate(titles)]
    history = calendar(*events)
    config = _desk(scratch, history)
    code, out, err = _cli(config, "discover")
    assert code == 0, err
    for bad in ("\x1b", "\u2028", "\x85", "\x00", "\u202e"):
        assert bad not in out, repr(bad)
    parsed = yaml.safe_load(out)
    domains = sorted(entry["domains"][0] for entry in parsed)
    assert domains == [f"prospect{i}.example" for i in range(len(titles))], domains
    assert len([line for line in out.splitlines() if line.startswith("#")]) == len(titles)
    return len(history), f"valid YAML, {len(parsed)} entries, titles escaped in comments"


@case("ics-line-breaks", "a client name, notes and a meeting title holding NUL, U+2028/2029, "
                         "U+0085, VT, FS and ESC")
def ics_line_breaks(scratch: Path) -> tuple[int, str]:
    history = calendar(acme_meeting("Agenda\u2028budget\x0bplan\x1cnext\x00",
                                    summary="Review\x00\x1b[2J\u2028part 2"))
    clients = [{"name": "Acme\u2028Corp\x85", "domains": ["acme.example"],
                "notes": {"coffee": "flat\x00white\u2029oat", "family": "two kids\x85a dog"},
                "phone": "+49 30 1234\x0b567"}]
    config = _desk(scratch, history, clients=clients)
    assert _cli(config, "sync")[0] == 0
    raw = (scratch / "out.ics").read_bytes()
    for bad in ("\x00", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1b"):
        assert bad.encode() not in raw, f"{bad!r} reached an ICS line"
    assert b"\r" not in raw.replace(b"\r\n", b""), "a lone CR"
    cal = icalendar.Calendar.from_ical(raw)
    assert len([e for e in cal.walk("VEVENT") if key_of(e)]) == 1
    code, out, _err = _cli(config, "sync", now="2026-11-23T08:05")
    assert code == 0 and "0 writes" in out, "the clean text did not read back as written"
    return len(history) + len(json.dumps(clients)), "no control character in any ICS line"


@case("planted-secret-file", "the --output file of `feed token` pre-created 0666 by another "
                             "user and held open, and one that is a symlink to their file")
def planted_secret_file(scratch: Path) -> tuple[int, str]:
    planted = scratch / "feed-token"
    planted.write_text("")
    os.chmod(planted, 0o666)
    if os.geteuid() == 0:
        os.chown(planted, 65534, 65534)
    before = os.stat(planted).st_ino
    with planted.open() as theirs:
        code, said = _token_to(planted)
        assert code == 0, said
        assert theirs.read() == "", "the planted file received the token"
    info = os.stat(planted)
    assert info.st_ino != before and stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.geteuid()
    victim = scratch / "their-file"
    victim.write_text("theirs\n")
    link = scratch / "link-token"
    link.symlink_to(victim)
    code, said = _token_to(link)
    assert code == 0, said
    assert victim.read_text() == "theirs\n", "written through the symlink"
    assert not link.is_symlink() and stat.S_IMODE(link.stat().st_mode) == 0o600
    return 0, "a new 0600 file of ours renamed over each; nothing written through"


@case("state-umask", "umask 0 when the state file and its -wal/-shm are made")
def state_umask(scratch: Path) -> tuple[int, str]:
    from daemon.state import State

    config = _desk(scratch, calendar(acme_meeting("Roadmap.")))
    old = os.umask(0)
    try:
        assert _cli(config, "sync")[0] == 0
        state = State(scratch / "state.sqlite")
        state.claim_target("ics:elsewhere")
        modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode))
                 for p in scratch.iterdir() if p.name.startswith("state.sqlite")}
        state.close()
    finally:
        os.umask(old)
    assert set(modes) == {"state.sqlite", "state.sqlite-wal", "state.sqlite-shm"}, modes
    assert set(modes.values()) == {"0o600"}, modes
    return 0, "state, -wal and -shm 0600"


@case("oauth-debug", "`auth google -vv` through the installed-app flow: the redirect with "
                     "the authorization code, the token request with the PKCE verifier")
def oauth_debug(scratch: Path) -> tuple[int, str]:
    from urllib.parse import parse_qs, urlsplit

    import requests

    from tests.google_server import FakeGoogleCalendar

    api = FakeGoogleCalendar(user="me@example.com", time_zone="Europe/London")
    api.start()
    secrets = scratch / "client_secret.json"
    secrets.write_text(json.dumps({"installed": {
        "client_id": "client-1", "client_secret": "shh-client",
        "auth_uri": f"{api.base_url}/o/oauth2/auth", "token_uri": f"{api.base_url}/token",
        "redirect_uris": ["http://localhost"]}}))
    out = scratch / "google-me.json"
    env = {**os.environ, "OAUTHLIB_INSECURE_TRANSPORT": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "-vv", "auth", "google", "--client-secrets",
         str(secrets), "--credential", "google-me", "--output", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = ""
        while "http" not in url:
            line = proc.stdout.readline()
            assert line, "the flow printed no URL"
            url = line[line.find("http"):].strip() if "http" in line else ""
        query = parse_qs(urlsplit(url).query)
        code = api.issue_code(query["scope"][0])
        reply = requests.get(query["redirect_uri"][0], timeout=10,
                             params={"state": query["state"][0], "code": code,
                                     "scope": query["scope"][0]})
        assert reply.status_code == 200
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr[-300:]
        verifiers = [r["code_verifier"] for r in api.token_requests if r.get("code_verifier")]
    finally:
        proc.kill()
        api.stop()
    assert "DEBUG" in stderr
    for secret in (code, *verifiers, "shh-client"):
        assert secret not in stderr and secret not in stdout, "a secret reached the output"
    saved = json.loads(out.read_text())
    for secret in (saved["token"], saved["refresh_token"]):
        assert secret not in stderr and secret not in stdout, "a token reached the output"
    return len(url), f"code, {len(verifiers)} verifier, tokens redacted at debug"
