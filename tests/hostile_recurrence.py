"""Hostile recurrences and time zones (issue 17, points 1 and 2), for tests/hostile.py.

Each case is an invitation of a few kilobytes that names a client (so even the fast path,
which only parses what may matter to a client, expands it), read by the real code: the
``clientlove sync`` command over ICS sources, or the CalDAV source against a real Radicale.
The hostile event must be skipped (or its zone replaced) with a warning naming the source and
the UID (or TZID), and everything else must still be read and planned.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from click.testing import CliRunner

from daemon.cli import cli
from daemon.model import ReadScope
from tests.hostile import case

NOW = "2026-11-23T08:00"
TZ = ZoneInfo("Europe/London")
CRLF = "\r\n"


def calendar(*events: str, zones: str = "") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//hostile//invite//EN\r\n" + zones
            + "".join(events) + "END:VCALENDAR\r\n")


def event(uid: str, *lines: str, summary: str = "Acme roadmap") -> str:
    body = CRLF.join([f"UID:{uid}", "DTSTAMP:20261101T000000Z", f"SUMMARY:{summary}", *lines])
    return f"BEGIN:VEVENT\r\n{body}\r\nEND:VEVENT\r\n"


#: The consultant's real history: the last contact with Acme, from which the reminder is due.
MEETING = event("acme-review-1", "DTSTART:20261116T100000Z", "DTEND:20261116T110000Z",
                "ATTENDEE;PARTSTAT=ACCEPTED:mailto:jane.doe@acme.example",
                summary="Acme review")


def sync(folder: Path, *sources: tuple[str, str]) -> tuple[int, str, str]:
    """``clientlove sync`` over ICS files (name, text); exit code, output, reminders file."""
    for name, text in sources:
        (folder / f"{name}.ics").write_text(text, newline="")
    config = {
        "timezone": "Europe/London",
        "me": ["consultant@myfirm.example"],
        "state_path": str(folder / "state.sqlite"),
        "sources": [{"type": "ics", "name": name, "path": str(folder / f"{name}.ics")}
                    for name, _ in sources],
        "target": {"type": "ics", "path": str(folder / "reminders.ics")},
        "clients": [{"name": "Acme Corp", "domains": ["acme.example"], "keywords": ["Acme"]},
                    {"name": "Globex", "keywords": ["Globex"]}],
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(cli, ["--config", str(folder / "config.yaml"), "--now", NOW,
                                      "sync"])
    target = folder / "reminders.ics"
    return result.exit_code, result.output, target.read_text() if target.exists() else ""


def expect_skipped(code: int, output: str, reminders: str, source: str, uid: str) -> None:
    """The hostile event is skipped with a warning naming source and UID; the cycle went on
    and wrote Acme's reminder, due one week after the real meeting."""
    flat = " ".join(output.split())
    assert "Traceback" not in output, output[-1500:]
    assert code == 0, (code, output[-1500:])
    assert f"{source}: skipped event {uid}:" in flat, output[-1500:]
    assert "budget" in flat, output[-1500:]
    assert "DTSTART;TZID=Europe/London:20261123T" in reminders, reminders[-800:]


# -- point 1: recurrence budgets -------------------------------------------------------------


def secondly_300() -> str:
    rules = [f"RRULE:FREQ=SECONDLY;INTERVAL={n}" for n in range(1, 301)]
    return calendar(event("tick-300", "DTSTART:19900101T000000Z", *rules))


@case("rrule-300-secondly", "one event, 300 RRULE:FREQ=SECONDLY lines from 1990 (ICS source)")
def rrule_300_secondly(scratch: Path) -> tuple[int, str]:
    hostile = secondly_300()
    code, output, reminders = sync(scratch, ("invites", hostile), ("work", calendar(MEETING)))
    expect_skipped(code, output, reminders, "invites", "tick-300")
    return len(hostile.encode()), "event skipped with a warning (per-event budget); sync went on"


def minutely_never() -> str:
    rules = ["RRULE:FREQ=MINUTELY;BYMONTH=1;BYYEARDAY=200"] * 20
    return calendar(event("never-20", "DTSTART:19900101T000000Z", *rules))


@case("rrule-20-minutely-empty",
      "one event, 20 lines FREQ=MINUTELY;BYMONTH=1;BYYEARDAY=200 (never an occurrence)")
def rrule_20_minutely_empty(scratch: Path) -> tuple[int, str]:
    hostile = minutely_never()
    code, output, reminders = sync(scratch, ("invites", hostile), ("work", calendar(MEETING)))
    expect_skipped(code, output, reminders, "invites", "never-20")
    return len(hostile.encode()), "loop without occurrences counted; event skipped, sync went on"


def mixed() -> str:
    """Ten weekly series with Globex (the last on Wednesday 2026-11-11), the Acme meeting, and
    between them one hostile invitation naming Acme."""
    normal = [event(f"weekly-{n}", f"DTSTART:2026{n + 1:02d}05T090000Z",
                    "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20261112T000000Z",
                    summary=f"Globex stand-up {n}")
              for n in range(10)]
    hostile = event("tick-mixed", "DTSTART:19900101T000000Z",
                    *[f"RRULE:FREQ=SECONDLY;INTERVAL={n}" for n in range(1, 41)])
    return calendar(*normal[:5], hostile, *normal[5:], MEETING)


@case("rrule-mixed", "one hostile event (40 SECONDLY lines) among 10 weekly series and a meeting")
def rrule_mixed(scratch: Path) -> tuple[int, str]:
    text = mixed()
    code, output, reminders = sync(scratch, ("work", text))
    expect_skipped(code, output, reminders, "work", "tick-mixed")
    result = CliRunner().invoke(cli, ["--config", str(scratch / "config.yaml"), "--now", NOW,
                                      "status", "--json"])
    assert result.exit_code == 0, result.output[-800:]
    last = {row["client"]: row["last_contact"] for row in json.loads(result.stdout)}
    assert last == {"Acme Corp": "2026-11-16", "Globex": "2026-11-11"}, last
    return len(text.encode()), "hostile event skipped; the 10 series and the meeting read"


def caldav_object() -> str:
    """About 3.6 KB: one object with 100 SECONDLY lines, as an invitation lands on a server."""
    rules = [f"RRULE:FREQ=SECONDLY;BYSECOND={n % 60}" for n in range(100)]
    return calendar(event("dav-tick", "DTSTART:19900101T000000Z", *rules))


@case("caldav-rrule-object", "one 3.6 KB CalDAV object, 100 SECONDLY lines (real Radicale)")
def caldav_rrule_object(scratch: Path) -> tuple[int, str]:
    import requests

    from providers.caldav import CalDavSource
    from tests.servers import start_server

    server = start_server("radicale", scratch / "radicale")
    try:
        url = server.new_calendar("work")
        hostile = caldav_object()
        with requests.Session() as http:
            for name, text in (("hostile.ics", hostile), ("meeting.ics", calendar(MEETING))):
                reply = http.put(url + name, data=text.encode(),
                                 headers={"Content-Type": "text/calendar"})
                assert reply.status_code in (201, 204), reply.status_code
        scope = ReadScope(datetime(2025, 11, 1, tzinfo=TZ), datetime(2027, 3, 1, tzinfo=TZ), TZ,
                          needles=("acme",))
        changes = CalDavSource("work", url).changes(None, scope)
    finally:
        server.stop()
    assert [e.uid for e in changes.upserted] == ["acme-review-1"], changes.upserted
    warning = next((w for w in scope.warnings if "dav-tick" in w), "")
    assert warning.startswith("work: skipped event dav-tick:") and "budget" in warning, \
        scope.warnings
    return len(hostile.encode()), "object's event skipped with a warning; the meeting read"


# -- point 2: time zones with absurd transition rules ----------------------------------------


def absurd_zone(tzid: str) -> str:
    months = ",".join(str(n) for n in range(1, 13))
    days = ",".join(str(n) for n in range(1, 29))
    hours = ",".join(str(n) for n in range(24))
    rule = f"RRULE:FREQ=YEARLY;BYMONTH={months};BYMONTHDAY={days};BYHOUR={hours}"
    return CRLF.join([
        "BEGIN:VTIMEZONE", f"TZID:{tzid}",
        "BEGIN:STANDARD", "DTSTART:16010101T000000", "TZOFFSETFROM:+0100", "TZOFFSETTO:+0000",
        rule, "END:STANDARD",
        "BEGIN:DAYLIGHT", "DTSTART:16010101T003000", "TZOFFSETFROM:+0000", "TZOFFSETTO:+0100",
        rule, "END:DAYLIGHT", "END:VTIMEZONE"]) + CRLF


def zone_invites(tzid: str, events: int = 50, occurrences: int = 300) -> str:
    invites = [event(f"tz-{n}", f"DTSTART;TZID={tzid}:20260105T{9 + n % 8:02d}0000",
                     f"RRULE:FREQ=DAILY;COUNT={occurrences}", summary=f"Acme sync {n}")
               for n in range(events)]
    return calendar(*invites, zones=absurd_zone(tzid))


@case("vtimezone-absurd",
      "VTIMEZONE with BYMONTH=1..12;BYMONTHDAY=1..28;BYHOUR=0..23, 50 events x 300 occurrences")
def vtimezone_absurd(scratch: Path) -> tuple[int, str]:
    text = zone_invites("Hostile Standard Zone")
    code, output, reminders = sync(scratch, ("invites", text))
    flat = " ".join(output.split())
    assert "Traceback" not in output and code == 0, (code, output[-1500:])
    assert "invites: bad VTIMEZONE Hostile Standard Zone ignored:" in flat, output[-1500:]
    assert "read as UTC" in flat, output[-1500:]
    # read in UTC: the series are contacts (the last on Sunday 2026-10-31 is in the window)
    assert "DTSTART;TZID=Europe/London:202611" in reminders, reminders[-800:]
    return len(text.encode()), "zone replaced by UTC with a warning naming it; all read"


@case("vtimezone-absurd-windows-name",
      "the absurd VTIMEZONE under a Windows zone name, 20 events x 300 occurrences")
def vtimezone_absurd_windows(scratch: Path) -> tuple[int, str]:
    text = zone_invites("W. Europe Standard Time", events=20)
    code, output, _ = sync(scratch, ("invites", text))
    flat = " ".join(output.split())
    assert "Traceback" not in output and code == 0, (code, output[-1500:])
    assert ("invites: bad VTIMEZONE W. Europe Standard Time ignored:" in flat
            and "read as Europe/Berlin" in flat), output[-1500:]
    return len(text.encode()), "zone replaced by the IANA zone of its name, with a warning"
