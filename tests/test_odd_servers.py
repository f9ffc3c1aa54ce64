"""Odd, slow and hostile servers (issue 17, points 3, 5, 6, 7), through the CLI and the service.

A consultant's history lives in two calendars: a file (healthy) and a CalDAV collection or an
ICS feed served by :class:`tests.hostile_servers.OddServer`, which turns into a captive portal,
a server dripping a byte at a time, or one whose answers never end. Whatever it sends, the
cycle goes on: that source fails with one line naming it (its URL cut to scheme and host),
the clients of the healthy source still get their reminders, and /healthz says why.
"""

from __future__ import annotations

import gc
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from daemon.cli import cli
from daemon.model import ChangeSet, Event, ReadScope
from daemon.redact import redact_url, redact_urls
from daemon.state import BATCH, State
from providers.base import BadData, ProviderError, TooSlow
from providers.caldav import CalDavSource
from providers.ics import IcsSource
from tests.hostile_servers import FEED_SECRET, OddServer, meeting
from tests.test_service_day import Day, calendar, journal  # noqa: F401 - the fixture

TZ = UTC
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=TZ)
CLIENTS = [{"name": "Acme Corp", "domains": ["acme.example"]},
           {"name": "Globex", "domains": ["globex.example"]}]
GLOBEX = meeting("m-globex", NOW - timedelta(days=6), "Globex review", "hank@globex.example")


def acme_file(root: Path) -> None:
    """The healthy source: one meeting with Acme a week ago."""
    (root / "history.ics").write_text(calendar(
        "BEGIN:VEVENT\r\nUID:m-acme\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261116T100000Z\r\n"
        "DURATION:PT1H\r\nSUMMARY:Acme review\r\nATTENDEE:mailto:jane@acme.example\r\n"
        "END:VEVENT\r\n"))


def write_config(root: Path, odd: dict) -> Path:
    config = {
        "timezone": "UTC",
        "state_path": str(root / "state.sqlite"),
        "sources": [{"type": "ics", "name": "work", "path": "history.ics"}, odd],
        "target": {"type": "ics", "path": "reminders.ics"},
        "clients": CLIENTS,
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def odd() -> Iterator[OddServer]:
    server = OddServer({"m-globex.ics": GLOBEX})
    yield server
    server.close()


def sync(config: Path, when: datetime, *extra: str):
    env = {"CLIENTLOVE_CONFIG": None, "CREDENTIALS_DIRECTORY": None}
    return CliRunner().invoke(cli, ["sync", "--config", str(config), "--now",
                                    when.strftime("%Y-%m-%dT%H:%M"), *extra], env=env)


def reminders(root: Path) -> set[str]:
    text = (root / "reminders.ics").read_text()
    return {line.split(":", 1)[1].strip() for line in text.splitlines()
            if line.startswith("SUMMARY:Client love")}


def scope() -> ReadScope:
    return ReadScope(start=NOW - timedelta(days=400), end=NOW + timedelta(days=120), tz=TZ,
                     needles=("acme.example", "globex.example", "@clientlove"))


# -- 5. any answer a server can send is a typed error for that source ----------------------------

@pytest.mark.parametrize(("mode", "said"), [
    ("html", "HTTP 200 with an HTML page, not a DAV multistatus"),
    ("text", "HTTP 200 with text/plain, not a DAV multistatus"),
    ("notdav", "the answer is XML <result>, not a DAV multistatus"),
])
def test_an_odd_caldav_answer_fails_that_source_only(tmp_path: Path, odd: OddServer, mode: str,
                                                     said: str):
    acme_file(tmp_path)
    config = write_config(tmp_path, {"type": "caldav", "name": "dav", "url": odd.url})
    first = sync(config, NOW)
    assert first.exit_code == 0, first.output
    assert reminders(tmp_path) == {"Client love: Acme Corp", "Client love: Globex"}

    odd.mode = mode  # the hotel's Wi-Fi answers instead of the server
    (tmp_path / "reminders.ics").unlink()
    later = sync(config, NOW + timedelta(days=2))
    assert later.exception is None or isinstance(later.exception, SystemExit), later.exception
    assert "Traceback" not in later.output
    assert f"source dav: sync http://127.0.0.1:{odd.url.split(':')[2].split('/')[0]}/…: " \
        f"{said}" in " ".join(later.output.split()), later.output
    assert later.exit_code != 0
    assert odd.url not in later.output and "/dav/me" not in later.output, "URL shown whole"
    # the history already read stays: both clients are still planned and written
    assert reminders(tmp_path) == {"Client love: Acme Corp", "Client love: Globex"}


def test_the_service_goes_on_and_healthz_says_why(tmp_path: Path, monkeypatch, journal,  # noqa: F811
                                                  memory_keyring, odd: OddServer):
    day = Day(tmp_path, monkeypatch, journal)
    try:
        day.history("BEGIN:VEVENT\r\nUID:m-acme\r\nDTSTAMP:20260101T000000Z\r\n"
                    "DTSTART:20261116T100000Z\r\nDURATION:PT1H\r\nSUMMARY:Acme review\r\n"
                    "ATTENDEE:mailto:jane@acme.example\r\nEND:VEVENT\r\n")
        day.configure(sources=[{"type": "ics", "name": "work", "path": "history.ics"},
                               {"type": "caldav", "name": "dav", "url": odd.url}],
                      clients=CLIENTS, timezone="UTC")
        day.start()
        first = day.at("2026-11-23T08:00")
        assert first.ok, first.errors
        odd.mode = "html"
        report = day.at("2026-11-24T08:00")
        health = day.get("/healthz").json()
        assert health["status"] == "failing", health
        (error,) = health["errors"]
        assert error.startswith("source dav: ") and "HTML page" in error, error
        assert "/dav/me" not in json.dumps(health), health
        # the history already read stays: both clients keep their reminders
        assert {p.client for p in report.plans if p.reminder_day} == {"Acme Corp", "Globex"}
        assert {str(e["summary"]) for e in day.feed().values()} == {
            "Client love: Acme Corp", "Client love: Globex"}
        assert any("source dav" in line and "HTML page" in line for line in day.lines())
    finally:
        day.close()


# -- 6. an XML entity in calendar-data: the event is skipped with a warning naming it ------------

def test_an_xml_entity_in_calendar_data_is_a_warning_naming_the_uid(tmp_path: Path,
                                                                    odd: OddServer):
    acme_file(tmp_path)
    odd.objects["x.ics"] = meeting("evil-7", NOW - timedelta(days=2), "Globex call",
                                   "hank@globex.example")
    odd.mode, odd.entity_object = "entity", "x.ics"
    config = write_config(tmp_path, {"type": "caldav", "name": "dav", "url": odd.url})
    result = sync(config, NOW, "-v")
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "skipped event evil-7" in out and "&xxe;" in out, result.output
    assert "root:" not in out  # /etc/passwd was never read
    assert reminders(tmp_path) == {"Client love: Acme Corp", "Client love: Globex"}


# -- 3. deadlines, caps, bounded batches ---------------------------------------------------------

def test_a_feed_dripping_bytes_stops_at_the_deadline(tmp_path: Path, odd: OddServer):
    acme_file(tmp_path)
    odd.mode = "drip"  # 100 KB at a byte every 0.2 s: hours, against a deadline of 1 s
    config = write_config(tmp_path, {"type": "ics", "name": "feed", "url": odd.feed_url,
                                     "deadline": 1})
    result = sync(config, NOW)
    out = " ".join(result.output.split())
    assert "source feed: fetch http://127.0.0.1:" in out, result.output
    assert "no complete answer within 1 s" in out, result.output
    assert FEED_SECRET not in result.output
    assert odd.sent < 1000, "the read was not cut at the deadline"


@pytest.mark.parametrize("mode", ["drip", "drip-headers"])
def test_a_caldav_server_dripping_bytes_stops_at_the_deadline(odd: OddServer, mode: str):
    odd.mode = mode
    source = CalDavSource("dav", odd.url, deadline=1.0)
    with pytest.raises(TooSlow, match="no complete answer within 1 s"):
        source.changes(None, scope())
    assert odd.sent < 1000


def test_the_deadline_covers_every_request_of_a_read(odd: OddServer, monkeypatch):
    """A read of many multigets: each is quick, together they are over the deadline."""
    odd.objects = {f"e{i}.ics": meeting(f"e{i}", NOW - timedelta(days=i), "Acme sync",
                                        "jane@acme.example") for i in range(6)}
    monkeypatch.setattr("providers.caldav.MULTIGET_CHUNK", 1)
    ticks = itertools.count()
    # a clock that moves one "second" per look: the sixth request is past a 4 s deadline
    monkeypatch.setattr("providers.caldav.Deadline",
                        lambda seconds: _Deadline(seconds, lambda: next(ticks)))
    with pytest.raises(TooSlow):
        CalDavSource("dav", odd.url, deadline=4.0).changes(None, scope())


def _Deadline(seconds: float, clock):  # stands in for the class
    from providers.fetch import Deadline

    return Deadline(seconds, clock=clock)


def test_caldav_answers_are_capped_while_they_stream(odd: OddServer, monkeypatch):
    odd.mode = "hrefs"  # a sync answer that never ends
    with pytest.raises(BadData, match="over 1 MB; refused"):
        CalDavSource("dav", odd.url, max_answer=1 << 20).changes(None, scope())
    sent = odd.sent
    assert sent < 8 << 20, f"{sent} bytes were read for a 1 MB cap"
    monkeypatch.setattr("providers.caldav.MAX_OBJECTS", 1000)
    with pytest.raises(BadData, match="lists more than 1,000 objects"):
        CalDavSource("dav", odd.url).changes(None, scope())
    odd.mode = "bigdata"  # one calendar-data that never ends
    odd.objects = {"big.ics": GLOBEX}
    with pytest.raises(BadData, match="over 2 MB; refused"):
        CalDavSource("dav", odd.url, max_answer=2 << 20).changes(None, scope())


def test_caldav_events_reach_the_state_from_a_spool(odd: OddServer, tmp_path: Path):
    """A read of many objects holds no more events in memory than a batch."""
    odd.objects = {f"e{i:04d}.ics": meeting(f"e{i:04d}", NOW - timedelta(days=i % 200),
                                            "Acme sync", "jane@acme.example")
                   for i in range(600)}
    gc.collect()
    before = sum(type(o) is Event for o in gc.get_objects())  # other tests' events too
    changes = CalDavSource("dav", odd.url).changes(None, scope())
    gc.collect()
    alive = sum(type(o) is Event for o in gc.get_objects()) - before
    assert alive < 50, f"{alive} events held in memory after the read"
    state = State(tmp_path / "state.sqlite")
    assert state.apply_changes("dav", changes, NOW) == 600
    assert json.loads(state.cursor("dav") or "{}")["mode"] == "sync"
    state.close()


def test_apply_changes_writes_a_stream_in_bounded_batches(tmp_path: Path):
    state = State(tmp_path / "state.sqlite")
    lag: list[int] = []

    def stream() -> Iterator[Event]:
        for i in range(5 * BATCH + 7):
            stored = state.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            lag.append(i - stored)
            yield Event(source="big", uid=f"u{i}", start=NOW, summary="Acme sync")

    count = state.apply_changes("big", ChangeSet(upserted=stream(), full=True, cursor="c"),
                                NOW)
    assert count == 5 * BATCH + 7
    assert max(lag) <= BATCH, "the stream was read whole before writing"
    state.close()


def test_a_streamed_empty_full_read_still_trips_the_source_guard(tmp_path: Path):
    from daemon.cycle import CycleReport, read_sources

    state = State(tmp_path / "state.sqlite")
    events = [Event(source="s", uid=f"u{i}", start=NOW) for i in range(12)]
    state.apply_changes("s", ChangeSet(upserted=tuple(events), full=True, cursor="1"), NOW)

    class Streaming:
        name = "s"

        def __init__(self, items: list[Event]) -> None:
            self.items = items

        def changes(self, cursor, scope):
            return ChangeSet(upserted=iter(self.items), full=True, cursor="2")

    report = CycleReport(now=NOW, today=NOW.date())
    read_sources([Streaming([])], state, scope(), NOW, report)
    assert report.refused and "suddenly returned no events" in report.refused
    report = CycleReport(now=NOW, today=NOW.date())
    read_sources([Streaming(events[:3])], state, scope(), NOW, report)
    assert report.refused is None and state.event_count("s") == 3
    state.close()


# -- 7. secret URLs never shown whole -------------------------------------------------------------

def test_a_feed_url_secret_never_reaches_the_output(tmp_path: Path, odd: OddServer):
    acme_file(tmp_path)
    odd.mode = "html"  # the feed's answer is a login page: an error naming the source
    config = write_config(tmp_path, {"type": "ics", "name": "feed", "url": odd.feed_url})
    result = sync(config, NOW, "-vv")
    assert "is not a calendar" in result.output, result.output
    assert FEED_SECRET not in result.output, result.output
    assert f"{odd.base}/…" in result.output


@pytest.mark.parametrize("status", [401, 404, 500, 418])
def test_every_ics_error_shows_the_url_redacted(status: int):
    import http.server
    import threading

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/p/{FEED_SECRET}.ics?token=x"
        with pytest.raises(ProviderError) as raised:
            IcsSource("feed", url=url).changes(None, scope())
    finally:
        server.shutdown()
        server.server_close()
    assert FEED_SECRET not in str(raised.value) and "token" not in str(raised.value)
    assert f"http://127.0.0.1:{server.server_address[1]}/…" in str(raised.value)


def test_redact_keeps_scheme_and_host_only():
    assert redact_url("https://cal.example/private/abc/basic.ics?token=s") == \
        "https://cal.example/…"
    assert redact_url("http://user:pw@h.example:8443/x") == "http://h.example:8443/…"
    assert redact_url("https://h.example") == "https://h.example/"
    assert redact_url("http://[::1]:8080/a?b") == "http://[::1]:8080/…"
    text = "cannot fetch https://h.example/s3cret.ics?token=t: HTTP 500 (see http://x.y/z)."
    assert redact_urls(text) == "cannot fetch https://h.example/…: HTTP 500 (see http://x.y/…)."
    assert "s3cret" not in str(ProviderError("GET https://h.example/s3cret failed"))
