"""Who was met by which event: emails, domains, keywords, declines, cancellations, dates."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from daemon.attribution import (
    PERSONAL_DOMAINS,
    ClientSpec,
    Matcher,
    attribute,
    discover,
    reminder_interactions,
)
from daemon.model import Attendee, Event, PartStat

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
