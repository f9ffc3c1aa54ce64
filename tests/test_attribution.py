"""Who was met by which event: emails, domains, keywords, declines, cancellations, dates."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml
from click.testing import CliRunner

from daemon.attribution import (
    PERSONAL_DOMAINS,
    REMINDER_TITLE,
    ClientSpec,
    Matcher,
    attribute,
    discover,
    has_marker,
    reminder_interactions,
)
from daemon.cli import cli
from daemon.model import Attendee, Event, PartStat
from tests.test_cli_e2e import calendar, vevent

LONDON = ZoneInfo("Europe/London")
SYDNEY = ZoneInfo("Australia/Sydney")
ME = "consultant@myfirm.example"

ACME = ClientSpec("Acme Corp", emails=("jane.doe@acme.example",), domains=("acme.example",),
                  keywords=("Acme",))
GLOBEX = ClientSpec("Globex", emails=("hank@globex.example",), keywords=("Globex", "Hank Scorpio"))
INITECH = ClientSpec("Initech", domains=("initech.example",))


@pytest.fixture
def matcher() -> Matcher:
    return Matcher([ACME, GLOBEX, INITECH], me=[ME])


def event(summary="Meeting", *, attendees=(), organizer=None, cancelled=False,
          start=datetime(2026, 11, 10, 10, 0, tzinfo=LONDON), **kw) -> Event:
    return Event(
        source="test", uid=kw.pop("uid", "e1"), start=start, summary=summary,
        attendees=tuple(Attendee(e, PartStat.parse(p)) for e, p in attendees),
        organizer=organizer, cancelled=cancelled, **kw,
    )


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("jane.doe@acme.example", {"Acme Corp"}),
        ("someone@acme.example", {"Acme Corp"}),
        ("bob@sales.acme.example", {"Acme Corp"}),
        ("bob@notacme.example", set()),
        ("bob@acme.example.org", set()),
        ("hank@globex.example", {"Globex"}),
        ("other@globex.example", set()),
        ("peter@deep.sub.initech.example", {"Initech"}),
    ],
)
def test_address_rules(matcher, address, expected):
    assert matcher.by_address(address) == expected


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Lunch with ACME team", {"Acme Corp"}),
        ("acme: quarterly review", {"Acme Corp"}),
        ("Acmeville offsite", set()),
        ("NotAcme sync", set()),
        ("Call Hank Scorpio re: globex", {"Globex"}),
        ("hank scorpio", {"Globex"}),
        ("Hank Scorpions", set()),
        ("", set()),
    ],
)
def test_keyword_is_a_whole_word_any_case(matcher, title, expected):
    assert matcher.by_title(title) == expected


def test_attendee_match(matcher):
    e = event(attendees=[("jane.doe@acme.example", "ACCEPTED"), (ME, "ACCEPTED")])
    assert matcher.clients_met(e) == {"Acme Corp"}


def test_organizer_match(matcher):
    assert matcher.clients_met(event(organizer="hank@globex.example")) == {"Globex"}


def test_cancelled_is_no_contact(matcher):
    assert matcher.clients_met(event("Acme review", cancelled=True)) == set()


def test_user_declined_is_no_contact(matcher):
    e = event(attendees=[("jane.doe@acme.example", "ACCEPTED"), (ME, "DECLINED")])
    assert matcher.clients_met(e) == set()


def test_every_client_attendee_declined_is_no_contact_even_with_keyword(matcher):
    e = event("Acme sync", attendees=[("jane.doe@acme.example", "DECLINED"),
                                      ("bob@acme.example", "DECLINED"), (ME, "ACCEPTED")])
    assert matcher.clients_met(e) == set()


def test_one_client_attendee_still_coming_is_contact(matcher):
    e = event(attendees=[("jane.doe@acme.example", "DECLINED"), ("bob@acme.example", "TENTATIVE")])
    assert matcher.clients_met(e) == {"Acme Corp"}


def test_decline_of_one_client_leaves_the_other(matcher):
    e = event(attendees=[("jane.doe@acme.example", "DECLINED"), ("hank@globex.example", "")])
    assert matcher.clients_met(e) == {"Globex"}


def test_timed_event_counts_on_its_local_date():
    """08:30 in Sydney on the 27th is still the 26th in London."""
    e = event("Acme", start=datetime(2026, 11, 27, 8, 30, tzinfo=SYDNEY))
    assert e.local_date(LONDON) == date(2026, 11, 26)
    assert e.local_date(SYDNEY) == date(2026, 11, 27)


def test_all_day_event_keeps_its_date_in_any_zone():
    e = event("Acme", start=date(2026, 11, 27))
    assert e.local_date(SYDNEY) == e.local_date(ZoneInfo("Pacific/Honolulu")) == date(2026, 11, 27)


def test_attribute_splits_contact_and_future_and_flags_resets(matcher):
    events = [
        event("Acme review", uid="a", start=date(2026, 11, 2), description="they #Need help"),
        event("Acme planning", uid="b", start=date(2026, 12, 2)),
        event("Acme today", uid="c", start=datetime(2026, 11, 23, 16, 0, tzinfo=LONDON)),
        event("Client love: Acme Corp", uid="d", start=date(2026, 11, 1),
              clientlove_key="acme-corp.1"),
    ]
    hist = attribute(events, matcher, LONDON, date(2026, 11, 23))
    acme = hist["Acme Corp"]
    assert [i.day for i in acme.contacts] == [date(2026, 11, 2), date(2026, 11, 23)]
    assert acme.contacts[0].reset
    assert [i.day for i in acme.future] == [date(2026, 12, 2)]
    assert hist["Globex"].contacts == []


def test_our_reminders_past_are_contact_pending_are_nothing_skip_is_skip():
    today = date(2026, 11, 23)
    contacts, skips = reminder_interactions(
        [
            ("Acme Corp", date(2026, 11, 9), "Client love: Acme Corp", "", ()),
            ("Acme Corp", date(2026, 11, 16), "Client love: Acme Corp #skip", "", ()),
            ("Acme Corp", date(2026, 11, 30), "Client love: Acme Corp", "", ()),
            ("Globex", date(2026, 11, 20), "Client love", "", ("#need",)),
        ],
        today, ["#need"], ["#skip"],
    )
    assert [i.day for i in contacts["Acme Corp"]] == [date(2026, 11, 9)]
    assert skips == {"Acme Corp": [date(2026, 11, 16)]}
    assert contacts["Globex"][0].reset


def test_discover_lists_uncovered_people_newest_first(matcher):
    events = [
        event(uid="1", start=date(2026, 10, 1), attendees=[("ann@newco.example", "")]),
        event(uid="2", start=date(2026, 11, 1), attendees=[("joe@gmail.com", ""), (ME, "")]),
        event(uid="3", start=date(2026, 9, 1), attendees=[("bo@newco.example", ""),
                                                          ("jane.doe@acme.example", "")]),
    ]
    found = discover(events, matcher, LONDON, PERSONAL_DOMAINS)
    assert [(f["domain"], f["emails"]) for f in found] == [
        (None, ["joe@gmail.com"]),
        ("newco.example", ["ann@newco.example", "bo@newco.example"]),
    ]
    assert found[1]["meetings"] == 2 and found[1]["last"] == date(2026, 10, 1)


# -- markers are whole tokens --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "marked"),
    [
        ("#need", True), ("#need: help with the export", True), ("(#need)", True),
        ("#NEED", True), ("they #Need help", True), ("#need,#skip", True), ("[#need]", True),
        ("#needless chatter", False), ("#needs", False), ("#needed", False),
        ("foo#need", False), ("#need_x", False), ("need", False), ("", False),
    ],
)
def test_a_marker_counts_only_as_a_whole_token(text, marked):
    assert has_marker([text], ["#need"]) is marked
    assert has_marker(["", re.sub("need", "reset", text, flags=re.I)], ["#reset"]) is marked
    assert has_marker([re.sub("need", "SKIP", text, flags=re.I)], ["#skip"]) is marked


def test_configured_markers_are_any_text_matched_as_tokens():
    assert has_marker(["Call !!help now"], ["!!help"])
    assert not has_marker(["Call !!helpdesk"], ["!!help"])
    assert has_marker(["follow up [urgent]"], ["[urgent]", " "])
    assert not has_marker(["anything"], ["", " "])


def test_reset_and_skip_markers_in_meetings_and_our_reminders_are_tokens(matcher):
    events = [
        event("Acme #needless chatter", uid="a", start=date(2026, 11, 2)),
        event("Acme", uid="b", start=date(2026, 11, 3), description="they need help #needs"),
        event("Acme (#NEED) help", uid="c", start=date(2026, 11, 4)),
        event("Acme", uid="d", start=date(2026, 11, 5), categories=("#Reset",)),
        event("Acme", uid="e", start=date(2026, 11, 6), categories=("#resetting",)),
    ]
    contacts = attribute(events, matcher, LONDON, date(2026, 11, 23))["Acme Corp"].contacts
    assert [c.reset for c in sorted(contacts, key=lambda c: c.day)] == [
        False, False, True, True, False]
    past, skips = reminder_interactions(
        [("Acme Corp", date(2026, 11, 9), "Client love #skipped it", "", ()),
         ("Acme Corp", date(2026, 11, 16), "Client love", "done #needless", ()),
         ("Globex", date(2026, 11, 16), "Client love", "", ("#skip",))],
        date(2026, 11, 23), ["#need"], ["#skip"],
    )
    assert [(i.day, i.reset) for i in past["Acme Corp"]] == [
        (date(2026, 11, 9), False), (date(2026, 11, 16), False)]
    assert skips == {"Globex": [date(2026, 11, 16)]}


def test_attribute_keeps_the_start_moment_and_our_reminders_their_title(matcher):
    start = datetime(2026, 11, 10, 16, 0, tzinfo=LONDON)
    hist = attribute([event("Acme", uid="a", start=start),
                      event("Acme", uid="b", start=date(2026, 11, 11))],
                     matcher, LONDON, date(2026, 11, 23))
    assert [c.at for c in hist["Acme Corp"].contacts] == [start, None]
    past, _ = reminder_interactions([("Acme Corp", date(2026, 11, 9), "", "", ())],
                                    date(2026, 11, 23), ["#need"], ["#skip"])
    assert past["Acme Corp"][0].title == REMINDER_TITLE == "Client love call"


def marker_workspace(root, title: str):
    config = {
        "timezone": "Europe/London", "me": [ME], "state_path": "state.sqlite",
        "sources": [{"type": "ics", "path": "history.ics"}],
        "target": {"type": "ics", "path": "reminders.ics"},
        "clients": [{"name": "Acme Corp", "domains": ["acme.example"]}],
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    jane = [("jane@acme.example", "ACCEPTED")]
    (root / "history.ics").write_text(calendar(
        vevent("m1", "20260105T100000", "Kick-off", attendees=jane),
        vevent("m2", "20260112T100000", title, attendees=jane),
    ))
    return root / "config.yaml"


@pytest.mark.parametrize(("title", "interval"), [("#needless chatter", 14), ("(#NEED) help", 7)])
def test_a_meeting_resets_the_counter_only_with_a_whole_marker_through_the_cli(
        tmp_path, title, interval):
    config = marker_workspace(tmp_path, title)
    runner = CliRunner()
    for now in ("2026-01-13T08:00", "2026-01-14T08:00"):
        assert runner.invoke(cli, ["--config", str(config), "--now", now, "sync"]).exit_code == 0
    result = runner.invoke(cli, ["--config", str(config), "--now", "2026-01-14T08:00",
                                 "status", "--json"])
    (row,) = json.loads(result.stdout)
    assert row["interval_days"] == interval
    assert row["reminder"] == (date(2026, 1, 12) + timedelta(days=interval)).isoformat()


# -- discover never suggests someone never met ---------------------------------------------------


def test_discover_skips_cancelled_declined_and_events_you_declined(matcher):
    def seen(*attendees, **kw):
        return event(uid=kw.pop("uid"), start=kw.pop("start", date(2026, 10, 1)),
                     attendees=attendees, **kw)

    events = [
        seen(("ann@cancelled.example", "ACCEPTED"), uid="1", cancelled=True),
        seen(("bo@theydeclined.example", "DECLINED"), (ME, "ACCEPTED"), uid="2"),
        seen(("cy@youdeclined.example", "ACCEPTED"), (ME, "DECLINED"), uid="3"),
        seen(("joe@gmail.com", "DECLINED"), uid="4"),
        seen(("dee@met.example", "ACCEPTED"), ("eve@met.example", "DECLINED"), uid="5"),
        seen(("eve@met.example", "DECLINED"), uid="6", start=date(2026, 10, 9)),
        seen(("org@organised.example", "DECLINED"), uid="7",
             organizer="org@organised.example"),
    ]
    # the calendar itself says the user declined (Google's "self"), whatever the address
    events.append(Event(source="test", uid="8", start=date(2026, 10, 2), attendees=(
        Attendee("fay@selfdeclined.example", PartStat.ACCEPTED),
        Attendee("alias@elsewhere.example", PartStat.DECLINED, is_me=True))))
    found = discover(events, matcher, LONDON, PERSONAL_DOMAINS)
    assert [(f["domain"], f["emails"], f["meetings"], f["last"]) for f in found] == [
        ("met.example", ["dee@met.example"], 1, date(2026, 10, 1))]


def test_discover_through_the_cli_suggests_only_people_met(tmp_path):
    config = marker_workspace(tmp_path, "Acme review")
    (tmp_path / "history.ics").write_text(calendar(
        vevent("c1", "20260105T100000", "Lunch", attendees=[("ann@newco.example", "ACCEPTED")],
               extra=["STATUS:CANCELLED"]),
        vevent("d1", "20260106T100000", "Demo", attendees=[("bo@oldco.example", "DECLINED"),
                                                           (ME, "ACCEPTED")]),
        vevent("d2", "20260107T100000", "Pitch", attendees=[("cy@third.example", "ACCEPTED"),
                                                            (ME, "DECLINED")]),
        vevent("m1", "20260108T100000", "Coffee", attendees=[("dan@fourth.example", "ACCEPTED"),
                                                             (ME, "ACCEPTED")]),
    ))
    result = CliRunner().invoke(cli, ["--config", str(config), "--now", "2026-01-10T08:00",
                                      "discover"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout) == [
        {"name": "Fourth", "domains": ["fourth.example"], "emails": ["dan@fourth.example"]}]
