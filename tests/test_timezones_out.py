"""Issue 12.3: every calendar we write carries time zones that every reader takes alike.

A reminder file written over years must read the same in icalendar, vobject and Mozilla's
ical.js (what Thunderbird and many web calendars use). ical.js is installed from npm into a
temporary folder when the test runs; the test is skipped only when there is no npm.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
import vobject
import yaml
from click.testing import CliRunner

from daemon.cli import cli
from daemon.model import Reminder
from daemon.reminder_ical import add_timezones, key_of, new_calendar, to_calendar_text
from tests.test_cli_e2e import calendar, vevent

LONDON = ZoneInfo("Europe/London")

_ICALJS = """
import ICAL from "ical.js";
import fs from "fs";
const comp = new ICAL.Component(ICAL.parse(fs.readFileSync(process.argv[2], "utf8")));
for (const tz of comp.getAllSubcomponents("vtimezone")) ICAL.TimezoneService.register(tz);
const out = {};
for (const vevent of comp.getAllSubcomponents("vevent")) {
  const event = new ICAL.Event(vevent);
  out[event.uid] = [event.startDate.toJSDate().toISOString(),
                    event.endDate.toJSDate().toISOString()];
}
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="session")
def icaljs(tmp_path_factory) -> Path:
    """A folder with ical.js installed and a script printing each event's start and end."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("npm is not installed: ical.js cannot be checked")
    folder = tmp_path_factory.mktemp("icaljs")
    (folder / "package.json").write_text('{"name": "check", "private": true, "type": "module"}')
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent", "ical.js@2"],
                   cwd=folder, check=True, timeout=300, capture_output=True)
    (folder / "starts.mjs").write_text(_ICALJS)
    return folder


def icaljs_times(folder: Path, path: Path) -> dict[str, tuple[datetime, datetime]]:
    reply = subprocess.run(["node", str(folder / "starts.mjs"), str(path)], check=True,
                           capture_output=True, text=True, timeout=60)
    return {uid: tuple(datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times)
            for uid, times in json.loads(reply.stdout).items()}


def vobject_times(text: str) -> dict[str, tuple[datetime, datetime]]:
    """Each event as vobject reads it with the file's own VTIMEZONEs (``gettzinfo``, dateutil's
    reader). vobject's ``readOne`` itself names zones through pytz, whose tables end in 2037:
    those readings are compared too, for the years pytz knows."""
    parsed = vobject.readOne(text, validate=True)
    zones = {z.tzid.value: z.gettzinfo() for z in parsed.vtimezone_list}
    raw = {e.uid.value: e for e in vobject.readOne(text, transform=False).vevent_list}

    def instant(line, native: datetime) -> datetime:
        tzid = line.params.get("TZID", [None])[0]
        moment = datetime.strptime(line.value.rstrip("Z"), "%Y%m%dT%H%M%S")
        moment = moment.replace(tzinfo=zones[tzid] if tzid else UTC)
        if moment.year < 2038:
            assert moment.astimezone(UTC) == native.astimezone(UTC), (tzid, line.value)
        return moment.astimezone(UTC)

    return {e.uid.value: (instant(raw[e.uid.value].dtstart, e.dtstart.value),
                          instant(raw[e.uid.value].dtend, e.dtend.value))
            for e in parsed.vevent_list}


def icalendar_times(data: bytes) -> dict[str, tuple[datetime, datetime]]:
    return {str(e["uid"]): (e["dtstart"].dt.astimezone(UTC), e["dtend"].dt.astimezone(UTC))
            for e in icalendar.Calendar.from_ical(data).walk("VEVENT")}


def assert_readers_agree(path: Path, icaljs: Path, truth: dict[str, datetime]) -> None:
    """icalendar, vobject and ical.js read every event at the instants ``truth`` gives."""
    data = path.read_bytes()
    readings = {"icalendar": icalendar_times(data), "vobject": vobject_times(data.decode()),
                "ical.js": icaljs_times(icaljs, path)}
    for reader, times in readings.items():
        wrong = {uid: times[uid][0] for uid, start in truth.items() if times[uid][0] != start}
        assert not wrong, (reader, wrong)
        assert all(end - start == timedelta(minutes=15) for start, end in times.values())


def test_a_reminder_file_written_over_years_reads_alike_everywhere(tmp_path, icaljs):
    """Reminders written in 2026, 2029 and 2031 into one file, all at 09:30 London time (BST
    in summer): each reader sees the same instant, not an hour off in the later years."""
    config = {"timezone": "Europe/London", "me": ["me@myfirm.example"],
              "state_path": "state.sqlite",
              "sources": [{"type": "ics", "path": "history.ics"}],
              "target": {"type": "ics", "path": "reminders.ics"},
              "clients": [{"name": "Acme Corp", "emails": ["jane@acme.example"]}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    meetings: list[str] = []
    runner = CliRunner()
    for year in (2026, 2029, 2031):
        # a meeting on the first Monday of June; the next cycle writes the reminder a week on
        monday = date(year, 6, 1) + timedelta(days=(7 - date(year, 6, 1).weekday()) % 7)
        meetings.append(vevent(f"m{year}", f"{monday:%Y%m%d}T100000", "Catch-up",
                               attendees=[("jane@acme.example", "ACCEPTED")]))
        (tmp_path / "history.ics").write_text(calendar(*meetings))
        result = runner.invoke(cli, ["--config", str(tmp_path / "config.yaml"),
                                     "--now", f"{monday:%Y-%m-%d}T18:00", "sync"])
        assert result.exit_code == 0, result.output
    path = tmp_path / "reminders.ics"
    ours = [e for e in icalendar.Calendar.from_ical(path.read_bytes()).walk("VEVENT")
            if key_of(e)]
    assert sorted({e["dtstart"].dt.year for e in ours}) == [2026, 2029, 2031]
    truth = {str(e["uid"]): e["dtstart"].dt.astimezone(UTC) for e in ours}
    for event in ours:
        assert event["dtstart"].dt.hour == 9 and event["dtstart"].dt.utcoffset() == \
            timedelta(hours=1)
    assert_readers_agree(path, icaljs, truth)
    assert b"only works from" not in path.read_bytes()


def reminder(start: datetime, key: str = "acme-corp.1") -> Reminder:
    return Reminder(key=key, client="Acme Corp", summary="Client love: Acme Corp", start=start,
                    duration=timedelta(minutes=15), description="note",
                    alarm_before=timedelta(days=1), alarm_text="tomorrow")


ZONES = ["Europe/London", "America/New_York", "Australia/Sydney", "Asia/Jerusalem",
         "America/Santiago", "Africa/Casablanca", "Europe/Dublin", "Asia/Tokyo"]


def test_feed_and_object_bodies_cover_every_zone_and_year(tmp_path, icaljs):
    """The served feed (``add_timezones``) over many zones and years, and a CalDAV object body
    (``to_calendar_text``) years after the zone definition's first year, read alike."""
    cal = new_calendar("feed")
    truth: dict[str, datetime] = {}
    for zone in ZONES:
        for year in (2026, 2029, 2031, 2040):
            for month in (1, 4, 7, 10):
                start = datetime(year, month, 15, 9, 30, tzinfo=ZoneInfo(zone))
                rem = reminder(start, f"c-{len(truth)}.1")
                event = icalendar.Calendar.from_ical(
                    to_calendar_text(rem, datetime(2026, 1, 1, tzinfo=UTC))).walk("VEVENT")[0]
                cal.add_component(event)
                truth[rem.uid] = start.astimezone(UTC)
    # a stale definition left by an older version must not stay
    cal.add_component(icalendar.Timezone.from_tzid(
        "Europe/London", first_date=date(2025, 1, 1), last_date=date(2028, 1, 1)))
    add_timezones(cal)
    feed = tmp_path / "feed.ics"
    feed.write_bytes(cal.to_ical())
    assert_readers_agree(feed, icaljs, truth)
    assert b"only works from" not in cal.to_ical()
    assert sorted(str(z["tzid"]) for z in cal.walk("VTIMEZONE")) == sorted(ZONES)
    # one CalDAV object body, written for a reminder in 2031 (summer time in London)
    start = datetime(2031, 7, 14, 9, 30, tzinfo=LONDON)
    body = tmp_path / "object.ics"
    body.write_bytes(to_calendar_text(reminder(start), datetime(2031, 7, 1, tzinfo=UTC)))
    assert_readers_agree(body, icaljs, {"acme-corp.1@clientlove": start.astimezone(UTC)})


def test_rdate_lists_are_one_value_a_line():
    """vobject reads only the first value of a comma-separated RDATE in a VTIMEZONE."""
    cal = new_calendar()
    for year in (2026, 2035):
        cal.add_component(icalendar.Calendar.from_ical(to_calendar_text(
            reminder(datetime(year, 3, 1, 9, 0, tzinfo=ZoneInfo("Africa/Casablanca")),
                     f"a-{year}.1"), datetime(2026, 1, 1, tzinfo=UTC))).walk("VEVENT")[0])
    add_timezones(cal)
    text = cal.to_ical().decode()
    rdates = [line for line in text.splitlines() if line.startswith("RDATE")]
    assert rdates and all("," not in line for line in rdates)
