"""One state per configuration (issue 12 point 6), in a fresh HOME through the CLI.

The state belongs to the target it describes. The default file is one per config file
(``<stem>-<digest>.sqlite`` in the XDG state folder or ``$STATE_DIRECTORY``), and the state
records its target, so the README's quick start followed by the user's own config just works,
two configs on one machine never fight, and a state shared by two targets says so clearly.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import icalendar
import pytest
import yaml
from click.testing import CliRunner

from daemon.cli import cli
from daemon.config import (
    LEGACY_STATE_NAME,
    SYSTEM_CONFIG,
    default_state_path,
    load_config,
    parse_config,
    target_identity,
)
from daemon.reminder_ical import key_of
from daemon.state import TARGET_META, State, recorded_target

ROOT = Path(__file__).resolve().parents[1]
NOW = "2026-11-23T08:00"  # a Monday


@dataclass
class Home:
    """A person's machine: a fresh HOME, the repository's example copied into ``repo``."""

    home: Path
    repo: Path

    @property
    def example(self) -> Path:
        return self.repo / "config.example.yaml"

    @property
    def own(self) -> Path:
        return self.home / ".config" / "clientlove" / "config.yaml"

    @property
    def state_dir(self) -> Path:
        return self.home / ".local" / "state" / "clientlove"

    def run(self, *args: str, now: str = NOW, config: Path | None = None, code: int = 0):
        head = ["--config", str(config)] if config else []
        result = CliRunner().invoke(cli, [*head, "--now", now, *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result


def _meeting(uid: str, day: str, email: str) -> str:
    return "\r\n".join(["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z",
                        f"DTSTART;TZID=Europe/London:{day}T100000", "SUMMARY:Catch-up",
                        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{email}", "END:VEVENT"])


def write_own_config(home: Path, *, state_path: Path | None = None) -> Path:
    """The user's own config: their own calendar in, their own reminders file out."""
    calendars = home / "calendars"
    calendars.mkdir(exist_ok=True)
    (calendars / "work.ics").write_text("\r\n".join([
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//me//my app//EN",
        _meeting("u1", "20261116", "ada@umbrella.example"),
        _meeting("h1", "20261113", "gavin@hooli.example"),
        _meeting("s1", "20261109", "sam@soylent.example"),
        "END:VCALENDAR", ""]))
    config = {
        "timezone": "Europe/London",
        "sources": [{"type": "ics", "name": "mine", "path": str(calendars / "work.ics")}],
        "target": {"type": "ics", "path": str(calendars / "clientlove.ics")},
        "clients": [{"name": "Umbrella", "domains": ["umbrella.example"]},
                    {"name": "Hooli", "domains": ["hooli.example"]},
                    {"name": "Soylent", "domains": ["soylent.example"]}],
    }
    if state_path is not None:
        config["state_path"] = str(state_path)
    path = home / ".config" / "clientlove" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def said(stderr: str, *phrases: str) -> bool:
    """Every phrase is in the output, however the terminal wrapped it."""
    flat = "".join(stderr.split())
    return all("".join(p.split()) in flat for p in phrases)


def keys_in(path: Path) -> set[str]:
    if not path.exists():
        return set()
    cal = icalendar.Calendar.from_ical(path.read_bytes())
    return {k for k in (key_of(e) for e in cal.walk("VEVENT")) if k}


@pytest.fixture
def machine(tmp_path: Path, monkeypatch) -> Home:
    home = tmp_path / "home"
    home.mkdir()
    repo = tmp_path / "clientlove"
    repo.mkdir()
    shutil.copy(ROOT / "config.example.yaml", repo / "config.example.yaml")
    shutil.copytree(ROOT / "examples", repo / "examples")
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME",
                 "STATE_DIRECTORY", "CLIENTLOVE_CONFIG", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(repo)
    return Home(home, repo)


def test_readme_quick_start_then_the_users_own_config(machine: Home):
    """The README's `clientlove --config config.example.yaml sync`, then the user's own
    config (found in ~/.config, no --config): it is not refused, its reminders are written,
    and the example's file is left alone."""
    machine.run("sync", config=Path("config.example.yaml"))
    example_out = machine.repo / "reminders.ics"
    example_keys = keys_in(example_out)
    assert len(example_keys) == 3, example_keys
    before = example_out.read_bytes()

    write_own_config(machine.home)
    result = machine.run("sync")
    own_out = machine.home / "calendars" / "clientlove.ics"
    assert {k.split(".")[0] for k in keys_in(own_out)} == {"umbrella", "hooli", "soylent"}
    assert "refused" not in result.output
    assert example_out.read_bytes() == before
    assert "0 writes" in machine.run("sync", now="2026-11-23T08:30").stdout
    assert "0 writes" in machine.run("sync", now="2026-11-23T08:30",
                                     config=machine.example).stdout

    states = sorted(p.name for p in machine.state_dir.glob("*.sqlite"))
    assert len(states) == 2 and LEGACY_STATE_NAME not in states, states
    assert {recorded_target(machine.state_dir / s) for s in states} == {
        target_identity(load_config(machine.example).target),
        target_identity(load_config(machine.own).target)}


def test_two_configs_alternating_over_days_never_fight(machine: Home):
    """Both configs run every day for two weeks, in turn; neither is ever refused, neither
    touches the other's reminders file, each keeps exactly its own clients' reminders."""
    write_own_config(machine.home)
    example_out = machine.repo / "reminders.ics"
    own_out = machine.home / "calendars" / "clientlove.ics"
    start = date(2026, 11, 23)
    for offset in range(14):
        day = start + timedelta(days=offset)
        for config, mine, other in ((machine.example, example_out, own_out),
                                    (machine.own, own_out, example_out)):
            untouched = other.read_bytes() if other.exists() else None
            machine.run("sync", now=f"{day}T08:00", config=config)
            assert (other.read_bytes() if other.exists() else None) == untouched, (day, config)
            assert mine.exists()
    example_clients = {k.split(".")[0] for k in keys_in(example_out)}
    own_clients = {k.split(".")[0] for k in keys_in(own_out)}
    assert example_clients == {"acme-corp", "globex", "initech"}
    assert own_clients == {"umbrella", "hooli", "soylent"}
    assert len(list(machine.state_dir.glob("*.sqlite"))) == 2


def test_a_state_shared_by_two_targets_says_so(machine: Home, tmp_path: Path):
    """`state_path` given to two configs with different targets: the second is told whose
    state it is and what to do (not "the target suddenly shows none"), and nothing is
    written; `--force` starts fresh for the new target, never deleting through it."""
    shared = tmp_path / "shared.sqlite"
    example = yaml.safe_load(machine.example.read_text())
    example["state_path"] = str(shared)
    machine.example.write_text(yaml.safe_dump(example))
    machine.run("sync", config=machine.example)
    example_out = machine.repo / "reminders.ics"
    before = example_out.read_bytes()
    assert len(keys_in(example_out)) == 3

    own = write_own_config(machine.home, state_path=shared)
    own_out = machine.home / "calendars" / "clientlove.ics"
    refused = machine.run("sync", config=own, code=3).stderr
    assert said(refused, f"belongs to target ics file {example_out};",
                f"the config now names ics file {own_out}.", "state_path", "--force"), refused
    assert not said(refused, "suddenly shows none")
    assert not own_out.exists(), "nothing written"
    assert "0 writes" in machine.run("sync", now="2026-11-23T08:30",
                                     config=machine.example).stdout, "the owner goes on"
    machine.run("status", config=own, code=3)

    moved = machine.run("sync", "--force", config=own, now="2026-11-23T09:00")
    assert said(moved.stderr, "started fresh")
    assert {k.split(".")[0] for k in keys_in(own_out)} == {"umbrella", "hooli", "soylent"}
    assert example_out.read_bytes() == before, "the old target's reminders stay"
    assert recorded_target(shared) == target_identity(load_config(own).target)
    again = machine.run("sync", config=machine.example, now="2026-11-23T09:30", code=3)
    assert said(again.stderr, f"belongs to target ics file {own_out};")


def test_a_changed_target_path_is_reported_not_a_mass_deletion(machine: Home, tmp_path: Path):
    own = write_own_config(machine.home, state_path=tmp_path / "mine.sqlite")
    machine.run("sync", config=own)
    config = yaml.safe_load(own.read_text())
    config["target"]["path"] = str(machine.home / "calendars" / "renamed.ics")
    own.write_text(yaml.safe_dump(config))
    refused = machine.run("sync", config=own, code=3, now="2026-11-24T08:00").stderr
    assert said(refused, "belongs to target ics file", "clientlove.ics;",
                "now names ics file", "renamed.ics."), refused
    assert not said(refused, "suddenly shows none")


# -- where the default state lives -----------------------------------------------------------

EXAMPLE = {"sources": [{"type": "ics", "path": "in.ics"}],
           "target": {"type": "ics", "path": "out.ics"}}


def _config(path: Path, target: str = "out.ics"):
    data = {**EXAMPLE, "target": {"type": "ics", "path": target}}
    return parse_config(data, path.parent, config_path=path)


def _legacy(folder: Path, identity: str | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    state = State(folder / LEGACY_STATE_NAME)
    if identity is not None:
        state.claim_target(identity)
    state.close()
    return folder / LEGACY_STATE_NAME


def test_the_system_config_keeps_state_sqlite_under_systemd(machine: Home, monkeypatch,
                                                            tmp_path: Path):
    """Ops expect $STATE_DIRECTORY/state.sqlite: the system config keeps it."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "var-lib"))
    config = _config(SYSTEM_CONFIG)
    assert default_state_path(config) == tmp_path / "var-lib" / "state.sqlite"
    other = _config(tmp_path / "elsewhere" / "config.yaml")
    assert default_state_path(other).parent == tmp_path / "var-lib"
    assert default_state_path(other).name.startswith("config-")


def test_an_existing_state_sqlite_stays_with_the_config_it_belongs_to(machine: Home,
                                                                      monkeypatch):
    """An install from before: the user unit's $STATE_DIRECTORY/state.sqlite is kept for the
    config whose target it records, or (when it records none) for the user's own config."""
    folder = machine.state_dir
    monkeypatch.setenv("STATE_DIRECTORY", str(folder))
    own = _config(machine.own, "mine.ics")
    example = _config(machine.example)
    legacy = _legacy(folder, None)
    assert default_state_path(own) == legacy, "an older version's file: the user's config"
    assert default_state_path(example) != legacy
    legacy.unlink()
    legacy = _legacy(folder, target_identity(example.target))
    assert default_state_path(example) == legacy, "it records the example's target"
    assert default_state_path(own) != legacy
    monkeypatch.delenv("STATE_DIRECTORY")
    assert default_state_path(example) == legacy, "the shell finds what the user unit uses"


def test_the_user_unit_and_the_shell_share_one_state(machine: Home, monkeypatch):
    config = _config(machine.own)
    from_shell = default_state_path(config)
    monkeypatch.setenv("STATE_DIRECTORY", str(machine.state_dir))  # the user unit's
    assert default_state_path(config) == from_shell
    assert from_shell.parent == machine.state_dir and from_shell.name != LEGACY_STATE_NAME


def test_an_older_state_sqlite_is_adopted_by_the_users_config(machine: Home, tmp_path: Path,
                                                              monkeypatch):
    """A state written before targets were recorded keeps working, and learns its target."""
    folder = machine.state_dir
    monkeypatch.setenv("STATE_DIRECTORY", str(folder))
    write_own_config(machine.home, state_path=folder / LEGACY_STATE_NAME)
    machine.run("sync")
    with sqlite3.connect(folder / LEGACY_STATE_NAME) as db:
        db.execute("DELETE FROM meta WHERE name=?", (TARGET_META,))
    db.close()
    write_own_config(machine.home)  # the default state from now on
    assert "0 writes" in machine.run("sync", now="2026-11-23T08:30").stdout
    assert recorded_target(folder / LEGACY_STATE_NAME) == target_identity(
        load_config(machine.own).target)
    assert [p.name for p in folder.glob("*.sqlite")] == [LEGACY_STATE_NAME]


def test_an_older_state_of_another_target_is_refused_with_a_hint(machine: Home,
                                                                 monkeypatch):
    """An older version's state.sqlite records no target; if it held the example's
    reminders, the user's config is refused and told what that file is."""
    folder = machine.state_dir
    monkeypatch.setenv("STATE_DIRECTORY", str(folder))
    example = yaml.safe_load(machine.example.read_text())
    example["state_path"] = str(folder / LEGACY_STATE_NAME)
    machine.example.write_text(yaml.safe_dump(example))
    machine.run("sync", config=machine.example)
    with sqlite3.connect(folder / LEGACY_STATE_NAME) as db:
        db.execute("DELETE FROM meta WHERE name=?", (TARGET_META,))
    db.close()
    write_own_config(machine.home)
    refused = machine.run("sync", code=3).stderr
    assert said(refused, "records no target", f"move {folder / LEGACY_STATE_NAME} away")
    assert not (machine.home / "calendars" / "clientlove.ics").exists()


def test_the_recorded_target_never_holds_a_credential(tmp_path: Path):
    caldav = parse_config({**EXAMPLE, "target": {
        "type": "caldav", "url": "https://dav.example/cal/me/love/?token=s3cret",
        "username": "me", "credential": "dav-password"}}, tmp_path)
    google = parse_config({**EXAMPLE, "target": {
        "type": "google", "calendar": "Client love", "credential": "google-me"}}, tmp_path)
    assert target_identity(caldav.target) == "caldav https://dav.example/cal/me/love/"
    bare = parse_config({**EXAMPLE, "target": {"type": "caldav",
                                               "url": "https://DAV.example/cal/me/love"}},
                        tmp_path)
    assert target_identity(bare.target) == target_identity(caldav.target)
    assert target_identity(google.target) == (
        "google calendar 'Client love' at https://www.googleapis.com")
    for config in (caldav, google):
        text = target_identity(config.target)
        assert "s3cret" not in text and "password" not in text and "google-me" not in text
