"""Google Calendar end to end: the real googleapiclient over HTTP against the faithful local
Calendar API server of ``tests/google_server.py`` (loopback only)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from click.testing import CliRunner

from daemon.cli import cli
from providers.google import SCOPES, google_id
from tests.google_server import FakeGoogleCalendar

TZ = ZoneInfo("Europe/London")
ME = "me@example.com"
NOW = "2026-11-23T08:00"


def meeting(summary: str, start: datetime, *attendees: tuple[str, str],
            **extra: object) -> dict:
    body = {
        "summary": summary,
        "start": {"dateTime": start.isoformat(), "timeZone": "Europe/London"},
        "end": {"dateTime": (start + timedelta(hours=1)).isoformat(),
                "timeZone": "Europe/London"},
        "attendees": [{"email": e, "responseStatus": s, **({"self": True} if e == ME else {})}
                      for e, s in attendees],
        "organizer": {"email": ME, "self": True},
    }
    body.update(extra)
    return body


@dataclass
class Setup:
    api: FakeGoogleCalendar
    config: Path
    creds: Path
    runner: CliRunner

    def run(self, *args: str, now: str = NOW, code: int = 0):
        result = self.runner.invoke(cli, ["--config", str(self.config), "--now", now, *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result

    def status(self, now: str = NOW) -> dict[str, dict]:
        return {r["client"]: r for r in json.loads(self.run("status", "--json", now=now).stdout)}

    @property
    def target_id(self) -> str:
        (cal,) = [c for c in self.api.calendars.values() if c.summary == "Client love"]
        return cal.id

    def ours(self) -> dict[str, dict]:
        out = {}
        for event in self.api.events(self.target_id):
            private = (event.get("extendedProperties") or {}).get("private") or {}
            if "clientloveKey" in private:
                out[private["clientloveKey"]] = event
        return out


def credential(api: FakeGoogleCalendar, *, expired: bool = False) -> str:
    info = {"token": "tok-1", "refresh_token": "refresh-1", "token_uri": f"{api.base_url}/token",
            "client_id": "client-1", "client_secret": "shh-client", "scopes": SCOPES}
    if expired:
        info["expiry"] = "2020-01-01T00:00:00Z"
    return json.dumps(info)


@pytest.fixture
def api() -> Iterator[FakeGoogleCalendar]:
    server = FakeGoogleCalendar(user=ME, time_zone="Europe/London",
                                clock=lambda: datetime(2026, 11, 23, 8, tzinfo=UTC))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def setup(api: FakeGoogleCalendar, tmp_path: Path, monkeypatch) -> Setup:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "google-me").write_text(credential(api))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    day = datetime(2026, 11, 16, 10, 0, tzinfo=TZ)
    api.add_event("primary", meeting("Acme review", day, ("jane.doe@acme.example", "accepted"),
                                     (ME, "accepted")))
    api.add_event("primary", meeting("Globex intro", day - timedelta(days=30),
                                     ("hank@globex.example", "accepted")))
    api.add_event("primary", meeting("Globex offsite", day + timedelta(days=1),
                                     ("hank@globex.example", "accepted"), (ME, "declined")))
    api.add_event("primary", meeting("Initech call", day + timedelta(days=4),
                                     ("peter@initech.example", "accepted")))
    api.add_event("primary", meeting("Initech workshop", day + timedelta(days=9),
                                     ("peter@initech.example", "needsAction")))
    api.add_event("primary", meeting("Dentist", day))
    config = {
        "timezone": "Europe/London",
        "me": ["consultant@myfirm.example"],
        "state_path": str(tmp_path / "state.sqlite"),
        "sources": [{"type": "google", "calendar": "primary", "credential": "google-me",
                     "api_base": api.base_url}],
        "target": {"type": "google", "calendar": "Client love", "credential": "google-me",
                   "api_base": api.base_url},
        "clients": [
            {"name": "Acme Corp", "domains": ["acme.example"]},
            {"name": "Globex", "emails": ["hank@globex.example"]},
            {"name": "Initech", "domains": ["initech.example"]},
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return Setup(api, path, creds, CliRunner())


def test_one_reminder_per_due_client_then_only_the_sync_call(setup: Setup):
    foreign = {e["id"]: e["etag"] for e in setup.api.events("primary")}
    setup.run("sync")
    ours = setup.ours()
    assert sorted(ours) == ["acme-corp.1", "globex.1"], "Initech is booked"
    acme = ours["acme-corp.1"]
    assert acme["id"] == google_id("acme-corp.1")
    assert acme["reminders"] == {"useDefault": False,
                                 "overrides": [{"method": "popup", "minutes": 90}]}, \
        "synced at 08:00 for 09:30 the same day: as soon as possible, in minutes"
    assert acme["transparency"] == "transparent"
    assert "attendees" not in acme or acme["attendees"] == []
    assert "Last contact: 2026-11-16 Acme review" in acme["description"]
    assert set(setup.api.sent_updates) == {"none"}
    globex = ours["globex.1"]
    start = datetime.fromisoformat(globex["start"]["dateTime"].replace("Z", "+00:00"))
    assert start.astimezone(TZ).isoformat() == "2026-11-23T09:30:00+00:00", "overdue: today"
    assert globex["reminders"]["overrides"] == [{"method": "popup", "minutes": 90}]

    setup.api.reset_counts()
    result = setup.run("sync", now="2026-11-23T09:00")
    assert "0 writes" in result.stdout
    methods = [m for m, _ in setup.api.calls]
    assert all(m == "GET" for m in methods), "no write"
    primary = [p for m, p in setup.api.calls if "/calendars/me%40example.com/" in p
               or "/calendars/primary/" in p]
    assert len(primary) == 1, "the source: one sync-token list call"
    target = [p for m, p in setup.api.calls if setup.target_id.split("@")[0] in p]
    assert len(target) == 1, "the target: one listing"
    assert {e["id"]: e["etag"] for e in setup.api.events("primary")} == foreign


def test_user_edits_and_deletions_are_respected(setup: Setup):
    setup.run("sync")
    acme_id, globex_id = google_id("acme-corp.1"), google_id("globex.1")
    setup.api.user_edit(setup.target_id, acme_id, summary="Client love: Acme (call Jane)")
    setup.api.user_delete(setup.target_id, globex_id)
    setup.run("sync", now="2026-11-23T10:00")
    ours = setup.ours()
    assert ours["acme-corp.1"]["summary"] == "Client love: Acme (call Jane)"
    assert "globex.1" not in ours
    assert setup.status("2026-11-23T11:00")["Globex"]["reminder"] == "2026-11-30"
    setup.run("sync", now="2026-11-24T08:00")
    assert "globex.1" not in setup.ours() and "globex.2" in setup.ours()


def test_a_deleted_id_is_never_reinserted_even_without_state(setup: Setup, tmp_path: Path):
    setup.run("sync")
    setup.api.user_delete(setup.target_id, google_id("globex.1"))
    (tmp_path / "state.sqlite").unlink()  # the state is lost: only Google remembers the id
    setup.run("sync", now="2026-11-23T10:00")
    setup.run("sync", now="2026-11-23T10:05")
    live = setup.ours()
    assert "globex.1" not in live and "globex.2" in live
    deleted = setup.api.event(setup.target_id, google_id("globex.1"))
    assert deleted["status"] == "cancelled"


def test_incremental_source_and_expired_token(setup: Setup):
    setup.run("sync")
    setup.api.add_event("primary", meeting("Acme call", datetime(2026, 11, 23, 7, 0, tzinfo=TZ),
                                           ("jane.doe@acme.example", "accepted")))
    assert setup.status("2026-11-23T09:00")["Acme Corp"]["last_contact"] == "2026-11-23"
    setup.api.expire_sync_tokens()
    setup.api.reset_counts()
    assert setup.status("2026-11-23T09:30")["Acme Corp"]["last_contact"] == "2026-11-23"
    lists = [p for m, p in setup.api.calls if "/events" in p and m == "GET"]
    assert len(lists) >= 2, "410, then a full sync"


def test_rate_limits_and_server_errors_are_survived(setup: Setup):
    setup.api.inject(429, count=2, retry_after="0", reason="rateLimitExceeded")
    setup.api.inject(403, count=1, retry_after="0", reason="userRateLimitExceeded")
    setup.api.inject(500, count=1, reason="backendError")
    setup.run("sync")
    assert sorted(setup.ours()) == ["acme-corp.1", "globex.1"]


def test_revoked_sign_in_is_reported_and_other_sources_go_on(setup: Setup, tmp_path: Path):
    (setup.creds / "google-me").write_text(credential(setup.api, expired=True))
    setup.api.revoke("refresh-1")
    config = yaml.safe_load(setup.config.read_text())
    (tmp_path / "other.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:o1\r\n"
        "DTSTAMP:20260101T000000Z\r\nDTSTART:20261120T100000Z\r\nSUMMARY:Acme lunch\r\n"
        "ATTENDEE:mailto:jane.doe@acme.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    config["sources"].append({"type": "ics", "name": "other", "path": "other.ics"})
    config["target"] = {"type": "ics", "path": "out.ics"}
    setup.config.write_text(yaml.safe_dump(config))
    result = setup.run("status", "--json", code=1)
    assert "clientlove auth google" in result.stderr and "Traceback" not in result.output
    assert "shh-client" not in result.output and "refresh-1" not in result.output
    rows = {r["client"]: r for r in json.loads(result.stdout)}
    assert rows["Acme Corp"]["last_contact"] == "2026-11-20", "the ICS source was still read"


def test_many_writes_go_in_batches_of_50(setup: Setup):
    config = yaml.safe_load(setup.config.read_text())
    config["clients"] = [{"name": f"Client {i:03d}", "domains": [f"c{i:03d}.example"]}
                         for i in range(120)]
    setup.config.write_text(yaml.safe_dump(config))
    setup.run("sync")
    batches = [p for m, p in setup.api.requests if p.startswith("/batch")]
    assert len(batches) == 3
    assert len(setup.ours()) == 120


def test_auth_google_signs_in_and_writes_a_private_credential(api: FakeGoogleCalendar,
                                                              tmp_path: Path):
    """The installed-app flow as a person runs it: open the printed URL, be redirected back
    to the loopback port with a code; the sign-in lands in a 0600 file."""
    import os
    import stat
    import subprocess
    import sys
    from urllib.parse import parse_qs, urlsplit

    import requests

    secrets = tmp_path / "client_secret.json"
    secrets.write_text(json.dumps({"installed": {
        "client_id": "client-1", "client_secret": "shh-client",
        "auth_uri": f"{api.base_url}/o/oauth2/auth", "token_uri": f"{api.base_url}/token",
        "redirect_uris": ["http://localhost"]}}))
    out = tmp_path / "google-me.json"
    env = {**os.environ, "OAUTHLIB_INSECURE_TRANSPORT": "1"}  # the test's token URL is http
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "auth", "google", "--client-secrets", str(secrets),
         "--credential", "google-me", "--output", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = ""
        while "http" not in url:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            url = line[line.find("http"):].strip() if "http" in line else ""
        query = parse_qs(urlsplit(url).query)
        assert set(query["scope"][0].split()) == set(SCOPES)
        redirect = query["redirect_uri"][0]
        code = api.issue_code(query["scope"][0])  # the user consents in the browser
        reply = requests.get(redirect, params={"state": query["state"][0], "code": code,
                                               "scope": query["scope"][0]}, timeout=10)
        assert reply.status_code == 200
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        proc.kill()
    saved = json.loads(out.read_text())
    assert saved["refresh_token"].startswith("1//") and saved["token_uri"].endswith("/token")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_refreshed_sign_in_is_stored_back_in_the_keyring(setup: Setup, memory_keyring,
                                                          monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    memory_keyring.set_password("clientlove", "google-me", credential(setup.api, expired=True))
    setup.run("sync")
    stored = json.loads(memory_keyring.passwords[("clientlove", "google-me")])
    assert stored["token"] != "tok-1" and stored["refresh_token"] == "refresh-1"
    assert any(r.get("grant_type") == "refresh_token" for r in setup.api.token_requests)
    setup.api.reset_counts()
    setup.run("sync", now="2026-11-23T09:00")
    assert setup.api.token_requests == [], "the stored token is used, not refreshed again"


def test_google_id_is_valid_base32hex():
    gid = google_id("acme-corp.1")
    assert set(gid) <= set("0123456789abcdefghijklmnopqrstuv") and 5 <= len(gid) <= 1024
    assert gid != google_id("acme-corp.2")
