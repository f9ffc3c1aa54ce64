"""The CLI a person meets (issue 11, point 9): what it prints, where it looks, what it says
when something is missing, all through the command line.

``status`` fits 80 columns without cutting a word; ``--config``/``--now``/``-v`` work after
the command too; a missing config names every place searched; ``check-config`` checks what
it can without writing; an unwritable target is one line, never a traceback, and loses
nothing; ``feed url`` and ``feed token`` tell a person what to do; a refused ``sync`` lists
nothing as done.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import keyring
import keyring.errors
import pytest
import yaml
from click.testing import CliRunner
from keyring.backend import KeyringBackend

from daemon.cli import _status_rows, cli, status_lines
from daemon.counter import CounterState
from daemon.credentials import KEYRING_SERVICE
from daemon.feed import check_token
from daemon.model import Reminder
from daemon.planning import ClientPlan
from daemon.reminder_ical import key_of
from providers.base import ProviderError
from providers.ics import IcsTarget, write_atomically
from tests.keyrings import MemoryKeyring

ROOT = Path(__file__).resolve().parents[1]
LONDON = ZoneInfo("Europe/London")
NOW = "2026-11-25T10:00"  # the shipped example: Acme by announcement, Globex overdue, Initech new
ME = "consultant@myfirm.example"
LINUX_PROC = Path("/proc/self/mountinfo").exists()


class NoKeyring(KeyringBackend):
    """A headless machine: every keyring call fails as keyring's fail backend does."""

    priority = 0  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.NoKeyringError("No recommended backend was available. Install x.")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.NoKeyringError("No recommended backend was available. Install x.")

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.NoKeyringError("No recommended backend was available. Install x.")


@pytest.fixture
def no_keyring():
    previous = keyring.get_keyring()
    keyring.set_keyring(NoKeyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str | None]:
    """The environment of a person's shell, minus anything of the machine running the tests."""
    return {"CLIENTLOVE_CONFIG": None, "XDG_CONFIG_HOME": None, "CREDENTIALS_DIRECTORY": None,
            "STATE_DIRECTORY": None, "HOME": str(tmp_path / "home"),
            "XDG_STATE_HOME": str(tmp_path / "state")}


def invoke(args: list[str], env: dict[str, str | None], code: int | None = 0, stdin=None):
    result = CliRunner().invoke(cli, args, env=env, input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.output, result.exception)
    assert "Traceback" not in result.output
    if code is not None:
        assert result.exit_code == code, result.output
    return result


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the shipped example (config.example.yaml and examples/) in a tmp folder."""
    shutil.copy(ROOT / "config.example.yaml", tmp_path / "config.yaml")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path / "config.yaml"


def write_config(folder: Path, **changes) -> Path:
    config = {
        "timezone": "Europe/London",
        "me": [ME],
        "state_path": "state.sqlite",
        "sources": [{"type": "ics", "path": "history.ics"}],
        "target": {"type": "ics", "path": "reminders.ics"},
        "clients": [
            {"name": "Acme Corp", "domains": ["acme.example"]},
            {"name": "Globex", "emails": ["hank@globex.example"]},
            {"name": "Initech", "domains": ["initech.example"]},
        ],
    }
    config.update(changes)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    if not (folder / "history.ics").exists():
        (folder / "history.ics").write_text(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\n"
            "UID:a1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/London:20261110T100000"
            "\r\nSUMMARY:Acme review\r\nATTENDEE:mailto:jane@acme.example\r\nEND:VEVENT\r\n"
            "END:VCALENDAR\r\n")
    return path


def words(text: str) -> set[str]:
    return set(text.split())


def assert_fits(lines: list[str], width: int = 80) -> None:
    for line in lines:
        assert len(line) <= width, f"{len(line)} > {width}: {line!r}"


# == status at 80 columns =====================================================================


def test_status_of_the_example_fits_80_columns_and_cuts_no_word(example: Path, env):
    result = invoke(["status", "--config", str(example), "--now", NOW], env)
    lines = result.stdout.splitlines()
    assert_fits(lines)
    # today: 25 lines for 3 clients; now a title, a header and two lines per client
    assert len(lines) <= 2 + 2 * 3, result.stdout
    rows = json.loads(invoke(["status", "--json", "--config", str(example), "--now", NOW],
                             env).stdout)
    out = words(result.stdout)
    for row in rows:
        for text in [row["client"], *row["notes"]]:
            assert words(text) <= out, f"a word of {text!r} is cut: {result.stdout}"
    # the notes sit on their own indented line under their client
    for row in rows:
        (index,) = [i for i, line in enumerate(lines) if line.startswith(row["client"] + " ")]
        assert lines[index + 1] == "  " + "; ".join(row["notes"])
    header = lines[1].split()
    assert header[:2] == ["client", "last"] and "reminder" in header


def test_status_in_a_pipe_is_80_columns_even_with_COLUMNS_set(example: Path, tmp_path: Path):
    """A pipe (not a terminal) gets the 80-column layout, whatever $COLUMNS says."""
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT),
           "XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path / "home")}
    env.pop("CLIENTLOVE_CONFIG", None)
    done = subprocess.run([sys.executable, "-m", "daemon", "status", "--config", str(example),
                           "--now", NOW], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert_fits(lines)
    assert lines[0] == "clientlove status on Wed 2026-11-25"
    assert "\x1b[" not in done.stdout  # no colour codes in a pipe


def test_long_client_names_wrap_at_words(tmp_path: Path, env):
    long_name = "The Northern Federation of Independent Sailing and Chess Clubs Limited"
    config = write_config(tmp_path, clients=[
        {"name": long_name, "domains": ["nfiscc.example"]},
        {"name": "Acme Corp", "domains": ["acme.example"]},
        {"name": "Supercalifragilisticexpialidociousandevenlongerthanthatcompanyname Inc",
         "domains": ["super.example"]},
    ])
    result = invoke(["status", "--config", str(config), "--now", NOW], env)
    lines = result.stdout.splitlines()
    assert_fits(lines)
    assert words(long_name) <= words(result.stdout)
    assert "Supercalifragilisticexpialidociousandevenlongerthanthatcompanyname" in \
        words(result.stdout)
    # every data row still has its dates, in the same columns
    starts = {line.index("2026-11-25") for line in lines if "2026-11-25" in line
              and not line.startswith("clientlove")}
    assert len(starts) == 1, result.stdout


def plan(client: str, **fields) -> ClientPlan:
    values = {"today": date(2026, 11, 25), "counter": CounterState(None, 7, None, 0),
              "due": date(2026, 11, 25), "booked": None, "reminder_day": date(2026, 11, 25)}
    values.update(fields)
    return ClientPlan(client=client, **values)


def test_notes_wrap_at_words_and_a_wide_terminal_uses_its_width():
    notes = ("announcement on 2026-12-01", "overdue since 2026-11-17",
             "moved from Sat 2026-11-28 to a work day", "a-very-long-hyphenated-note-word-"
             "that-must-never-be-cut-in-the-middle-even-if-it-is-longer-than-the-line-itself")
    plans = [plan("Acme Corp", notes=notes)]
    text_notes = "; ".join(notes)
    for width in (80, 120):
        lines = status_lines(plans, date(2026, 11, 25), LONDON, width)
        for line in lines:
            assert len(line) <= width or " " not in line.strip(), line
        assert words(text_notes) <= words("\n".join(lines))
        assert all(line.startswith("  ") for line in lines[3:])
    narrow = status_lines(plans, date(2026, 11, 25), LONDON, 80)
    wide = status_lines(plans, date(2026, 11, 25), LONDON, 120)
    assert len(wide) < len(narrow)
    assert max(len(line) for line in wide if " " in line.strip()) > 80


def test_the_reminder_shows_its_time_and_a_booked_meeting_shows_instead():
    at = datetime(2026, 11, 25, 15, 15, tzinfo=LONDON)
    plans = [
        plan("Acme Corp", reminder_at=at, moved_by_user=True),
        plan("Globex", reminder_day=None, booked=date(2026, 11, 27)),
        plan("Initech", booked=date(2026, 12, 9)),
    ]
    lines = status_lines(plans, date(2026, 11, 25), LONDON)
    assert_fits(lines)
    acme, acme_notes = lines[2], lines[3]
    assert acme.endswith("2026-11-25 15:15")
    assert acme_notes == "  moved by you"
    assert lines[4].endswith("booked 2026-11-27")
    assert lines[5].endswith("2026-11-25") and lines[6] == "  meeting booked 2026-12-09"
    rows = _status_rows(plans, LONDON)
    assert rows[0]["reminder_at"] == "2026-11-25T15:15:00+00:00"
    assert rows[0]["moved_by_user"] is True
    assert rows[1]["reminder_at"] is None and rows[1]["moved_by_user"] is False


def test_status_json_keeps_its_keys_and_adds_reminder_at_and_moved_by_user(example, env):
    rows = json.loads(invoke(["status", "--json", "--config", str(example), "--now", NOW],
                             env).stdout)
    assert len(rows) == 3
    for row in rows:
        assert set(row) == {"client", "last_contact", "interval_days", "due", "booked",
                            "reminder", "reminder_at", "overdue", "moved_by_user", "notes"}
        assert isinstance(row["moved_by_user"], bool)
        if row["reminder_at"] is not None:
            moment = datetime.fromisoformat(row["reminder_at"])
            assert moment.tzinfo is not None
            assert moment.date().isoformat() == row["reminder"]


# == options after the command =================================================================


def test_config_now_and_verbose_work_after_the_command(example: Path, env, memory_keyring):
    config = str(example)
    out = invoke(["status", "--config", config, "--now", NOW], env).stdout
    assert out.startswith("clientlove status on Wed 2026-11-25")
    invoke(["sync", "--now", "2026-11-25T10:00", "--config", config, "--dry-run"], env)
    invoke(["check-config", "--config", config], env)
    invoke(["discover", "--config", config, "--now", NOW], env)
    memory_keyring.set_password(KEYRING_SERVICE, "feed-token", "t" * 32)
    url = invoke(["feed", "url", "--config", config], env).stdout
    assert url.startswith("http://127.0.0.1:8787/tttttttttttttttt")
    invoke(["feed", "--config", config, "url"], env)  # on the group too
    invoke(["auth", "caldav", "work-dav", "--password-stdin", "--config", config], env,
           stdin="pa55word\n")
    assert memory_keyring.passwords[(KEYRING_SERVICE, "work-dav")] == "pa55word"
    root = logging.getLogger()
    level = root.level
    try:
        invoke(["check-config", "--config", config, "-v"], env)
        assert root.level == logging.INFO
        invoke(["-v", "check-config", "--config", config, "-vv"], env)
        assert root.level == logging.DEBUG
    finally:
        root.setLevel(level)


def test_given_in_both_places_the_command_wins(example: Path, tmp_path: Path, env):
    missing = str(tmp_path / "nope.yaml")
    out = invoke(["--config", missing, "--now", "2026-01-02T10:00", "status",
                  "--config", str(example), "--now", NOW], env).stdout
    assert out.startswith("clientlove status on Wed 2026-11-25")
    # and the group-level options keep working alone
    out = invoke(["--config", str(example), "--now", NOW, "status"], env).stdout
    assert out.startswith("clientlove status on Wed 2026-11-25")
    failed = invoke(["--config", str(example), "status", "--config", missing], env, code=78)
    assert "nope.yaml: no such file" in failed.stderr


# == no config found ============================================================================


@pytest.mark.skipif(Path("/etc/clientlove/config.yaml").exists(),
                    reason="this machine has a system config")
def test_no_config_names_every_place_searched(tmp_path: Path, env):
    result = invoke(["status"], env, code=78)
    err = result.stderr
    home = tmp_path / "home"
    assert err.startswith("config error: no config file found; looked at:")
    for expected in ("--config: not given", "$CLIENTLOVE_CONFIG: not set",
                     f"{home}/.config/clientlove/config.yaml ($XDG_CONFIG_HOME not set): "
                     "no such file",
                     "/etc/clientlove/config.yaml: no such file", "config.example.yaml"):
        assert expected in err, err
    assert all(line.startswith(("config error", "  ")) for line in err.splitlines())
    # with $XDG_CONFIG_HOME set, that is the place named
    xdg = tmp_path / "xdg"
    err = invoke(["check-config"], {**env, "XDG_CONFIG_HOME": str(xdg)}, code=78).stderr
    assert f"{xdg}/clientlove/config.yaml ($XDG_CONFIG_HOME/clientlove/config.yaml): " \
           "no such file" in err
    # the service says the same
    assert "$CLIENTLOVE_CONFIG: not set" in invoke(["run"], env, code=78).stderr


def test_an_explicit_missing_config_keeps_its_message(tmp_path: Path, env):
    missing = tmp_path / "nope.yaml"
    err = invoke(["status", "--config", str(missing)], env, code=78).stderr
    assert f"{missing}: no such file (start from config.example.yaml)" in err
    err = invoke(["status"], {**env, "CLIENTLOVE_CONFIG": str(missing)}, code=78).stderr
    assert f"{missing}: no such file (start from config.example.yaml)" in err


# == check-config checks what it can without writing ===========================================


def problems(result) -> list[str]:
    return [line[2:] for line in result.stderr.splitlines() if line.startswith("  ")]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_check_config_finds_what_would_fail_and_writes_nothing(
    tmp_path: Path, env, memory_keyring: MemoryKeyring
):
    (tmp_path / "login.html").write_text("<!doctype html><html><body>Sign in</body></html>")
    (tmp_path / "blocker").write_text("a file where a folder should be")
    memory_keyring.set_password(KEYRING_SERVICE, "feed-token", "short")
    config = write_config(
        tmp_path,
        sources=[{"type": "ics", "path": "missing/history.ics", "name": "old"},
                 {"type": "ics", "url": "https://cal.example/me.ics", "username": "me",
                  "credential": "work-dav"},
                 {"type": "ics", "path": "login.html"},
                 {"type": "caldav", "url": "https://dav.example/cal/", "username": "me",
                  "credential": "work-dav"},
                 {"type": "ics", "path": "history.ics"}],
        target={"type": "ics", "path": "blocker/reminders.ics"},
    )
    before = snapshot(tmp_path)
    result = invoke(["check-config", "--config", str(config)], env, code=78)
    assert result.stderr.startswith(f"config error in {config}:")
    found = problems(result)
    assert found == [
        f"sources[0].path: no such file: {tmp_path}/missing/history.ics (the folder "
        f"{tmp_path}/missing does not exist)",
        "sources[1].credential: 'work-dav' not found in $CREDENTIALS_DIRECTORY (not set) or "
        "the keyring",
        f"sources[2].path: {tmp_path}/login.html is not an iCalendar file (no BEGIN:VCALENDAR "
        "at its start)",
        "sources[3].credential: 'work-dav' not found in $CREDENTIALS_DIRECTORY (not set) or "
        "the keyring",
        f"target.path: folder {tmp_path}/blocker cannot exist: {tmp_path}/blocker is a file",
        "feed.token_credential: the token in 'feed-token' is not usable (feed token must be 16 "
        "to 256 characters of A-Z a-z 0-9 _ ~ . -); make a new one with "
        "`clientlove feed token --force`",
    ], result.stderr
    assert "short" not in result.output
    assert "CREDENTIALS_DIRECTORY=<the folder holding them>" in result.stdout
    assert snapshot(tmp_path) == before, "check-config wrote something"
    assert not (tmp_path / "state.sqlite").exists()


def test_check_config_credentials_from_systemd_and_the_keyring(
    tmp_path: Path, env, memory_keyring: MemoryKeyring
):
    secrets = tmp_path / "credentials"
    secrets.mkdir()
    (secrets / "work-dav").write_text("dav-Pa55word-from-systemd")
    (secrets / "feed-token").write_text("f" * 40)
    config = write_config(tmp_path, sources=[
        {"type": "ics", "path": "history.ics"},
        {"type": "caldav", "url": "https://dav.example/cal/", "username": "me",
         "credential": "work-dav"}],
        target={"type": "google", "credential": "google-me"})
    memory_keyring.set_password(KEYRING_SERVICE, "google-me", '{"refresh_token": "x"}')
    result = invoke(["check-config", "--config", str(config)],
                    {**env, "CREDENTIALS_DIRECTORY": str(secrets)})
    assert result.stdout.startswith(f"{config}: OK (2 sources, 3 clients, target google)")
    assert "Pa55word" not in result.output and "f" * 40 not in result.output
    assert "note:" not in result.output


def test_check_config_on_an_unwritable_folder(tmp_path: Path, env, memory_keyring, monkeypatch):
    folder = tmp_path / "readonly"
    folder.mkdir()
    config = write_config(tmp_path, target={"type": "ics", "path": "readonly/reminders.ics"},
                          feed={"enabled": False})
    real_access = os.access
    if os.geteuid() == 0:  # root may write anywhere: stand in for a folder it may not
        monkeypatch.setattr("daemon.preflight.os.access", lambda path, mode: (
            not (Path(path) == folder and mode & os.W_OK)) and real_access(path, mode))
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        result = invoke(["check-config", "--config", str(config)], env, code=78)
    finally:
        folder.chmod(stat.S_IRWXU)
    assert problems(result) == [f"target.path: folder {folder} is not writable "
                                "(permission denied)"]
    assert "note:" not in result.output  # no feed, so no word about a feed token


@pytest.mark.skipif(not LINUX_PROC, reason="needs Linux /proc")
def test_check_config_on_a_proc_target(tmp_path: Path, env, memory_keyring):
    config = write_config(tmp_path, target={"type": "ics",
                                            "path": "/proc/clientlove-test/reminders.ics"})
    result = invoke(["check-config", "--config", str(config)], env, code=78)
    assert problems(result) == ["target.path: folder /proc/clientlove-test does not exist and "
                                "cannot be made (/proc is not writable: a proc pseudo file "
                                "system)"]


def test_check_config_a_missing_target_folder_is_a_hint(tmp_path: Path, env, memory_keyring):
    config = write_config(tmp_path, target={"type": "ics", "path": "new/reminders.ics"})
    result = invoke(["check-config", "--config", str(config)], env)
    assert f"note: target.path: folder {tmp_path}/new does not exist yet; sync will make it" \
        in result.stdout
    assert not (tmp_path / "new").exists()


def test_a_feed_token_not_made_yet_is_a_hint_for_a_laptop(tmp_path: Path, env, memory_keyring):
    config = write_config(tmp_path)
    result = invoke(["check-config", "--config", str(config)], env)
    assert result.stdout.startswith(f"{config}: OK")
    (note,) = [line for line in result.stdout.splitlines()
               if line.startswith("note: feed.token_credential:")]
    assert "`clientlove feed token`" in note and "sync and status need none" in note
    # under the service's credentials the feed would not start: that is a problem
    secrets = tmp_path / "credentials"
    secrets.mkdir()
    result = invoke(["check-config", "--config", str(config)],
                    {**env, "CREDENTIALS_DIRECTORY": str(secrets)}, code=78)
    assert problems(result)[0].startswith("feed.token_credential: no feed token yet")
    # without a keyring the advice is a file for LoadCredential=
    previous = keyring.get_keyring()
    keyring.set_keyring(NoKeyring())
    try:
        result = invoke(["check-config", "--config", str(config)], env)
    finally:
        keyring.set_keyring(previous)
    assert "`clientlove feed token --output FILE`" in result.stdout
    assert "(No recommended backend was available)" in result.stdout


# == an unwritable target ========================================================================


def unwritable_targets(tmp_path: Path) -> list[str]:
    (tmp_path / "blocker").write_text("a file")
    paths = [str(tmp_path / "blocker" / "reminders.ics"), str(tmp_path)]
    if LINUX_PROC:
        paths += ["/proc/clientlove-reminders.ics", "/proc/clientlove-test/reminders.ics"]
    return paths


def test_an_unwritable_target_is_one_line_and_loses_nothing(tmp_path: Path, env):
    for path in unwritable_targets(tmp_path):
        config = write_config(tmp_path, target={"type": "ics", "path": path})
        result = invoke(["sync", "--config", str(config), "--now", NOW], env, code=1)
        errors = result.stderr.splitlines()
        assert len(errors) == 1 and errors[0].startswith("error: target ics-target: "), errors
        assert path in errors[0]
        assert "create:" not in result.stdout
        assert result.stdout == "nothing written\n" or ", 0 writes," in result.stdout
    # the next run with a writable path writes every reminder: nothing was recorded as done
    config = write_config(tmp_path, target={"type": "ics", "path": "reminders.ics"})
    result = invoke(["sync", "--config", str(config), "--now", NOW], env)
    assert "3 writes" in result.stdout
    cal = icalendar.Calendar.from_ical((tmp_path / "reminders.ics").read_bytes())
    assert len([e for e in cal.walk("VEVENT") if key_of(e)]) == 3


def test_a_failed_flush_keeps_the_file_and_its_writes(tmp_path: Path):
    """write_atomically and IcsTarget.flush raise ProviderError naming the path, leave no
    temporary file, and the target still holds its writes for the next flush."""
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(ProviderError, match=r"cannot write .*blocker/sub/r\.ics: .*blocker is "
                                            r"a file, not a folder"):
        write_atomically(tmp_path / "blocker" / "sub" / "r.ics", b"data")
    with pytest.raises(ProviderError, match="is a folder"):
        write_atomically(tmp_path, b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]
    target = IcsTarget(tmp_path / "blocker" / "r.ics", stamp=lambda: datetime.now(LONDON))
    target.path = tmp_path / "missing.ics"  # loads empty ...
    target.list_ours()
    target.path = tmp_path / "blocker" / "r.ics"  # ... then cannot write
    target.create(Reminder(
        key="acme-corp.1", client="Acme Corp", summary="Client love: Acme Corp",
        start=datetime(2026, 11, 30, 9, 30, tzinfo=LONDON), duration=timedelta(minutes=15),
        description="prep", alarm_before=timedelta(days=1), alarm_text="tomorrow"))
    with pytest.raises(ProviderError) as caught:
        target.flush()
    assert "\n" not in str(caught.value) and str(tmp_path / "blocker") in str(caught.value)
    target.path = tmp_path / "r.ics"
    target.flush()
    assert b"BEGIN:VEVENT" in target.path.read_bytes()


# == feed url and feed token =====================================================================


def test_feed_url_without_a_token_says_what_to_do(tmp_path: Path, env, memory_keyring):
    config = write_config(tmp_path)
    result = invoke(["feed", "url", "--config", str(config)], env, code=1)
    assert result.stderr.splitlines() == [
        "error: no feed token yet: 'feed-token' not found in $CREDENTIALS_DIRECTORY (not set) "
        "or the keyring; make one with `clientlove feed token`"]
    memory_keyring.set_password(KEYRING_SERVICE, "feed-token", "sh/rt")
    result = invoke(["feed", "url", "--config", str(config)], env, code=1)
    (line,) = result.stderr.splitlines()
    assert "is not usable" in line and "`clientlove feed token --force`" in line
    assert "sh/rt" not in result.output


def test_feed_token_makes_and_stores_a_strong_token(tmp_path: Path, env, memory_keyring):
    config = write_config(tmp_path, feed={"token_credential": "my-feed"})
    result = invoke(["feed", "token", "--config", str(config)], env)
    token = memory_keyring.passwords[(KEYRING_SERVICE, "my-feed")]
    assert check_token(token) == token and len(token) >= 32
    assert token not in result.output and "'my-feed'" in result.stdout
    url = invoke(["feed", "url", "--config", str(config)], env).stdout.splitlines()
    assert url == [f"http://127.0.0.1:8787/{token}/clientlove.ics",
                   f"webcal://127.0.0.1:8787/{token}/clientlove.ics"]
    # an existing token stays unless --force
    result = invoke(["feed", "token", "--config", str(config)], env, code=1)
    assert "--force" in result.stderr and len(result.stderr.splitlines()) == 1
    assert memory_keyring.passwords[(KEYRING_SERVICE, "my-feed")] == token
    invoke(["feed", "token", "--force", "--config", str(config)], env)
    assert memory_keyring.passwords[(KEYRING_SERVICE, "my-feed")] != token


def test_feed_token_to_a_file_for_load_credential(tmp_path: Path, env, no_keyring):
    config = write_config(tmp_path)
    secrets = tmp_path / "credentials"
    secrets.mkdir()
    output = secrets / "feed-token"
    result = invoke(["feed", "token", "--output", str(output), "--config", str(config)], env)
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    token = output.read_text().strip()
    assert check_token(token) == token and token not in result.output
    assert f"LoadCredential=feed-token:{output}" in result.stdout
    service_env = {**env, "CREDENTIALS_DIRECTORY": str(secrets)}
    assert token in invoke(["feed", "url", "--config", str(config)], service_env).stdout
    result = invoke(["feed", "token", "--output", str(output), "--config", str(config)], env,
                    code=1)
    assert "--force" in result.stderr and output.read_text().strip() == token
    invoke(["feed", "token", "--output", str(output), "--force", "--config", str(config)], env)
    assert output.read_text().strip() != token


def test_feed_token_print_and_a_headless_keyring(tmp_path: Path, env, no_keyring):
    config = write_config(tmp_path)
    printed = invoke(["feed", "token", "--print", "--config", str(config)], env).stdout
    (token,) = printed.splitlines()
    assert check_token(token) == token and len(token) >= 32
    result = invoke(["feed", "token", "--config", str(config)], env, code=1)
    (line,) = result.stderr.splitlines()
    assert "cannot use the system keyring" in line and "--output FILE" in line


# == a refused sync lists nothing as done ========================================================


def test_a_refused_sync_prints_the_refusal_only(tmp_path: Path, env):
    config = write_config(tmp_path)
    invoke(["sync", "--config", str(config), "--now", NOW], env)
    (tmp_path / "reminders.ics").unlink()  # the calendar suddenly empty: the guard objects
    for extra in ([], ["--dry-run"]):
        result = invoke(["sync", *extra, "--config", str(config), "--now", NOW], env, code=3)
        assert not re.search(r"^(would )?(create|move|delete)", result.stdout, re.M), \
            result.stdout
        assert result.stdout.startswith("nothing")
        assert result.stderr.startswith("refused: target ics-target suddenly shows none")
        assert not (tmp_path / "reminders.ics").exists()
