"""The service through a consultant's days: the real :class:`daemon.service.Service` driven by
its own clock (cycle by cycle), its feed and /healthz on loopback, sd_notify to a socket the
test binds, and the journal as ``clientlove run`` writes it at the default level.

Targets are real: an ICS file, Radicale (fixture ``radicale``) and the local Google server
(fixture ``google_api``) driven by the real googleapiclient. The user acts on the server the
way their calendar app would: a PUT of the edited event, an ``events.patch``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
import requests
import vobject
import yaml

from daemon.logsetup import setup_logging
from daemon.notify import Notifier
from daemon.reminder_ical import key_of
from daemon.retry import Backoff
from daemon.service import Service
from providers.google import google_id
from tests.test_service import NotifySocket

TZ = ZoneInfo("Europe/London")
TOKEN = "day-feed-t0ken-8d2b61f0c4"
FAST = Backoff(attempts=3, base=0.01, cap=0.05)
CLIENTS = [
    {"name": "Acme Corp", "domains": ["acme.example"]},
    {"name": "Globex", "emails": ["hank@globex.example"]},
    {"name": "Initech", "domains": ["initech.example"]},
]


def meeting(uid: str, start: str, summary: str, attendee: str) -> str:
    moment = datetime.fromisoformat(start).replace(tzinfo=TZ)
    stamp = moment.astimezone(ZoneInfo("UTC")).strftime("%Y%m%dT%H%M%SZ")
    return (f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{stamp}\r\n"
            f"DURATION:PT1H\r\nSUMMARY:{summary}\r\nATTENDEE:mailto:{attendee}\r\nEND:VEVENT\r\n")


def calendar(*events: str) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//me//by hand//EN\r\n" + "".join(events)
            + "END:VCALENDAR\r\n")


# Acme met Mon 16 Nov (due Mon 23), Globex never, Initech Fri 20 Nov (due Fri 27).
HISTORY = [meeting("m-acme", "2026-11-16T10:00", "Acme review", "jane@acme.example"),
           meeting("m-initech", "2026-11-20T10:00", "Initech call", "peter@initech.example")]


@pytest.fixture
def journal() -> Iterator[io.StringIO]:
    """The log as ``clientlove run`` writes it without ``-v``; logging restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: lg.level for name, lg in logging.root.manager.loggerDict.items()
              if isinstance(lg, logging.Logger)}
    stream = io.StringIO()
    setup_logging(0, stream=stream)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


class Day:
    """One consultant's machine: a history file, a config, credentials, and the service."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch, journal: io.StringIO
                 ) -> None:
        self.root = root
        self.journal = journal
        self.creds = root / "creds"
        self.creds.mkdir()
        (self.creds / "feed-token").write_text(TOKEN + "\n")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(self.creds))
        self.history(*HISTORY)
        self.notify = NotifySocket(root / "notify.sock")
        self.now = datetime(2026, 11, 23, 8, 0, tzinfo=TZ)
        self.service: Service | None = None
        self.listen = "127.0.0.1:0"

    def history(self, *events: str) -> None:
        (self.root / "history.ics").write_text(calendar(*events))

    def configure(self, target: dict | None = None, **extra: object) -> None:
        config = {
            "timezone": "Europe/London",
            "state_path": str(self.root / "state.sqlite"),
            "sources": [{"type": "ics", "name": "work", "path": "history.ics"}],
            "target": target or {"type": "ics", "path": "reminders.ics"},
            "service": {"interval": "15min", "jitter": "0s"},
            "feed": {"listen": self.listen, "token_credential": "feed-token"},
            "clients": CLIENTS,
            **extra,
        }
        (self.root / "config.yaml").write_text(yaml.safe_dump(config))

    def start(self) -> Service:
        """What ``run`` does before its first cycle: load, then the feed server."""
        self.service = Service(self.root / "config.yaml", clock=lambda: self.now,
                               notifier=Notifier(str(self.notify.path)), backoff=FAST)
        self.service._start_feed()
        return self.service

    def at(self, when: str):
        """The scheduler's cycle at ``when`` (local time)."""
        assert self.service is not None
        self.now = datetime.fromisoformat(when).replace(tzinfo=TZ)
        seen = len(self.notify.messages)
        report = self.service.cycle()
        assert report is not None
        self.status = self.notify.wait_for("STATUS=", after=seen)
        return report

    @property
    def port(self) -> int:
        assert self.service is not None and self.service._feed_server is not None
        return self.service._feed_server.port

    def get(self, path: str, **headers: str) -> requests.Response:
        return requests.get(f"http://127.0.0.1:{self.port}{path}", headers=headers, timeout=10)

    def feed(self) -> dict[str, icalendar.cal.Component]:
        reply = self.get(f"/{TOKEN}/clientlove.ics")
        assert reply.status_code == 200, reply.text
        cal = icalendar.Calendar.from_ical(reply.content)
        assert_zones_cover(reply.content)
        return {key_of(e): e for e in cal.walk("VEVENT")}

    def lines(self) -> list[str]:
        return self.journal.getvalue().splitlines()

    def close(self) -> None:
        if self.service is not None:
            self.service.close()
        self.notify.close()


def assert_zones_cover(body: bytes) -> None:
    """Every TZID an event uses has a VTIMEZONE whose transitions reach that event, and a
    reader that goes by the VTIMEZONE alone (vobject) places every event where icalendar
    (which goes by the zone's name) does."""
    cal = icalendar.Calendar.from_ical(body)
    zones = {str(z["tzid"]): z for z in cal.walk("VTIMEZONE")}
    for event in cal.walk("VEVENT"):
        for name in ("dtstart", "dtend"):
            prop = event.get(name)
            tzid = prop.params.get("TZID") if prop is not None else None
            if tzid is None:
                continue
            assert tzid in zones, f"no VTIMEZONE for {tzid}"
            years = [d.dt.year for sub in zones[tzid].subcomponents for d in _onsets(sub)]
            rules = any(sub.get("rrule") for sub in zones[tzid].subcomponents)
            assert rules or min(years) <= prop.dt.year <= max(years), (tzid, prop.dt, years)
    placed = {str(e.uid.value): e.dtstart.value
              for e in vobject.readOne(body.decode()).vevent_list}
    for event in cal.walk("VEVENT"):
        start = event["dtstart"].dt
        if isinstance(start, datetime):
            assert placed[str(event["uid"])].astimezone(UTC) == start.astimezone(UTC)


def _onsets(sub: icalendar.cal.Component) -> list:
    rdates = sub.get("rdate") or []
    return [sub["dtstart"], *(d for r in (rdates if isinstance(rdates, list) else [rdates])
                              for d in r.dts)]


def local(event: icalendar.cal.Component) -> datetime:
    return event["dtstart"].dt.astimezone(TZ).replace(tzinfo=None)


@pytest.fixture
def day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, journal: io.StringIO,
        memory_keyring) -> Iterator[Day]:
    d = Day(tmp_path, monkeypatch, journal)
    yield d
    d.close()


# -- 1. one journal line per cycle at the default level -----------------------------------------

def test_one_line_per_cycle_at_the_default_level(day: Day):
    day.configure()
    day.start()
    day.at("2026-11-23T08:00")
    day.at("2026-11-23T08:15")
    day.history(*HISTORY, meeting("m-i2", "2026-11-25T10:00", "Initech workshop",
                                  "peter@initech.example"))
    day.at("2026-11-23T08:30")  # Initech is booked: its reminder goes
    lines = [line for line in day.lines() if " cycle: " in line]
    assert [line.split("clientlove.service: ", 1)[1] for line in lines] == [
        "cycle: 3 clients, 3 reminders written (3 create), 0 errors",
        "cycle: nothing changed, 3 clients",
        "cycle: 3 clients, 1 reminder written (1 delete), 0 errors",
    ]
    assert all(" INFO " in line for line in lines)
    others = [line for line in day.lines() if "clientlove.service:" not in line]
    assert others == [], "nothing but the service's own lines at the default level"


def test_errors_keep_their_own_lines_and_the_cycle_line_counts_them(day: Day):
    day.configure()
    day.start()
    day.at("2026-11-23T08:00")
    (day.root / "history.ics").unlink()
    day.at("2026-11-23T08:15")
    text = day.journal.getvalue()
    assert " ERROR clientlove.service: source work:" in text
    assert "cycle: 3 clients, 0 reminders written, 1 error" in text


def test_clientlove_run_without_v_logs_each_cycle(tmp_path: Path):
    """The real command as systemd starts it: no -v, and the cycle is in the journal."""
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "feed-token").write_text(TOKEN)
    (tmp_path / "history.ics").write_text(calendar(*HISTORY))
    config = {"timezone": "Europe/London", "state_path": str(tmp_path / "state.sqlite"),
              "sources": [{"type": "ics", "name": "work", "path": "history.ics"}],
              "target": {"type": "ics", "path": "reminders.ics"},
              "feed": {"listen": "127.0.0.1:0", "token_credential": "feed-token"},
              "clients": CLIENTS}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(tmp_path / "creds"),
           "PYTHONUNBUFFERED": "1"}
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "JOURNAL_STREAM"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "daemon", "--config",
                             str(tmp_path / "config.yaml"), "run"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        while not any(" cycle: " in line for line in seen):
            try:  # the daemon's own output paces the test; the timeout only ends a failure
                seen.append(lines.get(timeout=60))
            except queue.Empty:
                break
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(timeout=30)  # the pipe ends with the process
    finally:
        proc.kill()
    while not lines.empty():
        seen.append(lines.get())
    out = "".join(seen)
    assert proc.returncode == 0, out
    assert " INFO clientlove.service: cycle: 3 clients, 3 reminders written (3 create)" in out
    assert "stopped" in out
    assert "apscheduler" not in out and "waitress" not in out
    assert TOKEN not in out


# -- 2. a feed that cannot start leaves /healthz and /metrics, and the cycles ---------------------

@pytest.mark.parametrize("token", [None, "sh0rtT0k"], ids=["no-token", "short-token"])
def test_without_a_usable_token_health_and_metrics_still_serve(day: Day, token: str | None):
    if token is None:
        (day.creds / "feed-token").unlink()
    else:
        (day.creds / "feed-token").write_text(token)
    day.configure()
    day.start()
    day.at("2026-11-23T08:00")
    day.at("2026-11-23T08:15")

    health = day.get("/healthz")
    assert health.status_code == 200
    info = health.json()
    assert info["cycles"] == 2 and info["status"] == "ok"
    assert "clientlove feed token" in info["feed"]
    assert "clientlove_cycles_total 2.0" in day.get("/metrics").text
    for guess in (TOKEN, "sh0rtT0k", "anything-at-all-123"):
        reply = day.get(f"/{guess}/clientlove.ics")
        assert reply.status_code == 503
        assert "clientlove feed token" in reply.text and "Traceback" not in reply.text
    assert day.get("/sh0rtT0k/other.ics").status_code == 404
    assert "feed: feed URL disabled" in day.status
    errors = [line for line in day.lines() if " ERROR " in line]
    assert len(errors) == 1 and "clientlove feed token" in errors[0], errors
    assert (day.root / "reminders.ics").exists(), "the cycles wrote"
    everything = day.journal.getvalue() + health.text + "\n".join(day.notify.messages)
    if token:
        assert token not in everything


def test_port_in_use_keeps_cycling_and_binds_when_free(day: Day):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    day.listen = f"127.0.0.1:{port}"
    day.configure()
    service = day.start()
    assert service._feed_server is None

    day.at("2026-11-23T08:00")
    assert f"feed: cannot listen on 127.0.0.1:{port} (address already in use)" in day.status
    assert "trying again every cycle" in day.status
    day.at("2026-11-23T08:15")
    assert "cannot listen" in day.status, "still busy: still said"
    assert (day.root / "reminders.ics").exists(), "the cycles go on"
    errors = [line for line in day.lines() if " ERROR " in line]
    assert len(errors) == 1 and f"cannot listen on 127.0.0.1:{port}" in errors[0]

    blocker.close()  # whatever held the port went away
    day.at("2026-11-23T08:30")
    assert "; feed:" not in day.status, day.status
    assert day.port == port
    info = day.get("/healthz").json()
    assert info["feed"].startswith(f"serving on http://127.0.0.1:{port}")
    assert "attempt 4" in info["feed"] and "busy" in info["feed"]
    assert len(day.feed()) == 3
    assert any("after 3 failed attempts" in line for line in day.lines())


# -- 3. the overdue metric agrees with the plans ------------------------------------------------

def test_an_announcement_makes_a_client_overdue_and_the_metric_counts_it(day: Day):
    day.configure(announcements=[{"date": "2026-11-20", "text": "New audit product",
                                  "clients": ["Acme Corp"]}])
    day.start()
    report = day.at("2026-11-23T08:00")
    plans = {p.client: p for p in report.plans}
    assert "overdue since 2026-11-20" in plans["Acme Corp"].notes
    assert not any("overdue" in note for note in plans["Globex"].notes), "due today: not late"
    metrics = day.get("/metrics").text
    assert "clientlove_clients_overdue 1.0" in metrics.splitlines(), "the notes' one overdue"


# -- 4. the feed shows what the target holds ----------------------------------------------------

def test_radicale_feed_serves_the_moved_reminder_and_the_past_ones(day: Day, radicale):
    from tests.harness import CalDavHarness

    harness = CalDavHarness(radicale)
    (day.creds / "dav").write_text(radicale.password)
    day.configure({"type": "caldav", "url": harness.url, "username": radicale.username,
                   "credential": "dav"})
    day.start()
    day.at("2026-11-23T08:00")
    assert sorted(day.feed()) == ["acme-corp.1", "globex.1", "initech.1"]

    # the user moves Acme's reminder in their calendar app; Initech gets booked
    moved = datetime(2026, 11, 24, 14, 0, tzinfo=TZ)
    harness.user_edit("acme-corp.1", dtstart=moved, dtend=moved + timedelta(minutes=15))
    day.history(*HISTORY, meeting("m-i2", "2026-11-25T10:00", "Initech workshop",
                                  "peter@initech.example"))
    report = day.at("2026-11-23T08:30")
    assert {a.key: a.kind.value for a in report.actions}["acme-corp.1"] == "leave"
    feed = day.feed()
    assert sorted(feed) == ["acme-corp.1", "globex.1"], "the deleted one is gone, the moved kept"
    assert local(feed["acme-corp.1"]) == datetime(2026, 11, 24, 14, 0)
    assert feed["acme-corp.1"]["dtstart"].params["TZID"] == "Europe/London"
    assert "Last contact: 2026-11-16 Acme review" in str(feed["acme-corp.1"]["description"])

    etag = day.get(f"/{TOKEN}/clientlove.ics").headers["ETag"]
    day.at("2026-11-23T08:45")
    assert day.get(f"/{TOKEN}/clientlove.ics", **{"If-None-Match": etag}).status_code == 304

    # days later: the reminders of Monday and Tuesday are history, and stay in the feed
    day.at("2026-11-26T08:00")
    feed = day.feed()
    assert {"acme-corp.1", "globex.1"} <= set(feed)
    assert local(feed["acme-corp.1"]) == datetime(2026, 11, 24, 14, 0)
    assert local(feed["globex.1"]) == datetime(2026, 11, 23, 9, 30)
    assert {"acme-corp.2", "globex.2", "initech.2"} <= set(feed), "the next ones, as written"
    held = {key_of(e): e for e in harness.all_events() if key_of(e)}
    assert sorted(held) == sorted(feed), "the feed lists what Radicale holds"
    for key, event in feed.items():
        assert local(event) == local(held[key])
        assert "ATTENDEE" not in event and "ORGANIZER" not in event


def test_google_feed_serves_the_moved_reminder_and_the_past_ones(day: Day, google_api):
    from tests.google_server import google_service
    from tests.test_google import credential

    (day.creds / "google-me").write_text(credential(google_api))
    day.configure({"type": "google", "calendar": "Client love", "credential": "google-me",
                   "api_base": google_api.base_url})
    day.start()
    day.at("2026-11-23T08:00")
    assert sorted(day.feed()) == ["acme-corp.1", "globex.1", "initech.1"]

    (calendar_id,) = [c.id for c in google_api.calendars.values() if c.summary == "Client love"]
    moved = datetime(2026, 11, 25, 16, 30, tzinfo=TZ)
    google_service(google_api.base_url).events().patch(
        calendarId=calendar_id, eventId=google_id("acme-corp.1"),
        body={"start": {"dateTime": moved.isoformat(), "timeZone": "Europe/London"},
              "end": {"dateTime": (moved + timedelta(minutes=15)).isoformat(),
                      "timeZone": "Europe/London"},
              "summary": "Client love: Acme (call Jane)"}).execute()
    report = day.at("2026-11-23T09:00")
    assert {a.key: a.kind.value for a in report.actions}["acme-corp.1"] == "leave"
    feed = day.feed()
    assert sorted(feed) == ["acme-corp.1", "globex.1", "initech.1"]
    assert local(feed["acme-corp.1"]) == datetime(2026, 11, 25, 16, 30)
    assert str(feed["acme-corp.1"]["summary"]) == "Client love: Acme (call Jane)"
    # due today, written at 08:00 for 09:30: a day ahead has passed, so the alarm fires at once
    assert [str(a["trigger"].to_ical(), "ascii") for a in feed["globex.1"].walk("VALARM")] == \
        ["-PT1H30M"]

    day.at("2026-11-27T08:00")
    feed = day.feed()
    assert local(feed["acme-corp.1"]) == datetime(2026, 11, 25, 16, 30), "past, as moved"
    assert local(feed["globex.1"]) == datetime(2026, 11, 23, 9, 30), "past, as written"
    assert "globex.2" in feed
    live = {e["extendedProperties"]["private"]["clientloveKey"]
            for e in google_api.events(calendar_id)}
    assert sorted(live) == sorted(feed)
    assert json.loads(day.get("/healthz").text)["errors"] == []
