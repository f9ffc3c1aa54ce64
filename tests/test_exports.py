"""Attribution end to end on realistic Google, Outlook and Thunderbird exports
(``tests/data``): reading, recurrence, zones, declines and cancellations together."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from daemon.attribution import ClientSpec, Matcher, attribute
from daemon.icsread import read_calendar
from daemon.model import ReadScope

DATA = Path(__file__).parent / "data"
CLIENTS = [
    ClientSpec("Acme Corp", ("jane.doe@acme.example",), ("acme.example",), ("Acme",)),
    ClientSpec("Globex", ("hank@globex.example",), (), ("Globex",)),
    ClientSpec("Initech", (), ("initech.example",), ()),
]
TODAY = date(2024, 6, 1)


def contacts(name: str, zone: str) -> dict[str, tuple[list[str], list[str]]]:
    tz = ZoneInfo(zone)
    scope = ReadScope(datetime(2023, 1, 1, tzinfo=tz), datetime(2025, 1, 1, tzinfo=tz), tz)
    events = read_calendar((DATA / name).read_bytes(), name, scope)
    assert scope.warnings == []
    histories = attribute(events, Matcher(CLIENTS, ["consultant@myfirm.example"]), tz, TODAY)
    return {client: ([d.day.isoformat() for d in h.contacts], [d.day.isoformat()
                                                                for d in h.future])
            for client, h in histories.items()}


def test_google_export():
    """Weekly series with an EXDATE, a moved and a cancelled instance; an invitation the user
    declined; a tentative lunch; our own reminder left out; X-WR-TIMEZONE honoured."""
    found = contacts("google_export.ics", "Europe/Berlin")
    assert found["Acme Corp"] == (["2024-01-08", "2024-01-15", "2024-01-29", "2024-02-07",
                                   "2024-02-19", "2024-02-26"], [])
    assert found["Globex"] == ([], []), "the user declined the briefing"
    assert found["Initech"] == (["2024-03-15"], [])


def test_outlook_export():
    """Windows zone names, MAILTO: in capitals with mixed-case addresses, a cancelled
    workshop, a monthly series with an EXDATE, and 08:30 in Sydney landing on the day
    before in London."""
    found = contacts("outlook_export.ics", "Europe/London")
    assert found["Globex"] == (["2024-02-11"], [])
    assert found["Initech"] == (["2024-01-09", "2024-02-13", "2024-04-09", "2024-05-14"],
                                ["2024-06-11"])
    assert found["Acme Corp"] == ([], []), "the workshop was cancelled"


@pytest.mark.parametrize(("zone", "day"), [("Australia/Sydney", "2024-02-12"),
                                           ("America/Los_Angeles", "2024-02-11")])
def test_outlook_meeting_date_follows_the_configured_zone(zone, day):
    assert contacts("outlook_export.ics", zone)["Globex"][0] == [day]


def test_thunderbird_export():
    """Escaped commas in titles, CATEGORIES, an all-day offsite, a floating time, an email
    folded across lines, and a to-do that is no meeting."""
    found = contacts("thunderbird_export.ics", "Europe/Berlin")
    assert found["Acme Corp"] == (["2024-03-05", "2024-05-20"], [])
    assert found["Initech"] == (["2024-04-18"], [])
    assert found["Globex"] == ([], []), "a VTODO naming hank@ is no contact"
