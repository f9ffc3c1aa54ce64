"""The prep note says what is true: the interval that follows, the day's last conversation,
what our past reminder was, whom to greet, and an email ready to send."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
import yaml
from click.testing import CliRunner

from daemon.attribution import REMINDER_TITLE, ClientSpec, Matcher, attribute
from daemon.cli import cli
from daemon.config import ClientConfig, parse_config
from daemon.counter import CounterRule
from daemon.durations import Span
from daemon.model import Attendee, Event, Interaction, PartStat
from daemon.planning import News, plan_client
from daemon.prepnote import (
    EMAIL_FIELDS,
    EMAIL_TEMPLATE,
    NoteSettings,
    first_name,
    prep_note,
    user_text,
)
from daemon.reminder_ical import key_of
from tests.test_cli_e2e import calendar, vevent

RULE = CounterRule(base_days=7, max=Span(months=2), early_days=2)
SETTINGS = NoteSettings(rule=RULE, me="consultant@myfirm.example")
LONDON = ZoneInfo("Europe/London")
WORKDAYS = frozenset(range(5))
ME = "consultant@myfirm.example"


def client(**kw) -> ClientConfig:
    return ClientConfig(**{"name": "Acme Corp", "emails": ["jane.doe@acme.example"], **kw})


def note_for(contacts, today, *, news=(), who=None, day=None) -> str:
    plan = plan_client("Acme Corp", contacts, [], RULE, today, workdays=WORKDAYS, news=news)
    assert plan.reminder_day is not None
    return prep_note(who or client(), plan, day or plan.reminder_day, 0, SETTINGS)


def counter_line(note: str) -> str:
    return next(line for line in note.splitlines() if line.startswith("Counter:"))


def met(*days: date) -> list[Interaction]:
    return [Interaction(d, "Steering") for d in days]


# -- "if this goes fine, next in ..." ------------------------------------------------------------

LONG = met(date(2026, 1, 5), date(2026, 1, 12), date(2026, 1, 26), date(2026, 2, 23),
           date(2026, 4, 20))  # now every 61 days (two months from 20 April)


def test_after_an_announcement_the_note_states_the_reset_that_follows():
    news = [News(date(2026, 5, 6), "New: a half-day health check")]
    plan = plan_client("Acme Corp", LONG, [], RULE, date(2026, 5, 4), workdays=WORKDAYS,
                       news=news)
    assert plan.reminder_day == date(2026, 5, 6) and plan.counter.interval_days == 61
    assert plan.following_days == 7
    line = counter_line(prep_note(client(), plan, plan.reminder_day, 0, SETTINGS))
    assert line == "Counter: now every 61 days (about 2 months); if this goes fine, next in 1 week."


def test_on_schedule_doubles_and_the_cap_is_measured_from_the_reminder_day():
    assert "next in 2 weeks" in counter_line(note_for(met(date(2026, 1, 5)), date(2026, 1, 6)))
    # every 8 weeks on 2 March; the check-in on 27 April doubles to 16 weeks, capped at two
    # months from 27 April: 61 days
    history = met(date(2026, 1, 5), date(2026, 1, 12), date(2026, 1, 26), date(2026, 3, 2))
    plan = plan_client("Acme Corp", history, [], RULE, date(2026, 4, 20), workdays=WORKDAYS)
    assert plan.reminder_day == date(2026, 4, 27)
    assert plan.following_days == 61


def test_a_reminder_day_that_comes_early_holds_the_interval():
    """Three days after a meeting, with every two weeks in force, the check-in is early: the
    interval holds (it does not double)."""
    history = met(date(2026, 1, 5), date(2026, 1, 12))
    note = note_for(history, date(2026, 1, 13), day=date(2026, 1, 15))
    assert "now every 2 weeks; if this goes fine, next in 2 weeks." in counter_line(note)


def test_never_contacted_says_the_first_step():
    plan = plan_client("Acme Corp", [], [], RULE, date(2026, 1, 6), workdays=WORKDAYS)
    assert plan.following_days == 7
    line = counter_line(prep_note(client(), plan, plan.reminder_day, 0, SETTINGS))
    assert line == "Counter: first contact; if this goes fine, next in 1 week."


def test_booked_means_no_reminder_and_no_following_interval():
    plan = plan_client("Acme Corp", met(date(2026, 1, 5)), [date(2026, 1, 9)], RULE,
                       date(2026, 1, 6), workdays=WORKDAYS)
    assert plan.reminder_day is None and plan.following_days is None


# -- the last contact ----------------------------------------------------------------------


def meeting(uid: str, start, summary: str, description: str = "") -> Event:
    return Event(source="work", uid=uid, start=start, summary=summary, description=description,
                 attendees=(Attendee("jane.doe@acme.example", PartStat.ACCEPTED),))


@pytest.mark.parametrize("order", [1, -1])
def test_last_conversation_is_the_latest_meeting_of_the_day(order):
    events = [
        meeting("a", date(2026, 1, 5), "Acme workshop day", "All-day agenda"),
        meeting("b", datetime(2026, 1, 5, 10, tzinfo=LONDON), "Kick-off", "Scope and budget"),
        meeting("c", datetime(2026, 1, 5, 16, tzinfo=LONDON), "Follow-up",
                "Jane asked for a migration plan"),
    ][::order]
    matcher = Matcher([ClientSpec("Acme Corp", emails=("jane.doe@acme.example",))])
    history = attribute(events, matcher, LONDON, date(2026, 1, 6))["Acme Corp"]
    note = note_for(history.contacts, date(2026, 1, 6))
    assert "Last contact: 2026-01-05 Follow-up" in note
    assert "Last conversation: Jane asked for a migration plan" in note
    assert "Scope and budget" not in note


def test_our_past_reminder_shows_as_what_it_was_and_a_meeting_that_day_wins():
    ours = Interaction(date(2026, 1, 12), REMINDER_TITLE, ours=True)
    note = note_for([*met(date(2026, 1, 5)), ours], date(2026, 1, 13))
    assert f"Last contact: 2026-01-12 {REMINDER_TITLE}" in note and "(no title)" not in note
    both = note_for([*met(date(2026, 1, 5)), ours, Interaction(date(2026, 1, 12), "Lunch")],
                    date(2026, 1, 13))
    assert "Last contact: 2026-01-12 Lunch" in both


# -- greeting and email ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "greeting"),
    [
        ({"contact": "Jane Doe"}, "Jane"),
        ({"contact": "Dr. Maria Rossi", "emails": ["info@acme.example"]}, "Maria"),
        ({"emails": ["jane.doe@acme.example"]}, "Jane"),
        ({"emails": ["info@acme.example"]}, "Acme Corp team"),
        ({"emails": ["Office@acme.example", "sales.uk@acme.example", "team-a@acme.example",
                     "hello@acme.example", "contact@acme.example", "admin@acme.example",
                     "support@acme.example", "enquiries@acme.example"]}, "Acme Corp team"),
        ({"emails": ["info@acme.example", "bob@acme.example"]}, "Bob"),
        ({"emails": []}, "Acme Corp team"),
    ],
)
def test_greeting_uses_a_persons_first_name_never_a_role_address(fields, greeting):
    assert first_name(client(**fields)) == greeting


def email_part(note: str) -> str:
    return note.split("After the call, send:\n", 1)[1]


def test_email_is_ready_to_send():
    who = client(emails=["info@acme.example", "jane.doe@acme.example"], contact="Jane Doe",
                 account_manager="Sam.Lead@myfirm.example", project="Data platform migration")
    text = email_part(note_for(met(date(2026, 1, 5)), date(2026, 1, 6), who=who))
    assert text.splitlines()[:5] == [
        "To: info@acme.example",
        "Cc: sam.lead@myfirm.example",
        "Subject: As per our conversation: Data platform migration",
        "",
        "Hi Jane,",
    ]
    assert text.endswith("Best regards,\nconsultant@myfirm.example")


def test_email_without_account_manager_or_project_has_no_cc_and_names_the_client():
    who = client(emails=["info@acme.example"])
    text = email_part(note_for(met(date(2026, 1, 5)), date(2026, 1, 6), who=who))
    assert text.splitlines()[:4] == ["To: info@acme.example",
                                     "Subject: As per our conversation: Acme Corp", "",
                                     "Hi Acme Corp team,"]
    assert "Cc:" not in text


def test_placeholders_survive_a_description_rendered_as_html():
    note = note_for(met(date(2026, 1, 5)), date(2026, 1, 6))
    assert "<" not in note and ">" not in note
    assert "[date]" in note and "[the one action you ask for]" in note


def test_a_custom_template_gets_every_field(tmp_path: Path):
    template = ("To: {email}\nCc: {account_manager}\nSubject: {project} ({client})\n\n"
                "Dear {first_name}, ... {me}")
    config = parse_config({"sources": [{"type": "ics", "path": "h.ics"}],
                           "target": {"type": "ics", "path": "r.ics"},
                           "email_template": template}, tmp_path)
    settings = NoteSettings(rule=RULE, me="me@myfirm.example", email_template=config.email_template)
    plan = plan_client("Acme Corp", [], [], RULE, date(2026, 1, 6), workdays=WORKDAYS)
    who = client(emails=[], project="Audit", account_manager="am@myfirm.example")
    text = email_part(prep_note(who, plan, date(2026, 1, 6), 0, settings))
    assert text == ("To: [their email address]\nCc: am@myfirm.example\nSubject: Audit (Acme Corp)"
                    "\n\nDear Acme Corp team, ... me@myfirm.example")


def test_the_default_template_passes_the_config_check(tmp_path: Path):
    config = parse_config({"sources": [{"type": "ics", "path": "h.ics"}],
                           "target": {"type": "ics", "path": "r.ics"},
                           "email_template": EMAIL_TEMPLATE}, tmp_path)
    assert config.email_template == EMAIL_TEMPLATE
    assert set(EMAIL_FIELDS) == {"client", "first_name", "me", "email", "project",
                                 "account_manager"}


# -- purity and our own markers ------------------------------------------------------------------


def test_the_note_is_a_pure_function_of_its_inputs():
    history = [*met(date(2026, 1, 5)), Interaction(date(2026, 1, 5), "Call #need",
                                                   "Jane #need help\nwith the\nmigration")]
    assert note_for(history, date(2026, 1, 6)) == note_for(list(reversed(history)),
                                                           date(2026, 1, 6))


def test_markers_the_note_quotes_are_never_the_users():
    history = [Interaction(date(2026, 1, 5), "Call\n#need", "Jane needs help\n#need now")]
    news = [News(date(2026, 1, 9), "New offer\n#reset for all")]
    note = note_for(history, date(2026, 1, 6), news=news)
    assert "#need" in note
    mine = user_text(note)
    assert "#need" not in mine and "#reset" not in mine and "#skip" not in mine


# -- a person's days, through the CLI ------------------------------------------------------------


def write_workspace(root: Path) -> Path:
    config = {
        "timezone": "Europe/London",
        "me": [ME],
        "state_path": "state.sqlite",
        "sources": [{"type": "ics", "path": "history.ics"}],
        "target": {"type": "ics", "path": "reminders.ics"},
        "clients": [
            {"name": "Acme Corp", "emails": ["info@acme.example"], "domains": ["acme.example"],
             "contact": "Jane Doe", "account_manager": "sam@myfirm.example",
             "project": "Data platform migration"},
            {"name": "Globex", "emails": ["sales@globex.example"], "domains": ["globex.example"]},
            {"name": "Initech", "domains": ["initech.example"]},
        ],
        "announcements": [{"date": "2026-01-08", "text": "New: a half-day health check",
                           "clients": ["Initech"]}],
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    acme = [("jane.doe@acme.example", "ACCEPTED")]
    peter = [("peter@initech.example", "ACCEPTED")]
    (root / "history.ics").write_text(calendar(
        vevent("a1", "20260105T100000", "Kick-off", attendees=acme,
               extra=["DESCRIPTION:Scope and budget."]),
        vevent("a2", "20260105T160000", "Follow-up", attendees=acme,
               extra=["DESCRIPTION:Jane asked for a plan for the migration."]),
        *(vevent(f"i{n}", day, "TPS review", attendees=peter)
          for n, day in enumerate(("20251027T100000", "20251103T100000", "20251117T100000",
                                   "20251215T100000"))),
    ))
    return root / "config.yaml"


def notes_by_summary(path: Path, day: date) -> dict[str, str]:
    cal = icalendar.Calendar.from_ical(path.read_bytes())
    return {str(e["summary"]): str(e["description"]) for e in cal.walk("VEVENT")
            if key_of(e) and e["dtstart"].dt.date() == day}


def test_prep_notes_over_a_week_through_the_cli(tmp_path: Path):
    config = write_workspace(tmp_path)
    runner = CliRunner()

    def sync(now: str) -> str:
        result = runner.invoke(cli, ["--config", str(config), "--now", now, "sync"])
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout

    sync("2026-01-06T08:00")
    acme = notes_by_summary(tmp_path / "reminders.ics", date(2026, 1, 12))["Client love: Acme Corp"]
    assert "Last contact: 2026-01-05 Follow-up" in acme
    assert "Last conversation: Jane asked for a plan for the migration." in acme
    assert "To: info@acme.example\nCc: sam@myfirm.example\n" in acme
    assert "Subject: As per our conversation: Data platform migration" in acme
    assert "\nHi Jane,\n" in acme
    globex = notes_by_summary(tmp_path / "reminders.ics", date(2026, 1, 6))["Client love: Globex"]
    assert "\nHi Globex team,\n" in globex and "Cc:" not in globex
    initech = notes_by_summary(tmp_path / "reminders.ics",
                               date(2026, 1, 8))["Client love: Initech"]
    assert "now every 8 weeks; if this goes fine, next in 1 week." in initech
    for note in (acme, globex, initech):
        assert "<" not in note and ">" not in note

    assert "0 writes" in sync("2026-01-06T09:00"), "an unchanged history rewrites no note"

    # the next morning the Globex reminder of the 6th is history: the next note names it
    sync("2026-01-07T08:00")
    globex = notes_by_summary(tmp_path / "reminders.ics", date(2026, 1, 13))["Client love: Globex"]
    assert f"Last contact: 2026-01-06 {REMINDER_TITLE}" in globex
    assert "(no title)" not in globex
    assert "now every 1 week; if this goes fine, next in 2 weeks." in globex
