"""CalDAV end to end against real Radicale and Xandikos servers on loopback.

The consultant's calendar is seeded with their client meetings and unrelated events; the CLI
runs against it through a counting proxy, so "nothing changed means nothing written" is
checked by counting requests, not by trusting our own bookkeeping.
"""

from __future__ import annotations

import json
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
from daemon.model import ReadScope
from daemon.reminder_ical import key_of
from providers.base import AuthError, Transient
from providers.caldav import CalDavSource
from tests.harness import CalDavHarness
from tests.servers import CountingProxy, DavServer, Fault

TZ = ZoneInfo("Europe/London")
ME = "consultant@myfirm.example"


def meeting(uid: str, start: datetime, summary: str, *attendees: str,
            partstat: str = "ACCEPTED") -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", datetime(2026, 1, 1, tzinfo=TZ))
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(hours=1))
    event.add("summary", summary)
    event.add("organizer", f"mailto:{ME}")
    for email in attendees:
        event.add("attendee", f"mailto:{email}", parameters={"PARTSTAT": partstat})
    return event


@dataclass
class Setup:
    server: DavServer
    proxy: CountingProxy
    source: CalDavHarness
    target_url: str
    config: Path
    runner: CliRunner

    def run(self, *args: str, now: str = "2026-11-23T08:00", code: int = 0):
        result = self.runner.invoke(cli, ["--config", str(self.config), "--now", now, *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result

    def target(self) -> CalDavHarness:
        return CalDavHarness(self.server, calendar_url=self.target_url)

    def path_of(self, url: str) -> str:
        return "/" + url.split("/", 3)[3]


@pytest.fixture
def setup(dav_server: DavServer, tmp_path: Path, monkeypatch) -> Iterator[Setup]:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "work-dav").write_text(dav_server.password + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    proxy = CountingProxy(dav_server.base_url)
    source = CalDavHarness(dav_server)
    day = datetime(2026, 11, 16, 10, 0, tzinfo=TZ)  # a Monday
    source.put_foreign(meeting("m-acme", day, "Acme review", "jane.doe@acme.example"))
    source.put_foreign(meeting("m-globex", day - timedelta(days=30), "Globex intro",
                               "hank@globex.example"))
    source.put_foreign(meeting("m-initech", day + timedelta(days=4), "Initech call",
                               "peter@initech.example"))  # due the 27th
    source.put_foreign(meeting("m-initech-2", day + timedelta(days=9), "Initech workshop",
                               "peter@initech.example"))  # booked on the 25th
    source.put_foreign(meeting("m-dentist", day, "Dentist"))
    source.put_foreign(meeting("m-declined", day + timedelta(days=1), "Globex offsite",
                               "hank@globex.example", partstat="DECLINED"))
    target_url = dav_server.new_calendar()
    config = {
        "timezone": "Europe/London",
        "me": [ME],
        "state_path": str(tmp_path / "state.sqlite"),
        "sources": [{"type": "caldav", "name": "work", "url": proxy.url_for(source.url),
                     "username": dav_server.username, "credential": "work-dav"}],
        "target": {"type": "caldav", "url": proxy.url_for(target_url),
                   "username": dav_server.username, "credential": "work-dav"},
        "clients": [
            {"name": "Acme Corp", "domains": ["acme.example"],
             "notes": {"coffee": "flat white"}},
            {"name": "Globex", "emails": ["hank@globex.example"]},
            {"name": "Initech", "domains": ["initech.example"]},
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    yield Setup(dav_server, proxy, source, target_url, path, CliRunner())
    proxy.close()


def ours(harness: CalDavHarness) -> dict[str, icalendar.cal.Component]:
    return {key_of(e): e for e in harness.all_events() if key_of(e)}


def test_sync_writes_one_reminder_per_due_client_then_nothing(setup: Setup):
    foreign_before = setup.source.foreign_fingerprints()
    setup.run("sync")
    written = ours(setup.target())
    assert sorted(written) == ["acme-corp.1", "globex.1"], "Initech is booked"
    acme = written["acme-corp.1"]
    assert acme["dtstart"].dt == datetime(2026, 11, 23, 9, 30, tzinfo=TZ)
    assert "Last contact: 2026-11-16 Acme review" in str(acme["description"])
    assert "Coffee: flat white" in str(acme["description"])
    (alarm,) = acme.walk("VALARM")
    # synced at 08:00 for 09:30 the same day: a day ahead has passed, so as soon as possible
    assert alarm["action"] == "DISPLAY" and alarm["trigger"].dt == -timedelta(minutes=90)
    assert "ATTENDEE" not in acme and "ORGANIZER" not in acme
    globex = written["globex.1"]
    assert globex["dtstart"].dt == datetime(2026, 11, 23, 9, 30, tzinfo=TZ), "overdue: today"
    (alarm,) = globex.walk("VALARM")
    assert alarm["trigger"].dt == -timedelta(minutes=90)

    etags = {k: v[0] for k, v in setup.target().objects().items()}
    setup.proxy.reset()
    result = setup.run("sync", now="2026-11-23T09:00")
    assert "0 writes" in result.stdout
    writes = sum(setup.proxy.counts[m] for m in ("PUT", "DELETE", "MKCALENDAR", "PROPPATCH"))
    assert writes == 0
    assert setup.proxy.requests_under(setup.path_of(setup.source.url)) == 1
    assert setup.proxy.requests_under(setup.path_of(setup.target_url)) == 1
    assert {k: v[0] for k, v in setup.target().objects().items()} == etags
    assert setup.source.foreign_fingerprints() == foreign_before


def test_user_edits_and_deletions_are_respected(setup: Setup):
    setup.run("sync")
    target = setup.target()
    target.user_edit("acme-corp.1", dtstart=datetime(2026, 11, 25, 15, 0, tzinfo=TZ),
                     dtend=datetime(2026, 11, 25, 15, 30, tzinfo=TZ))
    target.user_delete("globex.1")
    setup.run("sync", now="2026-11-23T10:00")
    after = ours(target)
    assert after["acme-corp.1"]["dtstart"].dt == datetime(2026, 11, 25, 15, 0, tzinfo=TZ)
    assert "globex.1" not in after
    status = json.loads(setup.run("status", "--json", now="2026-11-23T11:00").stdout)
    globex = next(s for s in status if s["client"] == "Globex")
    assert globex["reminder"] == "2026-11-30", "skipped: one base later"
    setup.run("sync", now="2026-11-24T08:00")
    keys = set(ours(target))
    assert "globex.1" not in keys and keys >= {"acme-corp.1"}


def test_source_changes_are_read_incrementally(setup: Setup):
    setup.run("sync")
    setup.source.put_foreign(meeting("m-acme-2", datetime(2026, 11, 23, 8, 0, tzinfo=TZ),
                                     "Acme call", "jane.doe@acme.example"))
    setup.proxy.reset()
    setup.run("sync", now="2026-11-23T12:00")
    source_path = setup.path_of(setup.source.url)
    assert [m for m, p, _ in setup.proxy.log if p.startswith(source_path)] == ["REPORT",
                                                                                "REPORT"]
    status = json.loads(setup.run("status", "--json", now="2026-11-23T12:00").stdout)
    acme = next(s for s in status if s["client"] == "Acme Corp")
    assert acme["last_contact"] == "2026-11-23"
    # met on the 16th and again on the 23rd: on schedule, so two weeks; the pending reminder moves
    assert ours(setup.target())["acme-corp.1"]["dtstart"].dt.date().isoformat() == "2026-12-07"


def test_expired_sync_token_means_a_full_read(dav_server: DavServer):
    harness = CalDavHarness(dav_server)
    harness.put_foreign(meeting("x1", datetime(2026, 11, 2, 9, 0, tzinfo=TZ), "Acme",
                                "jane.doe@acme.example"))
    scope = ReadScope(datetime(2026, 1, 1, tzinfo=TZ), datetime(2027, 6, 1, tzinfo=TZ), TZ,
                      needles=("acme.example",))
    source = CalDavSource("work", harness.url, username=dav_server.username,
                          secret=lambda: dav_server.password)
    first = source.changes(None, scope)
    assert first.full and [e.uid for e in first.upserted] == ["x1"]
    cursor = json.loads(first.cursor)
    cursor["token"] = cursor["token"][:-6] + "abcdef"
    again = source.changes(json.dumps(cursor), scope)
    assert again.full and [e.uid for e in again.upserted] == ["x1"]


def test_wrong_password_is_a_clear_error_and_other_sources_go_on(radicale_auth: DavServer,
                                                                  tmp_path, monkeypatch):
    harness = CalDavHarness(radicale_auth)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "work-dav").write_text("not-the-password")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    (tmp_path / "other.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:o1\r\n"
        "DTSTAMP:20260101T000000Z\r\nDTSTART:20261116T100000Z\r\nSUMMARY:Acme lunch\r\n"
        "ATTENDEE:mailto:jane.doe@acme.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    config = {
        "timezone": "Europe/London",
        "state_path": str(tmp_path / "s.sqlite"),
        "sources": [{"type": "caldav", "name": "work", "url": harness.url, "username": "me",
                     "credential": "work-dav"},
                    {"type": "ics", "name": "other", "path": "other.ics"}],
        "target": {"type": "ics", "path": "out.ics"},
        "clients": [{"name": "Acme Corp", "domains": ["acme.example"]}],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "c.yaml"), "--now",
                                      "2026-11-23T08:00", "status", "--json"])
    assert result.exit_code == 1
    assert "work" in result.stderr and "login" in result.stderr
    assert "Traceback" not in result.output and "not-the-password" not in result.output
    rows = json.loads(result.stdout)
    assert rows[0]["last_contact"] == "2026-11-16", "the ICS source was still read"
    with pytest.raises(AuthError):
        CalDavSource("work", harness.url, username="me", secret=lambda: "nope").changes(
            None, ReadScope(datetime(2026, 1, 1, tzinfo=TZ), datetime(2027, 1, 1, tzinfo=TZ), TZ))


def test_server_down_or_failing_is_transient_and_writes_nothing(setup: Setup):
    setup.proxy.fault = lambda method, path: Fault(status=503, retry_after="0")
    result = setup.run("sync", code=1)
    assert "503" in result.stderr and "Traceback" not in result.output
    assert ours(setup.target()) == {}
    setup.proxy.fault = None
    setup.run("sync")
    assert len(ours(setup.target())) == 2
    down = CalDavSource("work", "http://127.0.0.1:9/cal/", username="me", secret=lambda: "x",
                        timeout=2)
    with pytest.raises(Transient):
        down.changes(None, ReadScope(datetime(2026, 1, 1, tzinfo=TZ),
                                     datetime(2027, 1, 1, tzinfo=TZ), TZ))


def test_target_is_also_the_source_calendar(setup: Setup):
    """The user's main calendar holds both: our reminders become contact once past and are
    never "booked"."""
    config = yaml.safe_load(setup.config.read_text())
    config["target"]["url"] = config["sources"][0]["url"]
    setup.config.write_text(yaml.safe_dump(config))
    foreign = setup.source.foreign_fingerprints()
    setup.run("sync")
    written = ours(setup.source)
    assert sorted(written) == ["acme-corp.1", "globex.1"]
    status = {s["client"]: s for s in json.loads(
        setup.run("status", "--json", now="2026-11-23T10:00").stdout)}
    assert status["Globex"]["booked"] is None, "our own pending reminder is never booked"
    assert status["Globex"]["reminder"] == "2026-11-23"
    later = {s["client"]: s for s in json.loads(
        setup.run("status", "--json", now="2026-11-24T10:00").stdout)}
    assert later["Globex"]["last_contact"] == "2026-11-23", "a past reminder is contact"
    assert setup.source.foreign_fingerprints() == foreign


def test_server_without_sync_falls_back_to_query_and_ctag(dav_server: DavServer):
    harness = CalDavHarness(dav_server)
    harness.put_foreign(meeting("q1", datetime(2026, 11, 2, 9, 0, tzinfo=TZ), "Acme",
                                "jane.doe@acme.example"))
    harness.put_foreign(meeting("q-old", datetime(2019, 1, 2, 9, 0, tzinfo=TZ), "Acme 2019",
                                "jane.doe@acme.example"))
    scope = ReadScope(datetime(2026, 1, 1, tzinfo=TZ), datetime(2027, 6, 1, tzinfo=TZ), TZ,
                      needles=("acme.example",))
    source = CalDavSource("work", harness.url, username=dav_server.username,
                          secret=lambda: dav_server.password, use_sync=False)
    first = source.changes(None, scope)
    assert first.full and [e.uid for e in first.upserted] == ["q1"], "only the window"
    unchanged = source.changes(first.cursor, scope)
    assert not unchanged.full and not unchanged.upserted, "same ctag: nothing read"
    harness.put_foreign(meeting("q2", datetime(2026, 11, 9, 9, 0, tzinfo=TZ), "Acme",
                                "jane.doe@acme.example"))
    changed = source.changes(unchanged.cursor, scope)
    assert changed.full and sorted(e.uid for e in changed.upserted) == ["q1", "q2"]


def test_target_calendar_found_by_name_or_made(dav_server: DavServer, tmp_path: Path):
    from providers.caldav import CalDavTarget

    name = f"Client love {tmp_path.name[-6:]}"
    target = CalDavTarget(dav_server.base_url, calendar=name, username=dav_server.username,
                          secret=lambda: dav_server.password, stamp=lambda: datetime.now(TZ))
    assert target.list_ours() == []
    made = target.collection
    again = CalDavTarget(dav_server.base_url, calendar=name, username=dav_server.username,
                         secret=lambda: dav_server.password, stamp=lambda: datetime.now(TZ))
    assert again.collection == made, "found by its display name, not made twice"


def test_auth_caldav_stores_the_password_and_checks_the_login(
        radicale_auth: DavServer, memory_keyring, tmp_path: Path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    url = CalDavHarness(radicale_auth).url
    config = {"timezone": "UTC", "state_path": str(tmp_path / "s.sqlite"),
              "sources": [{"type": "caldav", "name": "work", "url": url, "username": "me",
                           "credential": "work-dav"}],
              "target": {"type": "ics", "path": "out.ics"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    args = ["--config", str(tmp_path / "c.yaml"), "auth", "caldav", "work-dav",
            "--password-stdin"]
    good = CliRunner().invoke(cli, args, input="s3cret-pa55\n")
    assert good.exit_code == 0, good.output
    assert "work: login OK" in good.output and "s3cret" not in good.output
    assert memory_keyring.passwords[("clientlove", "work-dav")] == "s3cret-pa55"
    bad = CliRunner().invoke(cli, args, input="wrong\n")
    assert bad.exit_code == 1 and "login failed" in bad.output and "wrong" not in bad.output


def test_broken_event_on_the_server_is_skipped_with_a_warning(xandikos: DavServer):
    """Xandikos stores what Radicale would refuse: the reader skips it, naming href and UID."""
    harness = CalDavHarness(xandikos)
    harness.put_foreign(meeting("good", datetime(2026, 11, 2, 9, 0, tzinfo=TZ), "Acme",
                                "jane.doe@acme.example"))
    broken = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//x//EN\r\nBEGIN:VEVENT\r\n"
              "UID:broken-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261399T100000Z\r\n"
              "SUMMARY:Acme\r\nATTENDEE:mailto:jane.doe@acme.example\r\nEND:VEVENT\r\n"
              "END:VCALENDAR\r\n")
    reply = harness.http.put(harness.url + "broken.ics", data=broken,
                             headers={"Content-Type": "text/calendar"})
    assert reply.status_code == 201
    scope = ReadScope(datetime(2026, 1, 1, tzinfo=TZ), datetime(2027, 6, 1, tzinfo=TZ), TZ,
                      needles=("acme.example",))
    found = CalDavSource("work", harness.url).changes(None, scope)
    assert [e.uid for e in found.upserted] == ["good"]
    (warning,) = scope.warnings
    assert "work" in warning and "broken-1" in warning and "broken.ics" in warning
