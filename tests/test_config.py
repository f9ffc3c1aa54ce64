"""The config file: defaults, every validation rule, plain error paths, finding and loading."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
import pytest
import tzlocal
import yaml

from daemon import config as config_module
from daemon.config import (
    EX_CONFIG,
    NO_YEAR,
    AnnouncementConfig,
    ClientConfig,
    Config,
    ConfigError,
    IcsSourceConfig,
    IcsTargetConfig,
    default_state_path,
    find_config_path,
    load_config,
    parse_config,
    slug,
)
from daemon.durations import Span

REPO = Path(__file__).resolve().parent.parent
BASE_DIR = Path("/srv/clientlove")


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def minimal_data() -> dict[str, Any]:
    """The smallest valid config: one source and a target."""
    return {
        "timezone": "Europe/London",
        "sources": [{"type": "ics", "path": "calendar.ics"}],
        "target": {"type": "ics", "path": "reminders.ics"},
    }


@pytest.fixture
def parse(minimal_data: dict[str, Any]) -> Callable[..., Config]:
    """Parse ``minimal_data`` with some sections replaced."""

    def run(**changes: Any) -> Config:
        return parse_config({**minimal_data, **changes}, BASE_DIR)

    return run


@pytest.fixture
def problems_of(minimal_data: dict[str, Any]) -> Callable[..., list[str]]:
    """The problems reported for ``minimal_data`` with some sections replaced."""

    def run(**changes: Any) -> list[str]:
        with pytest.raises(ConfigError) as caught:
            parse_config({**minimal_data, **changes}, BASE_DIR)
        return caught.value.problems

    return run


@pytest.fixture
def tmp_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write YAML text to ``config.yaml`` in a temporary folder and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "config.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No clientlove, XDG or systemd variables from the machine running the tests."""
    for name in (
        "CLIENTLOVE_CONFIG",
        "XDG_CONFIG_HOME",
        "XDG_STATE_HOME",
        "STATE_DIRECTORY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


# -- defaults -------------------------------------------------------------------------------


def test_minimal_config_gets_every_default(parse: Callable[..., Config]) -> None:
    config = parse()
    assert config.timezone == "Europe/London"
    assert config.tz == ZoneInfo("Europe/London")
    assert config.me == []
    assert config.counter.base == Span(days=7)
    assert config.counter.max == Span(months=2)
    assert config.counter.early == Span(days=2)
    assert config.counter.reset_markers == ["#need", "#reset"]
    assert config.counter.skip_markers == ["#skip"]
    assert config.reminder.time == dt.time(9, 30)
    assert config.reminder.duration == Span(seconds=15 * 60)
    assert config.reminder.alarm_before == Span(days=1)
    assert config.reminder.workdays == [0, 1, 2, 3, 4]
    assert config.reminder.title == "Client love: {client}"
    assert config.history_window == Span(months=12)
    assert config.clients == []
    assert config.announcements == []
    assert config.ideas == []
    assert config.email_template is None
    assert config.state_path is None
    assert config.config_path is None
    assert config.target.name == "Client love"
    source = config.sources[0]
    assert (source.timeout, source.verify_tls, source.username, source.credential) == (
        30.0,
        True,
        None,
        None,
    )


def test_timezone_defaults_to_the_system_zone(
    minimal_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    del minimal_data["timezone"]
    monkeypatch.setattr(tzlocal, "get_localzone_name", lambda: "America/New_York")
    assert parse_config(minimal_data, BASE_DIR).timezone == "America/New_York"


@pytest.mark.parametrize("system_zone", [None, "Not/AZone"])
def test_timezone_falls_back_to_utc(
    minimal_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch, system_zone: str | None
) -> None:
    del minimal_data["timezone"]
    monkeypatch.setattr(tzlocal, "get_localzone_name", lambda: system_zone)
    assert parse_config(minimal_data, BASE_DIR).timezone == "UTC"


def test_timezone_falls_back_to_utc_when_tzlocal_fails(
    minimal_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> str:
        raise LookupError("no zone configured")

    del minimal_data["timezone"]
    monkeypatch.setattr(tzlocal, "get_localzone_name", broken)
    assert parse_config(minimal_data, BASE_DIR).tz == ZoneInfo("UTC")


@pytest.mark.parametrize("zone", ["Mars/Base", "", "../etc/passwd", "Europe"])
def test_unknown_timezone(problems_of: Callable[..., list[str]], zone: str) -> None:
    assert problems_of(timezone=zone) == [f"timezone: unknown time zone {zone!r}"]


def test_config_is_frozen(parse: Callable[..., Config]) -> None:
    config = parse()
    with pytest.raises(pydantic.ValidationError):
        config.timezone = "UTC"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        config.counter.base = Span(days=1)  # type: ignore[misc]


def test_json_round_trip(parse: Callable[..., Config]) -> None:
    config = parse(
        clients=[{"name": "Acme", "birthday": "05-17", "notes": {"coffee": "black"}}],
        announcements=[{"date": "2025-03-03", "text": "News", "clients": "all"}],
        reminder={"time": "8:15", "workdays": ["sat", "mon"]},
    )
    dumped = json.loads(config.model_dump_json())
    assert dumped["counter"] == {
        "base": "P1W",
        "max": "P2M",
        "early": "P2D",
        "reset_markers": ["#need", "#reset"],
        "skip_markers": ["#skip"],
    }
    assert "config_path" not in dumped
    assert Config.model_validate_json(config.model_dump_json()) == config
    assert config.model_dump()["history_window"] == "P1Y"
    assert Config.model_validate(config.model_dump()) == config


# -- me ----------------------------------------------------------------------------------


def test_me_is_lower_cased(parse: Callable[..., Config]) -> None:
    assert parse(me=["Consultant@MyFirm.example", "mailto:Me@x.example"]).me == [
        "consultant@myfirm.example",
        "me@x.example",
    ]
    assert parse(me="me@x.example").me == ["me@x.example"]


def test_me_must_be_emails(problems_of: Callable[..., list[str]]) -> None:
    assert problems_of(me=["ok@x.example", "not-an-email"]) == ["me[1]: not an email address"]


# -- sources ----------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_folder(parse: Callable[..., Config]) -> None:
    config = parse(
        sources=[
            {"type": "ics", "path": "cal/work.ics"},
            {"type": "ics", "path": "/abs/home.ics"},
        ],
        target={"type": "ics", "path": "out/reminders.ics"},
        state_path="state/clientlove.sqlite",
    )
    assert config.sources[0].path == BASE_DIR / "cal/work.ics"
    assert config.sources[1].path == Path("/abs/home.ics")
    assert config.target.path == BASE_DIR / "out/reminders.ics"
    assert config.state_path == BASE_DIR / "state/clientlove.sqlite"


def test_home_is_expanded_in_paths(
    parse: Callable[..., Config], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = parse(sources=[{"type": "ics", "path": "~/cal.ics"}])
    assert config.sources[0].path == tmp_path / "cal.ics"


def test_source_name_is_derived_when_not_given(parse: Callable[..., Config]) -> None:
    config = parse(
        sources=[
            {"type": "ics", "path": "cal/work.ics"},
            {"type": "ics", "url": "https://cal.example.com/private-s3cr3tt0ken/basic.ics"},
            {"type": "ics", "url": "http://cal.example.com:8080/"},
            {"type": "ics", "path": "other.ics", "name": "  Home  "},
        ]
    )
    names = [s.name for s in config.sources]
    assert names[0] == "work" and names[3] == "Home"
    assert names[1].startswith("cal.example.com-") and "s3cr3t" not in names[1]
    assert names[2].startswith("cal.example.com:8080-")
    assert names[1] != names[2]


def test_source_name_is_derived_outside_the_loader_too() -> None:
    assert IcsSourceConfig(path=Path("/x/cal.ics")).name == "cal"
    name = IcsSourceConfig(url="https://h.example/a.ics?token=s3cr3t").name
    assert name.startswith("h.example-") and "s3cr3t" not in name


def test_url_source_with_login(parse: Callable[..., Config]) -> None:
    source = parse(
        sources=[
            {
                "type": "ics",
                "url": "https://cal.example.com/team.ics",
                "username": "me",
                "credential": "team-calendar",
                "timeout": 5,
                "verify_tls": False,
            }
        ]
    ).sources[0]
    assert source.url == "https://cal.example.com/team.ics"
    assert source.path is None
    assert (source.username, source.credential, source.timeout, source.verify_tls) == (
        "me",
        "team-calendar",
        5.0,
        False,
    )


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ({"type": "ics"}, "sources[0]: give exactly one of path or url"),
        (
            {"type": "ics", "path": "a.ics", "url": "https://x.example/a.ics"},
            "sources[0]: give exactly one of path or url",
        ),
        (
            {"type": "ics", "url": "ftp://x.example/a.ics"},
            "sources[0].url: must be an http:// or https:// address",
        ),
        (
            {"type": "ics", "url": "cal.example.com/a.ics"},
            "sources[0].url: must be an http:// or https:// address",
        ),
        (
            {"type": "ics", "url": "webcal://x.example/a.ics"},
            "sources[0].url: must be an http:// or https:// address (write webcal:// as https://)",
        ),
        (
            {"type": "ics", "url": "https://me:hunter2@x.example/a.ics"},
            "sources[0].url: must not carry a user name or password; "
            "use username and credential instead",
        ),
        (
            {"type": "ics", "url": "https://x.example/a.ics", "credential": "../etc/shadow"},
            "sources[0].credential: must be the plain name of a credential, "
            "like 'calendar-password'",
        ),
        (
            {"type": "ics", "url": "https://x.example/a.ics", "credential": "a/b"},
            "sources[0].credential: must be the plain name of a credential, "
            "like 'calendar-password'",
        ),
        (
            {"type": "ics", "path": "a.ics", "credential": "x"},
            "sources[0]: username and credential only apply to a url",
        ),
        (
            {"type": "ics", "path": "a.ics", "timeout": 0},
            "sources[0].timeout: must be greater than 0",
        ),
        (
            {"type": "ics", "path": "a.ics", "timeout": "soon"},
            "sources[0].timeout: must be a number",
        ),
        (
            {"type": "ics", "path": "a.ics", "verify_tls": "maybe"},
            "sources[0].verify_tls: must be true or false",
        ),
        ({"type": "ics", "path": ""}, "sources[0].path: must not be empty"),
        ({"type": "ics", "path": "a.ics", "name": " "}, "sources[0].name: must not be empty"),
        (
            {"type": "exchange", "server": "x"},
            "sources[0].type: unknown source type 'exchange' (known: ics, caldav, google)",
        ),
        ({"type": 3}, "sources[0].type: unknown source type 3 (known: ics, caldav, google)"),
        ({"path": "a.ics"}, "sources[0].type: required (known: ics, caldav, google)"),
        ("calendar.ics", "sources[0]: must be a mapping with a type (known: ics, caldav, google)"),
        ({"type": "ics", "path": "a.ics", "bogus": 1}, "sources[0].bogus: unknown key"),
    ],
)
def test_source_problems(problems_of: Callable[..., list[str]], source: Any, problem: str) -> None:
    assert problems_of(sources=[source]) == [problem]


def test_sources_must_not_be_empty(problems_of: Callable[..., list[str]]) -> None:
    assert problems_of(sources=[]) == ["sources: must not be empty"]
    assert problems_of(sources={"type": "ics", "path": "a.ics"}) == ["sources: must be a list"]


def test_sources_are_required(minimal_data: dict[str, Any]) -> None:
    del minimal_data["sources"], minimal_data["target"]
    with pytest.raises(ConfigError) as caught:
        parse_config(minimal_data, BASE_DIR)
    assert caught.value.problems == ["sources: required", "target: required"]


def test_source_names_must_be_unique(problems_of: Callable[..., list[str]]) -> None:
    assert problems_of(
        sources=[
            {"type": "ics", "path": "a/calendar.ics"},
            {"type": "ics", "path": "b/calendar.ics"},
            {"type": "ics", "path": "c.ics", "name": "calendar"},
        ]
    ) == [
        "sources[1]: duplicate source name 'calendar' (also sources[0]); "
        "give each source its own name",
        "sources[2].name: duplicate source name 'calendar' (also sources[0]); "
        "give each source its own name",
    ]


def test_a_password_in_the_config_gets_a_hint(problems_of: Callable[..., list[str]]) -> None:
    source = {"type": "ics", "url": "https://x.example/a.ics", "password": "hunter2"}
    [problem] = problems_of(sources=[source])
    assert problem.startswith("sources[0].password: unknown key (secrets never go in the config")
    assert "hunter2" not in problem


# -- target ----------------------------------------------------------------------------------


def test_target(parse: Callable[..., Config]) -> None:
    target = parse(target={"type": "ics", "path": "/var/lib/x.ics", "name": "Kundenpflege"}).target
    assert target == IcsTargetConfig(path=Path("/var/lib/x.ics"), name="Kundenpflege")


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ({"type": "ics"}, "target.path: required"),
        ({"type": "google", "calendar": "x"}, "target.credential: required"),
        (
            {"type": "exchange", "calendar": "x"},
            "target.type: unknown target type 'exchange' (known: ics, caldav, google)",
        ),
        ({"path": "x.ics"}, "target.type: required (known: ics, caldav, google)"),
        ({"type": "ics", "path": "x.ics", "name": ""}, "target.name: must not be empty"),
        ({"type": "ics", "path": "x.ics", "color": "red"}, "target.color: unknown key"),
        (["x.ics"], "target: must be a mapping with a type (known: ics, caldav, google)"),
    ],
)
def test_target_problems(problems_of: Callable[..., list[str]], target: Any, problem: str) -> None:
    assert problems_of(target=target) == [problem]


# -- counter ---------------------------------------------------------------------------------


def test_counter_accepts_every_duration_form(parse: Callable[..., Config]) -> None:
    counter = parse(
        counter={
            "base": "P2W",
            "max": "12 weeks",
            "early": "3d",
            "reset_markers": ["#Help "],
            "skip_markers": "#nope",
        }
    ).counter
    assert (counter.base, counter.max, counter.early) == (
        Span(days=14),
        Span(days=84),
        Span(days=3),
    )
    assert counter.reset_markers == ["#Help "]  # stored as given
    assert counter.skip_markers == ["#nope"]
    assert parse(counter={"base": "8w", "max": "2mo"}).counter.base == Span(days=56)
    assert parse(counter={"reset_markers": []}).counter.reset_markers == []


@pytest.mark.parametrize(
    ("counter", "problems"),
    [
        ({"base": "1mo"}, ["counter.base: must be whole days or weeks (like 7d or P1W)"]),
        ({"base": "PT12H"}, ["counter.base: must be whole days or weeks (like 7d or P1W)"]),
        ({"early": "1d12h"}, ["counter.early: must be whole days or weeks (like 7d or P1W)"]),
        ({"early": "1w"}, ["counter.early: must be shorter than counter.base (P1W)"]),
        ({"base": "2d"}, ["counter.early: must be shorter than counter.base (P2D)"]),
        ({"max": "1w"}, ["counter.max: must be longer than counter.base (P1W)"]),
        ({"max": "5d"}, ["counter.max: must be longer than counter.base (P1W)"]),
        # two months can be 59 days, shorter than nine weeks
        ({"base": "9w", "max": "2mo"}, ["counter.max: must be longer than counter.base (P9W)"]),
        ({"max": "2mo1h"}, ["counter.max: must be whole days, weeks or months (like 8w or 2mo)"]),
        (
            {"base": "0d", "early": "-1d"},
            [
                "counter.base: duration must be longer than zero: '0d'",
                "counter.early: duration must be longer than zero: '-1d'",
            ],
        ),
        (
            {"base": "soon"},
            [
                "counter.base: not a duration: 'soon' "
                "(use ISO 8601 like P1W or a short form like 7d, 2mo, 15min)"
            ],
        ),
        (
            {"reset_markers": ["#need", " "], "skip_markers": [None]},
            [
                "counter.reset_markers[1]: must not be empty",
                "counter.skip_markers[0]: must be text",
            ],
        ),
        ({"bogus": True}, ["counter.bogus: unknown key"]),
        ("weekly", ["counter: must be a mapping (key: value)"]),
    ],
)
def test_counter_problems(
    problems_of: Callable[..., list[str]], counter: Any, problems: list[str]
) -> None:
    assert problems_of(counter=counter) == problems


# -- reminder ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [("09:30", dt.time(9, 30)), ("9:30", dt.time(9, 30)), ("17:05:30", dt.time(17, 5, 30))],
)
def test_reminder_time(parse: Callable[..., Config], given: Any, expected: dt.time) -> None:
    assert parse(reminder={"time": given}).reminder.time == expected


def test_reminder_time_as_time(parse: Callable[..., Config]) -> None:
    assert parse(reminder={"time": dt.time(7, 0)}).reminder.time == dt.time(7, 0)


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("25:00", "reminder.time: must be a time of day like 09:30"),
        ("9.30", "reminder.time: must be a time of day like 09:30"),
        ("noon", "reminder.time: must be a time of day like 09:30"),
        (570, "reminder.time: must be a time of day like 09:30 (put it in quotes)"),
    ],
)
def test_reminder_time_problems(
    problems_of: Callable[..., list[str]], given: Any, problem: str
) -> None:
    assert problems_of(reminder={"time": given}) == [problem]


@pytest.mark.parametrize(
    ("given", "expected"),
    [("1d", Span(days=1)), ("2 days", Span(days=2)), ("PT36H", Span(days=1, seconds=43_200))],
)
def test_alarm_before_between_one_and_two_days(
    parse: Callable[..., Config], given: str, expected: Span
) -> None:
    assert parse(reminder={"alarm_before": given}).reminder.alarm_before == expected


@pytest.mark.parametrize("given", ["12h", "PT23H59M", "2d1s", "3d", "1mo", "1w"])
def test_alarm_before_outside_the_range(problems_of: Callable[..., list[str]], given: str) -> None:
    assert problems_of(reminder={"alarm_before": given}) == [
        "reminder.alarm_before: must be between 1 and 2 days"
    ]


def test_reminder_duration(
    parse: Callable[..., Config], problems_of: Callable[..., list[str]]
) -> None:
    assert parse(reminder={"duration": "1h"}).reminder.duration == Span(seconds=3600)
    assert parse(reminder={"duration": "PT23H"}).reminder.duration == Span(seconds=23 * 3600)
    for too_long in ("1d", "24h", "1mo", "P1W"):
        assert problems_of(reminder={"duration": too_long}) == [
            "reminder.duration: must be shorter than a day (like 15min or 1h)"
        ]
    assert problems_of(reminder={"duration": "0min"}) == [
        "reminder.duration: duration must be longer than zero: '0min'"
    ]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["mon", "tue", "wed", "thu", "fri"], [0, 1, 2, 3, 4]),
        (["Sunday", "MONDAY", "sat"], [0, 5, 6]),
        (["fri", "mon", "fri", "Friday"], [0, 4]),
        (["Tues", "thurs"], [1, 3]),
        ([6, 0], [0, 6]),
        ("mon, wed fri", [0, 2, 4]),
    ],
)
def test_workdays(parse: Callable[..., Config], given: Any, expected: list[int]) -> None:
    assert parse(reminder={"workdays": given}).reminder.workdays == expected


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ([], "reminder.workdays: must not be empty"),
        (
            ["mon", "funday"],
            "reminder.workdays[1]: not a weekday (use mon, tue, wed, thu, fri, sat or sun)",
        ),
        ([7], "reminder.workdays[0]: not a weekday (use mon, tue, wed, thu, fri, sat or sun)"),
        ([True], "reminder.workdays[0]: not a weekday (use mon, tue, wed, thu, fri, sat or sun)"),
    ],
)
def test_workdays_problems(problems_of: Callable[..., list[str]], given: Any, problem: str) -> None:
    assert problems_of(reminder={"workdays": given}) == [problem]


@pytest.mark.parametrize(
    "title",
    ["Client love: {client}", "Call {client}!", "{client:>10}", "No field", "{{literal}} {client}"],
)
def test_title_template(parse: Callable[..., Config], title: str) -> None:
    assert parse(reminder={"title": title}).reminder.title == title


@pytest.mark.parametrize(
    ("title", "problem"),
    [
        ("Hi {name}", "reminder.title: unknown field {name} in the template (allowed: {client})"),
        ("Hi {}", "reminder.title: unknown field {} in the template (allowed: {client})"),
        ("Hi {0}", "reminder.title: unknown field {0} in the template (allowed: {client})"),
        (
            "Hi {client.upper}",
            "reminder.title: unknown field {client.upper} in the template (allowed: {client})",
        ),
        (
            "Hi {client",
            "reminder.title: not a valid template (expected '}' before end of string); "
            "write a literal brace as {{ or }}",
        ),
        (
            "Hi {client:%Y}",
            "reminder.title: not a valid template "
            "(Invalid format specifier '%Y' for object of type 'str')",
        ),
        ("  ", "reminder.title: must not be empty"),
    ],
)
def test_title_template_problems(
    problems_of: Callable[..., list[str]], title: str, problem: str
) -> None:
    assert problems_of(reminder={"title": title}) == [problem]


def test_email_template(
    parse: Callable[..., Config], problems_of: Callable[..., list[str]]
) -> None:
    template = "Hi {first_name},\nas per our conversation with {client}: ...\n{me}"
    assert parse(email_template=template).email_template == template
    assert problems_of(email_template="Dear {title}") == [
        "email_template: unknown field {title} in the template "
        "(allowed: {client}, {first_name}, {me}, {email}, {project}, {account_manager})"
    ]


def test_history_window(
    parse: Callable[..., Config], problems_of: Callable[..., list[str]]
) -> None:
    assert parse(history_window="2y").history_window == Span(months=24)
    assert parse(history_window="90 days").history_window == Span(days=90)
    assert problems_of(history_window="PT5H") == [
        "history_window: must be whole days, weeks, months or years (like 1y)"
    ]


def test_ideas(parse: Callable[..., Config], problems_of: Callable[..., list[str]]) -> None:
    assert parse(ideas=[" Send an article ", "Invite them"]).ideas == [
        "Send an article",
        "Invite them",
    ]
    assert problems_of(ideas=["ok", ""]) == ["ideas[1]: must not be empty"]


# -- clients -------------------------------------------------------------------------------


def test_client_fields_are_normalised(parse: Callable[..., Config]) -> None:
    [client] = parse(
        clients=[
            {
                "name": "  Acme Corp ",
                "emails": [
                    "Jane.Doe@ACME.example",
                    "MAILTO:bob@acme.example",
                    "mailto: x@acme.example",
                ],
                "domains": ["@Acme.Example", "acme.example."],
                "keywords": [" Acme ", "Road Runner"],
                "phone": " +44 20 7946 0000 ",
            }
        ]
    ).clients
    assert client.name == "Acme Corp"
    assert client.slug == "acme-corp"
    assert client.emails == ["jane.doe@acme.example", "bob@acme.example", "x@acme.example"]
    assert client.domains == ["acme.example", "acme.example"]
    assert client.keywords == ["Acme", "Road Runner"]
    assert client.phone == "+44 20 7946 0000"
    assert (client.notes, client.birthday) == (None, None)


def test_client_contact_account_manager_and_project(
    parse: Callable[..., Config], problems_of: Callable[..., list[str]]
) -> None:
    [client] = parse(clients=[{"name": "A", "contact": " Jane Doe ",
                               "account_manager": "Sam@MyFirm.example",
                               "project": " Data platform "}]).clients
    assert (client.contact, client.account_manager, client.project) == (
        "Jane Doe", "sam@myfirm.example", "Data platform")
    [bare] = parse(clients=[{"name": "B"}]).clients
    assert (bare.contact, bare.account_manager, bare.project) == (None, None, None)
    assert sorted(problems_of(clients=[{"name": "A", "contact": " ", "account_manager": "Sam",
                                        "project": ""}])) == [
        "clients[0].account_manager: not an email address",
        "clients[0].contact: must not be empty",
        "clients[0].project: must not be empty",
    ]


def test_email_template_takes_the_new_fields(parse: Callable[..., Config]) -> None:
    template = "To: {email}\nCc: {account_manager}\nSubject: {project}\n\nHi {first_name}"
    assert parse(email_template=template).email_template == template


def test_client_lists_accept_a_single_string(parse: Callable[..., Config]) -> None:
    [client] = parse(
        clients=[{"name": "A", "emails": "a@a.example", "domains": "a.example"}]
    ).clients
    assert (client.emails, client.domains) == (["a@a.example"], ["a.example"])


@pytest.mark.parametrize(
    "email",
    [
        "jane",
        "jane@",
        "@acme.example",
        "jane@acme",
        "jane doe@acme.example",
        "jane@@acme.example",
        ".jane@acme.example",
        "ja..ne@acme.example",
        "jane@-acme.example",
        "jane@acme..example",
        "Jane <jane@acme.example>",
    ],
)
def test_bad_emails(problems_of: Callable[..., list[str]], email: str) -> None:
    assert problems_of(clients=[{"name": "A", "emails": ["ok@a.example", email]}]) == [
        "clients[0].emails[1]: not an email address"
    ]


@pytest.mark.parametrize(
    "domain", ["acme", "acme .example", "-acme.example", "acme_corp.example", ""]
)
def test_bad_domains(problems_of: Callable[..., list[str]], domain: str) -> None:
    assert problems_of(clients=[{"name": "A", "domains": [domain]}]) == [
        "clients[0].domains[0]: not a domain name (like acme.example)"
    ]


def test_notes_keep_their_order_and_become_text(parse: Callable[..., Config]) -> None:
    [client] = parse(
        clients=[
            {
                "name": "A",
                "notes": {
                    "coffee": " flat white ",
                    "kids": 2,
                    "hobbies": ["sailing", "chess"],
                    "vegetarian": True,
                    "anniversary": dt.date(2010, 6, 1),
                    "empty": None,
                    "allergies": "nuts",
                },
            }
        ]
    ).clients
    assert client.notes == {
        "coffee": "flat white",
        "kids": "2",
        "hobbies": "sailing, chess",
        "vegetarian": "yes",
        "anniversary": "2010-06-01",
        "allergies": "nuts",
    }
    assert list(client.notes) == [
        "coffee",
        "kids",
        "hobbies",
        "vegetarian",
        "anniversary",
        "allergies",
    ]


def test_notes_as_text(parse: Callable[..., Config]) -> None:
    notes = "Loves cycling.\nTwo kids.\n"
    assert parse(clients=[{"name": "A", "notes": notes}]).clients[0].notes == notes.strip()
    assert parse(clients=[{"name": "A", "notes": "  "}]).clients[0].notes is None


@pytest.mark.parametrize(
    ("notes", "problem"),
    [
        (
            {"family": {"kids": 2}},
            "clients[0].notes: the note 'family' must be text or a list of text",
        ),
        ({"x": [[1]]}, "clients[0].notes: the note 'x' must be text or a list of text"),
        (["coffee"], "clients[0].notes: must be text or a mapping like {coffee: flat white}"),
        (42, "clients[0].notes: must be text or a mapping like {coffee: flat white}"),
    ],
)
def test_notes_problems(problems_of: Callable[..., list[str]], notes: Any, problem: str) -> None:
    assert problems_of(clients=[{"name": "A", "notes": notes}]) == [problem]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("1975-05-17", dt.date(1975, 5, 17)),
        (dt.date(1975, 5, 17), dt.date(1975, 5, 17)),
        ("05-17", dt.date(NO_YEAR, 5, 17)),
        ("--05-17", dt.date(NO_YEAR, 5, 17)),
        ("5-7", dt.date(NO_YEAR, 5, 7)),
        ("02-29", dt.date(NO_YEAR, 2, 29)),
    ],
)
def test_birthday_forms(parse: Callable[..., Config], given: Any, expected: dt.date) -> None:
    client = parse(clients=[{"name": "A", "birthday": given}]).clients[0]
    assert client.birthday == expected
    assert client.birthday_has_year == (expected.year != NO_YEAR)


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("02-30", "clients[0].birthday: not a valid date: '02-30'"),
        ("1975-13-01", "clients[0].birthday: not a valid date: '1975-13-01'"),
        (
            "May 17",
            "clients[0].birthday: must be a date like 1980-05-17, "
            "or 05-17 when the year is unknown",
        ),
        (
            517,
            "clients[0].birthday: must be a date like 1980-05-17, "
            "or 05-17 when the year is unknown",
        ),
        (
            dt.datetime(1975, 5, 17, 8, 0),
            "clients[0].birthday: must be a date like 1980-05-17 or 05-17, without a time",
        ),
    ],
)
def test_birthday_problems(problems_of: Callable[..., list[str]], given: Any, problem: str) -> None:
    assert problems_of(clients=[{"name": "A", "birthday": given}]) == [problem]


@pytest.mark.parametrize(
    ("birthday", "on_or_after", "expected"),
    [
        ("05-17", dt.date(2025, 1, 1), dt.date(2025, 5, 17)),
        ("05-17", dt.date(2025, 5, 17), dt.date(2025, 5, 17)),
        ("05-17", dt.date(2025, 5, 18), dt.date(2026, 5, 17)),
        ("1975-05-17", dt.date(2025, 5, 1), dt.date(2025, 5, 17)),
        ("02-29", dt.date(2025, 1, 1), dt.date(2025, 2, 28)),
        ("02-29", dt.date(2025, 2, 28), dt.date(2025, 2, 28)),
        ("02-29", dt.date(2025, 3, 1), dt.date(2026, 2, 28)),
        ("02-29", dt.date(2027, 3, 1), dt.date(2028, 2, 29)),
        ("1996-02-29", dt.date(2024, 2, 1), dt.date(2024, 2, 29)),
        ("2100-02-28", dt.date(2099, 12, 31), dt.date(2100, 2, 28)),
        ("12-31", dt.date(2025, 12, 31), dt.date(2025, 12, 31)),
        ("01-01", dt.date(2025, 12, 31), dt.date(2026, 1, 1)),
    ],
)
def test_next_birthday(birthday: str, on_or_after: dt.date, expected: dt.date) -> None:
    client = ClientConfig.model_validate({"name": "A", "birthday": birthday})
    assert client.next_birthday(on_or_after) == expected


def test_next_birthday_without_a_birthday() -> None:
    assert ClientConfig(name="A").next_birthday(dt.date(2025, 1, 1)) is None


@pytest.mark.parametrize(
    ("client", "problem"),
    [
        ({}, "clients[0].name: required"),
        ({"name": "  "}, "clients[0].name: must not be empty"),
        ({"name": "!!!"}, "clients[0].name: needs at least one letter or digit"),
        ({"name": 42}, "clients[0].name: must be text (put it in quotes)"),
        ({"name": "A", "keywords": ["ok", " "]}, "clients[0].keywords[1]: must not be empty"),
        ({"name": "A", "phone": 2079460000}, "clients[0].phone: must be text (put it in quotes)"),
        ({"name": "A", "phone": ""}, "clients[0].phone: must not be empty"),
        ({"name": "A", "email": "a@a.example"}, "clients[0].email: unknown key"),
        ({"name": "A", "emails": {"a": 1}}, "clients[0].emails: must be a list"),
        ("Acme", "clients[0]: must be a mapping (key: value)"),
    ],
)
def test_client_problems(problems_of: Callable[..., list[str]], client: Any, problem: str) -> None:
    assert problems_of(clients=[client]) == [problem]


def test_client_names_must_be_unique(problems_of: Callable[..., list[str]]) -> None:
    assert problems_of(
        clients=[
            {"name": "Acme Corp"},
            {"name": "ACME CORP "},
            {"name": "Acme-Corp"},
            {"name": "Globex"},
        ]
    ) == [
        "clients[1].name: duplicate client name 'ACME CORP' (also clients[0])",
        "clients[2].name: 'Acme-Corp' gives the same key 'acme-corp' as clients[0] "
        "'Acme Corp'; rename one",
    ]


def test_duplicate_clients_are_refused_outside_the_loader_too() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"clients\[1\].name: duplicate client name"):
        Config(
            sources=[IcsSourceConfig(path=Path("/c.ics"))],
            target=IcsTargetConfig(path=Path("/r.ics")),
            clients=[ClientConfig(name="Acme"), ClientConfig(name="acme")],
        )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Acme Corp", "acme-corp"),
        ("  Acme   Corp  ", "acme-corp"),
        ("AT&T", "at-t"),
        ("Müller GmbH & Co. KG", "muller-gmbh-co-kg"),
        ("a_b--c", "a-b-c"),
        ("Initech", "initech"),
        ("!!!", ""),
        ("Ｆｕｌｌ width", "full-width"),
    ],
)
def test_slug(name: str, expected: str) -> None:
    assert slug(name) == expected


# -- announcements ---------------------------------------------------------------------------


@pytest.fixture
def three_clients() -> list[dict[str, Any]]:
    """Clients the announcement tests can name."""
    return [{"name": "Acme Corp"}, {"name": "Globex"}, {"name": "Initech"}]


def test_announcements(parse: Callable[..., Config], three_clients: list[dict[str, Any]]) -> None:
    config = parse(
        clients=three_clients,
        announcements=[
            {
                "date": "2025-03-03",
                "text": " New product ",
                "clients": ["acme corp", "Initech", "ACME CORP"],
            },
            {"date": dt.date(2025, 4, 1), "text": "Webinar", "clients": "all"},
            {"date": "2025-05-01", "text": "Price change", "clients": "ALL"},
            {"date": "2025-06-01", "text": "Case study", "clients": "Globex"},
        ],
    )
    first, second, third, fourth = config.announcements
    assert first.date == dt.date(2025, 3, 3)
    assert first.text == "New product"
    assert first.names(config.clients) == ["Acme Corp", "Initech"]
    assert second.clients == "all"
    assert second.names(config.clients) == ["Acme Corp", "Globex", "Initech"]
    assert third.clients == "all"
    assert fourth.clients == ["Globex"]
    assert fourth.names(["Globex", "Other"]) == ["Globex"]


@pytest.mark.parametrize(
    ("announcement", "problems"),
    [
        (
            {"date": "2025-03-03", "text": "x", "clients": ["Acme Corp", "Globex Inc"]},
            ["announcements[0].clients[1]: no client named 'Globex Inc'"],
        ),
        (
            {"date": "2025-03-03", "text": "x", "clients": "Hooli"},
            ["announcements[0].clients: no client named 'Hooli'"],
        ),
        (
            {"date": "2025-03-03", "text": "x", "clients": []},
            ["announcements[0].clients: must not be empty"],
        ),
        (
            {"date": "2025-03-03", "text": "x", "clients": ["Acme Corp", 7]},
            ["announcements[0].clients[1]: must be text (put it in quotes)"],
        ),
        (
            {"date": "2025-03-03", "text": "x", "clients": {"a": 1}},
            ["announcements[0].clients: must be a list"],
        ),
        (
            {"date": "soon", "text": "x", "clients": "all"},
            ["announcements[0].date: must be a date like 2024-05-17"],
        ),
        (
            {"date": "2025-03-03", "text": "", "clients": "all"},
            ["announcements[0].text: must not be empty"],
        ),
        (
            {"text": "x"},
            ["announcements[0].date: required", "announcements[0].clients: required"],
        ),
        (
            {"date": "2025-03-03", "text": "x", "clients": "all", "until": "2025-04-01"},
            ["announcements[0].until: unknown key"],
        ),
    ],
)
def test_announcement_problems(
    problems_of: Callable[..., list[str]],
    three_clients: list[dict[str, Any]],
    announcement: dict[str, Any],
    problems: list[str],
) -> None:
    assert problems_of(clients=three_clients, announcements=[announcement]) == problems


def test_announcement_names_keep_unknown_names() -> None:
    announcement = AnnouncementConfig(date=dt.date(2025, 1, 1), text="x", clients=["Nobody"])
    assert announcement.names([]) == ["Nobody"]


# -- many problems at once ---------------------------------------------------------------------


def test_every_problem_is_reported_at_once(minimal_data: dict[str, Any]) -> None:
    data = {
        "timezone": "Mars/Base",
        "me": ["me"],
        "sources": [
            {"type": "ics", "path": "a.ics", "url": "https://x.example/a.ics"},
            {"type": "exchange", "server": "mail.example"},
            {"type": "ics", "path": "b.ics", "refresh": "1h"},
        ],
        "target": {"type": "ics"},
        "counter": {"base": "1mo", "early": "2h", "bogus": 1},
        "reminder": {
            "time": "25:00",
            "alarm_before": "3d",
            "workdays": ["mon", "someday"],
            "title": "{who}",
            "colour": "red",
        },
        "history_window": "forever",
        "clients": [
            {"name": "Acme Corp", "emails": ["jane@"], "domains": ["acme"]},
            {"name": "acme corp", "birthday": "02-30"},
            {"name": "Initech", "notes": {"x": {"y": 1}}, "nickname": "I"},
            {"name": "Hooli", "emails": ["ok@hooli.example", "nope"]},
        ],
        "announcements": [
            {"date": "2025-03-03", "text": "News", "clients": ["Acme Corp", "Globex"]},
            {"date": "someday", "text": "", "clients": "all"},
        ],
        "extra_section": {},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data, BASE_DIR)
    assert caught.value.problems == [
        "timezone: unknown time zone 'Mars/Base'",
        "me[0]: not an email address",
        "sources[0]: give exactly one of path or url",
        "sources[1].type: unknown source type 'exchange' (known: ics, caldav, google)",
        "sources[2].refresh: unknown key",
        "target.path: required",
        "counter.base: must be whole days or weeks (like 7d or P1W)",
        "counter.early: must be whole days or weeks (like 7d or P1W)",
        "counter.bogus: unknown key",
        "reminder.time: must be a time of day like 09:30",
        "reminder.alarm_before: must be between 1 and 2 days",
        "reminder.workdays[1]: not a weekday (use mon, tue, wed, thu, fri, sat or sun)",
        "reminder.title: unknown field {who} in the template (allowed: {client})",
        "reminder.colour: unknown key",
        "history_window: not a duration: 'forever' "
        "(use ISO 8601 like P1W or a short form like 7d, 2mo, 15min)",
        "clients[0].emails[0]: not an email address",
        "clients[0].domains[0]: not a domain name (like acme.example)",
        "clients[1].birthday: not a valid date: '02-30'",
        "clients[1].name: duplicate client name 'acme corp' (also clients[0])",
        "clients[2].notes: the note 'x' must be text or a list of text",
        "clients[2].nickname: unknown key",
        "clients[3].emails[1]: not an email address",
        "announcements[0].clients[1]: no client named 'Globex'",
        "announcements[1].date: must be a date like 2024-05-17",
        "announcements[1].text: must not be empty",
        "extra_section: unknown key",
    ]
    message = str(caught.value)
    assert message.startswith("invalid configuration (26 problems):\n")
    expected = "  sources[1].type: unknown source type 'exchange' (known: ics, caldav, google)"
    assert expected in message.splitlines()


def test_unknown_keys_at_every_depth(problems_of: Callable[..., list[str]]) -> None:
    assert problems_of(
        colour="red",
        sources=[{"type": "ics", "path": "a.ics", "colour": "red"}],
        target={"type": "ics", "path": "r.ics", "colour": "red"},
        counter={"colour": "red"},
        reminder={"colour": "red"},
        clients=[{"name": "A", "colour": "red"}],
        announcements=[{"date": "2025-01-01", "text": "x", "clients": "all", "colour": "red"}],
    ) == [
        "sources[0].colour: unknown key",
        "target.colour: unknown key",
        "counter.colour: unknown key",
        "reminder.colour: unknown key",
        "clients[0].colour: unknown key",
        "announcements[0].colour: unknown key",
        "colour: unknown key",
    ]


def test_no_pydantic_internals_in_problems(problems_of: Callable[..., list[str]]) -> None:
    problems = problems_of(
        sources=[{"type": "ics", "url": 5}, {"type": "nope"}],
        announcements=[{"date": "2025-01-01", "text": "x", "clients": [None]}],
    )
    for problem in problems:
        for internal in (
            "function-",
            "[ics]",
            ".ics.",
            "list[",
            "literal[",
            "Value error",
            "Input should",
        ):
            assert internal not in problem, problem


def test_config_path_cannot_come_from_the_file(problems_of: Callable[..., list[str]]) -> None:
    assert problems_of(config_path="/etc/passwd") == ["config_path: unknown key"]


def test_parse_config_refuses_a_non_mapping() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(["sources"], BASE_DIR)  # type: ignore[arg-type]
    assert caught.value.problems == [
        "the configuration must be a mapping of settings (key: value), not a list"
    ]


def test_config_error() -> None:
    error = ConfigError(["a: required"], path=Path("/x/config.yaml"))
    assert error.problems == ["a: required"]
    assert str(error) == "invalid configuration in /x/config.yaml (1 problem):\n  a: required"
    assert EX_CONFIG == 78


# -- finding the file ----------------------------------------------------------------------------


def test_find_config_path_prefers_the_explicit_value(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("CLIENTLOVE_CONFIG", str(tmp_path / "env.yaml"))
    assert find_config_path(tmp_path / "cli.yaml") == tmp_path / "cli.yaml"
    assert find_config_path(str(tmp_path / "cli.yaml")) == tmp_path / "cli.yaml"


def test_find_config_path_then_the_environment(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("CLIENTLOVE_CONFIG", str(tmp_path / "env.yaml"))
    (tmp_path / "xdg" / "clientlove").mkdir(parents=True)
    (tmp_path / "xdg" / "clientlove" / "config.yaml").write_text("{}")
    clean_env.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert find_config_path(None) == tmp_path / "env.yaml"
    assert find_config_path("") == tmp_path / "env.yaml"


def test_find_config_path_then_the_xdg_file_if_it_exists(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    system = tmp_path / "etc" / "config.yaml"
    clean_env.setattr("daemon.config.loading.SYSTEM_CONFIG", system)
    with pytest.raises(ConfigError, match="no config file found"):
        find_config_path(None)  # tests/test_cli_person.py checks the whole message
    system.parent.mkdir()
    system.write_text("{}")
    assert find_config_path(None) == system
    (tmp_path / "xdg" / "clientlove").mkdir(parents=True)
    (tmp_path / "xdg" / "clientlove" / "config.yaml").write_text("{}")
    assert find_config_path(None) == tmp_path / "xdg" / "clientlove" / "config.yaml"


def test_find_config_path_defaults_to_dot_config(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    user_file = tmp_path / "home" / ".config" / "clientlove" / "config.yaml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text("{}")
    assert find_config_path(None) == user_file
    clean_env.setenv("XDG_CONFIG_HOME", "relative/is/ignored")
    assert find_config_path(None) == user_file


# -- the state path ---------------------------------------------------------------------------


def test_default_state_path_order(
    parse: Callable[..., Config], clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = parse()
    assert default_state_path(config) == (
        tmp_path / "home" / ".local" / "state" / "clientlove" / "state.sqlite"
    )
    clean_env.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    assert default_state_path(config) == tmp_path / "xdg-state" / "clientlove" / "state.sqlite"
    clean_env.setenv("STATE_DIRECTORY", "/var/lib/clientlove:/var/lib/other")
    assert default_state_path(config) == Path("/var/lib/clientlove/state.sqlite")
    assert default_state_path(parse(state_path="/data/s.sqlite")) == Path("/data/s.sqlite")


# -- loading the file ----------------------------------------------------------------------------


def test_load_config_reads_yaml_and_records_the_path(tmp_config: Callable[[str], Path]) -> None:
    path = tmp_config(
        """
        timezone: Europe/Berlin
        sources:
          - type: ics
            path: cal.ics
        target: {type: ics, path: out/reminders.ics}
        reminder:
          time: 9:30          # YAML 1.1 would read this as the number 570
          workdays: [mon, tue]
        counter:
          reset_markers: ["#need"]
        clients:
          - name: Acme
            keywords: [no, on, off, yes]   # YAML 1.1 would read these as booleans
            phone: 0123 456
        """
    )
    config = load_config(path)
    assert config.config_path == path
    assert config.sources[0].path == path.parent / "cal.ics"
    assert config.target.path == path.parent / "out" / "reminders.ics"
    assert config.reminder.time == dt.time(9, 30)
    assert config.clients[0].keywords == ["no", "on", "off", "yes"]
    assert config.clients[0].phone == "0123 456"


def test_load_config_reads_booleans_and_numbers(tmp_config: Callable[[str], Path]) -> None:
    path = tmp_config(
        """
        sources:
          - {type: ics, url: "https://x.example/a.ics", verify_tls: false, timeout: 0x10}
          - {type: ics, path: b.ics, timeout: 010}
        target: {type: ics, path: r.ics}
        """
    )
    first, second = load_config(path).sources
    assert (first.verify_tls, first.timeout) == (False, 16.0)
    assert second.timeout == 10.0  # decimal, not YAML 1.1 octal


def test_load_config_relative_path_argument(
    tmp_config: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_config("sources: [{type: ics, path: c.ics}]\ntarget: {type: ics, path: r.ics}\n")
    monkeypatch.chdir(path.parent)
    config = load_config(Path("config.yaml"))
    assert config.config_path == path
    assert config.sources[0].path == path.parent / "c.ics"


def test_load_config_reports_problems_with_the_file_named(
    tmp_config: Callable[[str], Path],
) -> None:
    path = tmp_config("sources: []\ntarget: {type: ics, path: r.ics}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == ["sources: must not be empty"]
    assert caught.value.path == path
    assert str(caught.value).startswith(f"invalid configuration in {path} (1 problem):")


def test_yaml_syntax_error_is_one_problem_with_line_and_column(
    tmp_config: Callable[[str], Path],
) -> None:
    path = tmp_config(
        """
        sources:
          - type: ics
            path: "unclosed
        target: {type: ics, path: r.ics}
        """
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}: line ")
    assert ", column " in problem
    assert "not valid YAML" in problem


def test_yaml_syntax_error_position(tmp_config: Callable[[str], Path]) -> None:
    path = tmp_config("sources:\n  - type: ics\n    path: a.ics\n  bad: [\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}: line 4, column 3: not valid YAML: expected <block end>, but found '?'"
    ]


def test_duplicate_keys_are_reported(tmp_config: Callable[[str], Path]) -> None:
    path = tmp_config(
        """\
        sources: [{type: ics, path: a.ics}]
        target: {type: ics, path: r.ics}
        counter:
          base: 1w
          base: 2w
        timezone: Mars/Base
        """
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}: line 5, column 3: duplicate key 'base' (first at line 4)",
        "timezone: unknown time zone 'Mars/Base'",
    ]


def test_yaml_merge_keys_are_not_duplicates(tmp_config: Callable[[str], Path]) -> None:
    path = tmp_config(
        """\
        defaults: &defaults
          type: ics
          timeout: 10
        sources:
          - <<: *defaults
            path: a.ics
            timeout: 20
        target: {type: ics, path: r.ics}
        """
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == ["defaults: unknown key"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "the file is empty; it needs at least sources and target"),
        ("# only a comment\n", "the file is empty; it needs at least sources and target"),
        ("- a\n- b\n", "must hold a mapping of settings (key: value) at the top, not a list"),
        ("just text\n", "must hold a mapping of settings (key: value) at the top, not a text"),
        ("a: 1\n---\nb: 2\n", "line 2, column 1: not valid YAML: but found another document"),
    ],
)
def test_files_that_are_not_a_mapping(
    tmp_config: Callable[[str], Path], text: str, problem: str
) -> None:
    path = tmp_config(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [f"{path}: {problem}"]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [f"{path}: no such file (start from config.example.yaml)"]


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert caught.value.problems == [f"{tmp_path}: is a folder, not a config file"]


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"timezone: \xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [f"{path}: cannot read it: not UTF-8 text"]


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("{}")

    def denied(self: Path, *args: Any, **kwargs: Any) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [f"{path}: cannot read it: permission denied"]


# -- the example shipped with the project ---------------------------------------------------


def test_example_config_loads() -> None:
    path = REPO / "config.example.yaml"
    config = load_config(path)
    assert config.config_path == path
    assert config.timezone == "Europe/London"
    assert config.me == ["consultant@myfirm.example"]
    assert config.sources[0].path == REPO / "examples" / "calendar.ics"
    assert config.sources[0].name == "calendar"
    assert config.target.path == REPO / "reminders.ics"
    assert config.counter == config_module.CounterConfig()
    assert config.reminder == config_module.ReminderConfig()
    assert config.history_window == Span(months=12)
    assert [c.name for c in config.clients] == ["Acme Corp", "Globex", "Initech"]
    acme, globex, initech = config.clients
    assert acme.emails == ["jane.doe@acme.example"]
    assert acme.domains == ["acme.example"]
    assert acme.keywords
    assert isinstance(acme.notes, dict)
    assert {"coffee", "family", "hobbies"} <= set(acme.notes)
    assert acme.birthday is not None
    assert globex.emails == ["hank@globex.example"]
    assert globex.domains == ["globex.example"]
    assert initech.emails == ["peter@initech.example"]
    assert initech.domains == ["initech.example"]
    [announcement] = config.announcements
    assert set(announcement.names(config.clients)) <= {"Acme Corp", "Globex", "Initech"}


def test_example_config_shows_the_email_keys_and_a_valid_template(tmp_path: Path) -> None:
    text = (REPO / "config.example.yaml").read_text()
    acme = load_config(REPO / "config.example.yaml").clients[0]
    assert (acme.contact, acme.account_manager, acme.project) == (
        "Jane Doe", "sam.lead@myfirm.example", "Data platform migration")
    for field in ("{client}", "{first_name}", "{email}", "{account_manager}", "{project}",
                  "{me}"):
        assert field in text, field
    # the commented template, uncommented, is one the config accepts
    lines = text.splitlines()
    start = lines.index("# email_template: |")
    block = ["email_template: |"]
    for line in lines[start + 1:]:
        if not line.startswith("#  ") and line != "#":
            break
        block.append(line[1:])
    parsed = yaml.safe_load("\n".join(block))
    config = parse_config({"sources": [{"type": "ics", "path": "h.ics"}],
                           "target": {"type": "ics", "path": "r.ics"}, **parsed}, tmp_path)
    assert config.email_template.startswith("To: {email}\nCc: {account_manager}\n")
