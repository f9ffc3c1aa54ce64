"""Client names of any length (issue 12 point 5).

A name reaches a target as a key: a CalDAV href (a file name on Radicale and Xandikos, at most
255 bytes), a UID, an ``X-CLIENTLOVE-KEY``, a Google private property (cut at 1,024) and,
through a digest, a Google id. The slug is bounded once, in ``daemon.identity.slug``, so every
provider is right by construction; these tests drive the CLI against the real servers.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
import yaml
from click.testing import CliRunner

from daemon.cli import cli
from daemon.config import parse_config
from daemon.identity import SLUG_MAX, make_key, parse_key, slug
from daemon.reminder_ical import key_of
from tests.google_server import EXT_VALUE_LIMIT, ID_RE, FakeGoogleCalendar
from tests.harness import CalDavHarness
from tests.servers import CountingProxy, DavServer

TZ = ZoneInfo("Europe/London")
ME = "me@example.com"


def _repeat(text: str, length: int) -> str:
    """``text`` over and over, ``length`` characters in all, ending in a letter."""
    return (text * (length // len(text) + 1))[:length - 1].rstrip().ljust(length - 1, "x") + "Z"


#: name -> the domain its meetings come from. 265 characters broke CalDAV hrefs (file name
#: too long), 1,100 broke Google's private property (cut at 1,024, so never recognised).
NAMES = {
    _repeat("Northwind Traders Holding International ", 265): "northwind.example",
    _repeat("Ärztekammer für Öffentliche Gesundheit Süd ", 1000): "aerzte.example",
    _repeat("Contoso Pharmaceuticals and Logistics Group ", 1100): "contoso.example",
    _repeat("日本橋コンサルティング株式会社", 1100): "nihonbashi.example",
    "Acme Corp": "acme.example",
}


def test_names_are_as_long_as_wanted():
    assert sorted(len(n) for n in NAMES) == [9, 265, 1000, 1100, 1100]


def test_short_slugs_are_unchanged():
    """No migration for the names people use: their keys stay what they were."""
    assert slug("Acme Corp") == "acme-corp"
    assert slug("Müller & Söhne GmbH") == "muller-sohne-gmbh"
    assert slug("  O'Brien, Smith and Partners LLP  ") == "o-brien-smith-and-partners-llp"
    assert slug("日本橋") == "c-" + slug("日本橋")[2:] and len(slug("日本橋")) == 12
    assert slug("a" * SLUG_MAX) == "a" * SLUG_MAX


@pytest.mark.parametrize("name", list(NAMES),
                         ids=["265-ascii", "1000-accented", "1100-ascii", "1100-kana", "short"])
def test_every_key_fits_every_server(name: str):
    key = make_key(slug(name), 12345)
    assert len(slug(name)) <= SLUG_MAX
    assert parse_key(key) == (slug(name), 12345)
    assert len(f"{key}.ics".encode()) <= 255 and len(key) <= EXT_VALUE_LIMIT


def test_long_names_stay_apart_and_keep_their_key_through_case_and_spacing():
    base = _repeat("Northwind Traders Holding International ", 300)
    other = base[:-1] + "Y"
    assert slug(base) != slug(other), "same start, different end: different keys"
    assert slug(base).startswith("northwind-traders-holding-international-")
    assert slug(base.upper()) == slug(base)
    assert slug(base.replace(" ", "  ")) == slug(base)
    config = parse_config(
        {"sources": [{"type": "ics", "path": "in.ics"}], "target": {"type": "ics",
                                                                    "path": "out.ics"},
         "clients": [{"name": base}, {"name": other}]}, Path("/tmp"))
    assert len({c.slug for c in config.clients}) == 2, "the config accepts both"


# -- end to end ------------------------------------------------------------------------------


def _history(path: Path) -> None:
    """One meeting with every client on Monday 2026-11-16: all due on the 23rd."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//user//their app//EN")
    cal.add("version", "2.0")
    for i, domain in enumerate(NAMES.values()):
        event = icalendar.Event()
        event.add("uid", f"meeting-{i}")
        event.add("dtstamp", datetime(2026, 1, 1, tzinfo=UTC))
        event.add("dtstart", datetime(2026, 11, 16, 10, tzinfo=TZ))
        event.add("dtend", datetime(2026, 11, 16, 11, tzinfo=TZ))
        event.add("summary", "Review")
        event.add("attendee", f"mailto:boss@{domain}", parameters={"PARTSTAT": "ACCEPTED"})
        cal.add_component(event)
    path.write_bytes(cal.to_ical())


def _config(tmp_path: Path, target: dict) -> Path:
    _history(tmp_path / "history.ics")
    config = {
        "timezone": "Europe/London",
        "state_path": str(tmp_path / "state.sqlite"),
        "sources": [{"type": "ics", "name": "work", "path": "history.ics"}],
        "target": target,
        "clients": [{"name": name, "domains": [domain]} for name, domain in NAMES.items()],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class Run:
    config: Path

    def __call__(self, *args: str, now: str) -> str:
        result = CliRunner().invoke(cli, ["--config", str(self.config), "--now", now, *args])
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout


def _one_pending_each(keys: list[str]) -> None:
    per_client = Counter(parse_key(k)[0] for k in keys if parse_key(k))
    assert per_client == Counter({slug(name): 1 for name in NAMES}), keys


def _status_is_due(run: Run, now: str) -> None:
    rows = json.loads(run("status", "--json", now=now))
    assert {r["client"]: r["reminder"] for r in rows} == dict.fromkeys(NAMES, "2026-11-23")


@pytest.fixture
def dav_proxy(dav_server: DavServer) -> Iterator[CountingProxy]:
    proxy = CountingProxy(dav_server.base_url)
    yield proxy
    proxy.close()


def test_caldav_target_takes_names_of_any_length(dav_server: DavServer,
                                                  dav_proxy: CountingProxy, tmp_path: Path):
    """Radicale and Xandikos: every href, UID and mark within 255 bytes; the second cycle
    writes nothing; exactly one pending reminder per client."""
    target_url = dav_server.new_calendar()
    run = Run(_config(tmp_path, {"type": "caldav", "url": dav_proxy.url_for(target_url)}))
    out = run("sync", now="2026-11-23T08:00")
    assert f"{len(NAMES)} writes" in out
    objects = CalDavHarness(dav_server, calendar_url=target_url).objects()
    keys = []
    for href, (_etag, cal) in objects.items():
        (event,) = cal.walk("VEVENT")
        assert len(href.rsplit("/", 1)[1].encode()) <= 255
        assert len(str(event["uid"])) <= 255 and len(str(event["x-clientlove-key"])) <= 255
        assert str(event["summary"]).startswith("Client love: "), "the title keeps the name"
        keys.append(key_of(event))
    _one_pending_each(keys)

    dav_proxy.reset()
    assert "0 writes" in run("sync", now="2026-11-23T09:00")
    assert not any(dav_proxy.counts[m] for m in ("PUT", "DELETE", "MKCALENDAR", "PROPPATCH"))
    _status_is_due(run, "2026-11-23T09:05")


def test_google_target_takes_names_of_any_length(google_api: FakeGoogleCalendar,
                                                 tmp_path: Path, monkeypatch):
    """The local Google server drops keys over 44 and cuts values over 1,024 like Google:
    our marks fit, so the second cycle recognises every event and inserts nothing."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "google-me").write_text(json.dumps({
        "token": "tok", "refresh_token": "r", "token_uri": f"{google_api.base_url}/token",
        "client_id": "c", "client_secret": "s",
        "scopes": ["https://www.googleapis.com/auth/calendar"]}))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    run = Run(_config(tmp_path, {"type": "google", "calendar": "Client love",
                                 "credential": "google-me", "api_base": google_api.base_url}))
    run("sync", now="2026-11-23T08:00")
    (calendar,) = [c for c in google_api.calendars.values() if c.summary == "Client love"]
    events = google_api.events(calendar.id)
    keys = []
    for event in events:
        private = event["extendedProperties"]["private"]
        assert ID_RE.fullmatch(event["id"])
        assert all(len(v) < EXT_VALUE_LIMIT for v in private.values())
        keys.append(private["clientloveKey"])
    _one_pending_each(keys)

    google_api.reset_counts()
    assert "0 writes" in run("sync", now="2026-11-23T09:00")
    assert all(method == "GET" for method, _path in google_api.calls), google_api.calls
    assert len(google_api.events(calendar.id)) == len(NAMES)
    _status_is_due(run, "2026-11-23T09:05")


def test_ics_target_takes_names_of_any_length(tmp_path: Path):
    run = Run(_config(tmp_path, {"type": "ics", "path": "reminders.ics"}))
    run("sync", now="2026-11-23T08:00")
    before = (tmp_path / "reminders.ics").read_bytes()
    cal = icalendar.Calendar.from_ical(before)
    _one_pending_each([key_of(e) for e in cal.walk("VEVENT")])
    assert "0 writes" in run("sync", now="2026-11-23T09:00")
    assert (tmp_path / "reminders.ics").read_bytes() == before
