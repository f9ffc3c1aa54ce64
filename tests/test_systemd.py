"""The systemd units: static checks, ``systemd-analyze verify`` and ``security``.

What ``systemd-analyze`` (252) does here, learned the hard way:

- ``verify`` exits 0 on a misspelled directive and only warns on stderr, so the test asserts
  that stderr is empty, not only the exit code.
- ``verify`` fails (exit 1, "Command ... is not executable") when ExecStart's binary is missing,
  as ``/usr/local/bin/clientlove`` and ``~/.local/bin/clientlove`` are on a build machine. The
  unit is verified as a copy, under its own file name, whose ExecStart is ``/bin/true``. Any
  other "is not executable" line (another machine without ``/bin/kill``) is the only tolerated
  stderr.
- ``verify --user`` and ``security --user`` need no running user manager, but they need
  ``$XDG_RUNTIME_DIR``. Without it they print "Failed to lookup RuntimeDirectory path: No such
  device or address" and fail. A private temporary directory works: ``verify`` creates
  ``systemd/`` inside it.
- ``--root=DIR`` does not help: ``verify`` then looks for the unit file inside DIR ("Unit ... not
  found"). ``--man=no`` keeps ``verify`` from running man(1) for ``Documentation=man:`` links.
  Generators are off by default for verify.
- ``verify`` also loads the targets the unit names (sysinit.target, ...). On a machine without
  systemd's own unit files it complains about those, so a minimal unit is verified first and
  the test is skipped when even that is not clean.
- ``security --offline=yes`` prints nothing on stderr for these units and scores the file as
  written. It does not model user managers: it scores a user unit as if it ran as root, with
  every namespace option a user manager cannot use by default counted against it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_UNIT = ROOT / "systemd" / "clientlove.service"
USER_UNIT = ROOT / "systemd" / "clientlove-user.service"
TIMEOUT = 30

EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")
NOT_EXECUTABLE = re.compile(r"Command \S+ is not executable: No such file or directory")

# Options that need a mount/user namespace, or capabilities a user manager lacks. In a user
# unit they need PrivateUsers=yes, which needs unprivileged user namespaces: the unit would
# fail to start where those are restricted (Ubuntu 24.04's default).
NEEDS_NAMESPACES = {
    "PrivateUsers", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
    "PrivateMounts", "PrivateIPC", "ProtectKernelTunables", "ProtectKernelModules",
    "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "ProtectHostname",
    "ProtectProc", "ProcSubset", "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths",
    "CapabilityBoundingSet", "AmbientCapabilities", "DynamicUser", "User", "Group",
}


# --- parsing ------------------------------------------------------------------------------

def parse_unit(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment, in order; keys may repeat.

    configparser cannot read unit files: systemd allows repeated keys (a list, where an
    empty assignment resets it) and continues lines ending in a backslash.
    """
    entries: list[tuple[str, str, str]] = []
    section = ""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if pending:
            if line.startswith(("#", ";")):
                continue  # comment lines inside a continuation are skipped
            line = pending + " " + line
            pending = ""
        elif not line or line.startswith(("#", ";")):
            continue
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {raw!r}"
        entries.append((section, key.strip(), value.strip()))
    assert not pending, "the file ends inside a continued line"
    return entries


class Unit:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text(encoding="utf-8")
        self.entries = parse_unit(self.text)

    def all(self, key: str, section: str = "Service") -> list[str]:
        """Every value of a list setting, honouring resets by an empty assignment."""
        values: list[str] = []
        for sec, k, v in self.entries:
            if sec == section and k == key:
                values = [] if v == "" else [*values, v]
        return values

    def raw(self, key: str, section: str = "Service") -> list[str]:
        return [v for sec, k, v in self.entries if sec == section and k == key]

    def get(self, key: str, section: str = "Service") -> str | None:
        """A single-valued setting: the last assignment wins."""
        values = self.raw(key, section)
        return values[-1] if values else None

    def keys(self, section: str = "Service") -> set[str]:
        return {k for sec, k, _ in self.entries if sec == section}


def seconds(span: str) -> float:
    """A systemd time span ("5min", "30s", "1h 30min", "90") in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hr": 3600, "ms": 0.001}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span)
    assert parts and re.fullmatch(r"(\s*\d+(\.\d+)?\s*[a-z]*)+\s*", span), span
    for number, unit in parts:
        total += float(number) * units[unit]
    return total


def test_parse_unit_handles_repeats_resets_and_continuations():
    unit_text = (
        "[Service]\n# comment\nA=1\nA=2\nB=x \\\n  y\nA=\nA=3\nEmpty=\n"
        "[Install]\nWantedBy=default.target\n"
    )
    entries = parse_unit(unit_text)
    assert ("Service", "B", "x y") in entries
    assert [v for s, k, v in entries if k == "A"] == ["1", "2", "", "3"]
    assert ("Service", "Empty", "") in entries
    assert ("Install", "WantedBy", "default.target") in entries
    assert seconds("5min") == 300 and seconds("30s") == 30 and seconds("1h 30min") == 5400


# --- static checks ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def system_unit() -> Unit:
    return Unit(SYSTEM_UNIT)


@pytest.fixture(scope="module")
def user_unit() -> Unit:
    return Unit(USER_UNIT)


@pytest.mark.parametrize("path", [SYSTEM_UNIT, USER_UNIT], ids=["system", "user"])
def test_both_units_run_the_daemon_the_systemd_way(path: Path):
    unit = Unit(path)
    assert unit.get("Type") == "notify"
    assert unit.get("NotifyAccess") == "main"
    exec_start = unit.get("ExecStart")
    assert exec_start is not None and exec_start.split()[-1] == "run"
    assert exec_start.split()[0].endswith("/clientlove")
    watchdog = unit.get("WatchdogSec")
    assert watchdog and 60 <= seconds(watchdog) <= 3600, watchdog
    assert unit.get("TimeoutStopSec")
    reload_ = unit.get("ExecReload") or ""
    assert re.search(r"\bkill\b.*-(HUP|SIGHUP|s HUP)\b.*\$MAINPID", reload_), reload_
    assert unit.get("Restart") == "on-failure"
    assert "78" in " ".join(unit.all("RestartPreventExitStatus")).split()
    assert unit.get("StateDirectory") == "clientlove"
    assert unit.get("StateDirectoryMode") == "0700"
    assert unit.get("UMask") == "0077"
    assert "CLIENTLOVE_CONFIG=%E/clientlove/config.yaml" in unit.all("Environment")
    assert unit.get("User") not in {"root", "0"}
    assert unit.get("NoNewPrivileges") == "yes"
    assert unit.get("MemoryDenyWriteExecute") == "yes"
    # AF_UNIX for the notify socket, journald and D-Bus; INET for the listener and servers
    assert set(" ".join(unit.all("RestrictAddressFamilies")).split()) == {
        "AF_UNIX", "AF_INET", "AF_INET6"}
    # calendar servers can be anywhere: no IP address restrictions
    assert not unit.all("IPAddressDeny") and not unit.all("IPAddressAllow")
    assert unit.all("SystemCallFilter") == ["@system-service", "~@privileged @resources"]
    assert unit.get("SystemCallErrorNumber") == "EPERM"


def test_system_unit_settings(system_unit: Unit):
    unit = system_unit
    assert unit.get("ExecStart") == "/usr/local/bin/clientlove run"
    assert unit.get("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert unit.get("DynamicUser") == "yes"
    assert unit.get("ConfigurationDirectory") == "clientlove"
    assert unit.get("RestartSec") and seconds(unit.get("RestartSec")) >= 10
    credentials = unit.all("LoadCredential")
    assert credentials == ["feed-token:/etc/clientlove/credentials/feed-token"]
    # the other examples are there, commented out, for ops to copy
    for name in ("work-dav", "google-me"):
        assert f"#LoadCredential={name}:/etc/clientlove/credentials/{name}" in unit.text
    assert "#ReadWritePaths=" in unit.text
    assert unit.get("CapabilityBoundingSet") == ""
    assert unit.get("AmbientCapabilities") == ""
    for key, value in {
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "PrivateUsers": "yes", "ProtectProc": "invisible",
        "ProcSubset": "pid", "RestrictNamespaces": "yes", "SystemCallArchitectures": "native",
        "DevicePolicy": "closed", "KeyringMode": "private", "RemoveIPC": "yes",
    }.items():
        assert unit.get(key) == value, key
    assert unit.get("WantedBy", "Install") == "multi-user.target"


def _bytes(size: str) -> float:
    """A systemd size ("384M", "1G", "512K", a plain byte count) in bytes."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", size.strip())
    assert match, size
    return float(match.group(1)) * 1024 ** " KMGT".index(match.group(2) or " ")


@pytest.mark.parametrize("path", [SYSTEM_UNIT, USER_UNIT], ids=["system", "user"])
def test_both_units_bound_memory_tasks_and_a_stuck_cycle(path: Path):
    """Issue 17 point 4: a runaway cycle meets MemoryHigh (reclaim, slow down) before
    MemoryMax (OOM kill, restart), both above what any input may cost (300 MB); threads are
    bounded; and a stuck cycle (2 x service.cycle_timeout, 10 min by default) is restarted
    by the watchdog within minutes, not after the 30 minutes it took before."""
    from daemon.config import ServiceConfig
    from daemon.service import STUCK_FACTOR

    unit = Unit(path)
    high, most = unit.get("MemoryHigh"), unit.get("MemoryMax")
    assert high and most, "MemoryHigh= and MemoryMax= are set"
    assert 300 * 1024**2 < _bytes(high) < _bytes(most) <= 1024**3, (high, most)
    tasks = unit.get("TasksMax")
    assert tasks and tasks.isdigit() and 16 <= int(tasks) <= 256, tasks
    watchdog = seconds(unit.get("WatchdogSec") or "0")
    stuck = STUCK_FACTOR * ServiceConfig().cycle_timeout.to_timedelta().total_seconds()
    assert watchdog <= 120
    assert stuck + watchdog <= 15 * 60, "a stuck cycle is restarted well within 30 minutes"


def test_user_unit_settings(user_unit: Unit):
    unit = user_unit
    assert unit.get("ExecStart") == "%h/.local/bin/clientlove run"
    assert unit.get("WantedBy", "Install") == "default.target"
    # secrets come from the desktop keyring; a user manager has no LoadCredential files here
    assert not unit.all("LoadCredential")
    # these need namespaces (unprivileged user namespaces): the start would fail where they
    # are restricted; the unit lists them only as a commented opt-in
    assert not unit.keys() & NEEDS_NAMESPACES, unit.keys() & NEEDS_NAMESPACES
    assert "#   PrivateUsers=yes" in unit.text


# --- systemd-analyze ----------------------------------------------------------------------

def _analyze_binary() -> str:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        pytest.skip("systemd-analyze is not installed")
    return binary


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_analyze_binary(), *args], capture_output=True, text=True,
                          env=env, timeout=TIMEOUT, check=False)


@pytest.fixture(scope="module")
def analyze_env(tmp_path_factory) -> dict[str, str]:
    """The environment for systemd-analyze, with a private $XDG_RUNTIME_DIR for --user."""
    _analyze_binary()
    runtime = tmp_path_factory.mktemp("xdg-runtime")
    runtime.chmod(0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSTEMD_")}
    env.update(XDG_RUNTIME_DIR=str(runtime), LC_ALL="C.UTF-8", SYSTEMD_PAGER="",
               SYSTEMD_COLORS="0")
    return env


def _verifiable_copy(path: Path, directory: Path, name: str) -> Path:
    """The unit under ``name`` in ``directory``, its ExecStart pointing at an existing binary."""
    true = shutil.which("true") or "/bin/true"
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("ExecStart="):
            line = f"ExecStart={true} run"
        lines.append(line)
    copy = directory / name
    directory.mkdir(parents=True, exist_ok=True)
    copy.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return copy


def _verify(unit: Path, env: dict[str, str], user: bool) -> tuple[int, list[str]]:
    args = ["verify", "--man=no", *(["--user"] if user else []), str(unit)]
    result = _run(args, env)
    problems = [line for line in result.stderr.splitlines()
                if line.strip() and not NOT_EXECUTABLE.search(line)]
    return result.returncode, problems


@pytest.fixture(scope="module", params=["system", "user"])
def mode(request, analyze_env, tmp_path_factory) -> str:
    """Skip a mode where even a minimal unit does not verify cleanly (no systemd units)."""
    directory = tmp_path_factory.mktemp(f"baseline-{request.param}")
    baseline = directory / "clientlove-baseline.service"
    baseline.write_text(f"[Unit]\nDescription=baseline\n[Service]\n"
                        f"ExecStart={shutil.which('true') or '/bin/true'}\n", encoding="utf-8")
    code, problems = _verify(baseline, analyze_env, user=request.param == "user")
    if code != 0 or problems:
        pytest.skip(f"systemd-analyze verify cannot check a minimal {request.param} unit "
                    f"here: {problems}")
    return request.param


def test_verify_is_clean(mode: str, analyze_env, tmp_path):
    source, name = ((SYSTEM_UNIT, "clientlove.service") if mode == "system"
                    else (USER_UNIT, "clientlove.service"))
    copy = _verifiable_copy(source, tmp_path / mode, name)
    code, problems = _verify(copy, analyze_env, user=mode == "user")
    assert problems == [], "\n".join(problems)
    assert code == 0


def test_verify_catches_a_misspelled_directive(mode: str, analyze_env, tmp_path):
    """The check above can fail: a typo only warns (exit 0), and the warning is caught."""
    source = SYSTEM_UNIT if mode == "system" else USER_UNIT
    copy = _verifiable_copy(source, tmp_path / mode, "clientlove.service")
    copy.write_text(copy.read_text().replace("WatchdogSec=", "WatchDogSec="))
    _code, problems = _verify(copy, analyze_env, user=mode == "user")
    assert any("WatchDogSec" in line for line in problems), problems


def _exposure(unit: Path, env: dict[str, str], user: bool = False) -> float:
    args = ["security", "--offline=yes", "--no-pager", *(["--user"] if user else []), str(unit)]
    result = _run(args, env)
    match = EXPOSURE.search(result.stdout)
    assert result.returncode == 0 and match, (result.returncode, result.stdout[-500:],
                                              result.stderr)
    return float(match.group(1))


def test_system_unit_exposure_at_most_1_2(analyze_env, tmp_path):
    copy = _verifiable_copy(SYSTEM_UNIT, tmp_path, "clientlove.service")
    score = _exposure(copy, analyze_env)
    print(f"clientlove.service exposure {score}")
    assert score <= 1.2  # measured 1.1 with systemd 252, also with the memory and task limits


def test_user_unit_exposure_is_well_below_a_bare_unit(analyze_env, tmp_path):
    copy = _verifiable_copy(USER_UNIT, tmp_path / "user", "clientlove.service")
    bare = tmp_path / "bare" / "clientlove.service"
    bare.parent.mkdir()
    bare.write_text("[Service]\nType=notify\nExecStart=/bin/true run\n", encoding="utf-8")
    score = _exposure(copy, analyze_env, user=True)
    bare_score = _exposure(bare, analyze_env, user=True)
    print(f"clientlove-user.service exposure {score} (a bare unit: {bare_score})")
    # 6.2 against 9.8 with systemd 252: the seccomp and prctl settings count, the namespace
    # ones a user manager cannot use are scored as missing
    assert score <= 7.0
    assert score <= bare_score - 3.0
