"""Faults and crashes against real CalDAV and Google targets (loopback only).

Faults: a proxy in front of Radicale or the local Google API server drops connections,
stalls, answers 500/503/429 and truncates bodies on a share of the requests while the
history changes between cycles; no cycle may raise, and once the faults stop one clean cycle
must bring everything back to the invariants.

Crashes: ``clientlove sync`` is killed with SIGKILL at random moments of its cycle, again and
again; a clean run afterwards must find no duplicate and nothing lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import yaml

from daemon.config import parse_config
from daemon.cycle import run_cycle
from daemon.identity import slug
from daemon.logsetup import setup_logging
from daemon.notify import Notifier
from daemon.reconcile import day_of
from daemon.retry import Backoff
from daemon.service import Service
from daemon.state import State
from providers import build_source, build_target
from tests.harness import CalDavHarness, GoogleHarness, TargetHarness
from tests.invariants import ScenarioResult, check_no_secret, check_state, check_target
from tests.servers import CountingProxy, Fault

TZ = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CLIENTS = 12
FAST = Backoff(attempts=3, base=0.01, cap=0.05)
SECRET = "s3cret-pa55"
#: Google credentials distinctive enough to be found if anything ever prints them.
ACCESS_TOKEN = "ya29.fault-access-token-5f1c"
REFRESH_TOKEN = "1//fault-refresh-token-9e2b"


def _meeting(uid: str, start: datetime, client: int) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", datetime(2026, 1, 1, tzinfo=UTC))
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(hours=1))
    event.add("summary", f"Review {client}")
    event.add("attendee", f"mailto:boss@c{client:02d}.example")
    return event


def _foreign(uid: str) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", datetime(2026, 1, 1, tzinfo=UTC))
    event.add("dtstart", datetime(2026, 11, 25, 12, 0, tzinfo=TZ))
    event.add("summary", "Lunch (mine)")
    event.add("attendee", "mailto:boss@c01.example")
    return event


def random_faults(rng: random.Random, rate: float, counter: list[int]) -> Callable:
    """A proxy fault function failing ``rate`` of the requests in every way a network can."""
    kinds = [Fault(drop=True), Fault(status=500), Fault(status=503, retry_after="0"),
             Fault(status=429, retry_after="0"), Fault(truncate=True), Fault(delay=2.5)]

    def fault(method: str, path: str) -> Fault | None:
        if rng.random() >= rate:
            return None
        counter[0] += 1
        return rng.choice(kinds)

    return fault


@dataclass
class Rig:
    """A source and a target calendar behind one faulty proxy, and the config to use them."""

    kind: str
    proxy: CountingProxy
    target: TargetHarness
    config: dict
    add_meeting: Callable[[int, datetime], None]
    drop_meeting: Callable[[int], None]
    foreign_uids: list[str]
    secrets: tuple[str, ...] = ()  # what must appear in no output, log, state or event


def caldav_rig(server, root: Path) -> Rig:
    proxy = CountingProxy(server.base_url)
    source = CalDavHarness(server)
    target = CalDavHarness(server)
    for i in range(CLIENTS):
        source.put_foreign(_meeting(f"m{i}", NOW - timedelta(days=3 + i), i))
    foreign = [f"foreign-{i}" for i in range(3)]
    for uid in foreign:
        target.put_foreign(_foreign(uid))
    (root / "creds").mkdir(exist_ok=True)
    (root / "creds" / "dav").write_text(server.password)
    config = {
        "sources": [{"type": "caldav", "name": "work", "url": proxy.url_for(source.url),
                     "username": server.username, "credential": "dav", "timeout": 2}],
        "target": {"type": "caldav", "url": proxy.url_for(target.url),
                   "username": server.username, "credential": "dav", "timeout": 2},
    }

    def add(i: int, start: datetime) -> None:
        source.put_foreign(_meeting(f"extra-{i}-{start:%Y%m%d%H%M}", start, i))

    def drop(i: int) -> None:
        source.http.delete(source.url + hashlib.sha1(f"m{i}".encode()).hexdigest() + ".ics")

    return Rig("caldav", proxy, target, config, add, drop, foreign, (server.password,))


def google_rig(api, root: Path) -> Rig:
    proxy = CountingProxy(api.base_url)
    target = GoogleHarness(api)
    for i in range(CLIENTS):
        start = NOW - timedelta(days=3 + i)
        api.add_event("primary", {"id": f"meet{i:04d}", "summary": f"Review {i}",
                                  "start": {"dateTime": start.isoformat()},
                                  "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
                                  "attendees": [{"email": f"boss@c{i:02d}.example"}]})
    foreign = []
    for i in range(3):
        target.put_foreign(_foreign(f"foreign-{i}"))
    foreign = list(target.foreign_fingerprints())
    (root / "creds").mkdir(exist_ok=True)
    from providers.google import SCOPES

    (root / "creds" / "g").write_text(json.dumps({
        "token": ACCESS_TOKEN, "refresh_token": REFRESH_TOKEN,
        "token_uri": proxy.base_url.rstrip("/") + "/token",
        "client_id": "c", "client_secret": SECRET, "scopes": SCOPES}))
    base = proxy.base_url.rstrip("/")
    config = {
        "sources": [{"type": "google", "name": "google", "calendar": "primary",
                     "credential": "g", "api_base": base, "timeout": 2}],
        "target": {"type": "google", "calendar": target.calendar_id, "credential": "g",
                   "api_base": base, "timeout": 2},
    }
    counter = [0]

    def add(i: int, start: datetime) -> None:
        counter[0] += 1
        api.add_event("primary", {"summary": f"Call {i}", "start": {"dateTime": start.isoformat()},
                                  "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
                                  "attendees": [{"email": f"boss@c{i:02d}.example"}]})

    def drop(i: int) -> None:
        with contextlib.suppress(KeyError):
            api.user_delete("primary", f"meet{i:04d}")

    return Rig("google", proxy, target, config, add, drop, foreign,
               (SECRET, ACCESS_TOKEN, REFRESH_TOKEN))


def full_config(rig: Rig, root: Path) -> dict:
    return {"timezone": "Europe/London", "state_path": str(root / "state.sqlite"),
            "clients": [{"name": f"Client {i:02d}", "domains": [f"c{i:02d}.example"]}
                        for i in range(CLIENTS)],
            "feed": {"enabled": False}, **rig.config}


#: The clean cycle's timeout: the providers' default. The 2 s of the rig's config turn a
#: stalled answer into a fault; a clean cycle on a loaded machine must not meet one.
CLEAN_TIMEOUT = 30.0


def _patient(cfg):
    return cfg.model_copy(update={"timeout": CLEAN_TIMEOUT}) if hasattr(cfg, "timeout") else cfg


def _final_checks(rig: Rig, config, state: State, now: datetime,
                  foreign_before: dict[str, str]) -> list[str]:
    """One clean cycle, then every invariant."""
    sources = [build_source(_patient(s)) for s in config.sources]
    target = build_target(_patient(config.target), stamp=lambda: now, tz=config.tz)
    report = run_cycle(config, state, sources, target, now, backoff=FAST)
    problems = [f"clean cycle: {e}" for e in report.errors]
    today = now.astimezone(TZ).date()
    problems += check_target(rig.target.all_events(), today, TZ, foreign_before,
                             rig.target.foreign_fingerprints())
    listed = rig.target.target().list_ours()
    pending = {r.key for r in listed if day_of(r.start, TZ) >= today}
    problems += check_state({s.key for s in state.reminders()}, {r.key for r in listed},
                            pending)
    due = {p.client for p in report.plans if p.reminder_day is not None}
    have = {r.key.rsplit(".", 1)[0] for r in listed if day_of(r.start, TZ) >= today}
    missing = {c for c in due if slug(c) not in have}
    problems += [f"{c}: due but no pending reminder" for c in sorted(missing)]
    return problems


def run_faults(rig: Rig, root: Path, cycles: int, rate: float = 0.2,
               seed: int = 1, min_faults: int = 0) -> ScenarioResult:
    """``cycles`` cycles of the daemon's own :class:`Service` (its providers, sessions and
    state kept from cycle to cycle, as in ``clientlove run``) with ``rate`` of the requests
    failing and the history changing, and more cycles (at most as many again) until
    ``min_faults`` faults were injected: how many requests a cycle makes is the engine's
    business (and a timeout under load adds a retry), the number of faults the test's. A
    cycle the service had to give up on as an internal error (it logs and goes on, so the
    daemon never exits) is a violation too."""
    result = ScenarioResult(f"faults ({rig.kind})")
    rng = random.Random(seed)
    counter = [0]
    os.environ["CREDENTIALS_DIRECTORY"] = str(root / "creds")
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(full_config(rig, root)))
    clock = [NOW]
    service = Service(path, clock=lambda: clock[0], notifier=Notifier(None), backoff=FAST)
    foreign_before = rig.target.foreign_fingerprints()
    rig.proxy.fault = random_faults(rng, rate, counter)
    with capture_logs() as logs:
        _fault_cycles(rig, service, cycles, rng, clock, counter, result, foreign_before,
                      min_faults=min_faults)
    result.add(no_secret_anywhere(rig, {"the log": logs.getvalue()}, root / "state.sqlite"))
    return result


def _fault_cycles(rig: Rig, service: Service, cycles: int, rng: random.Random,
                  clock: list[datetime], counter: list[int], result: ScenarioResult,
                  foreign_before: dict[str, str], *, min_faults: int = 0) -> None:
    try:
        n = 0
        while n < cycles or (counter[0] < min_faults and n < 2 * cycles):
            clock[0] = NOW + timedelta(hours=8 * n)
            if n % 3 == 0:
                rig.add_meeting(rng.randrange(CLIENTS), clock[0] - timedelta(hours=1))
            if n % 17 == 5:
                rig.drop_meeting(rng.randrange(CLIENTS))
            if service.cycle() is None:
                result.violations.append(f"cycle {n}: the service gave up (internal error)")
            result.cycles += 1
            n += 1
        rig.proxy.fault = None
        result.faults = counter[0]
        result.add(_final_checks(rig, service.config, service.state,
                                 clock[0] + timedelta(minutes=5), foreign_before))
        result.cycles += 1
    finally:
        rig.proxy.fault = None
        service.state.close()


@contextlib.contextmanager
def capture_logs() -> Iterator[io.StringIO]:
    """Everything logged meanwhile, as ``clientlove -vv run`` would print it (the daemon's
    own logging set-up, debug level, tracebacks included); the test process's logging is
    put back afterwards."""
    buffer = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loggers = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    setup_logging(2, stream=buffer)
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, old in loggers.items():
            logging.getLogger(name).setLevel(old)


LIBRARY_LOGGERS = ("urllib3", "requests", "charset_normalizer", "niquests", "apscheduler",
                   "waitress", "caldav", "googleapiclient", "google", "google_auth_oauthlib")


def no_secret_anywhere(rig: Rig, outputs: dict[str, str], state_path: Path) -> list[str]:
    """The invariant: no secret of the rig in the outputs, the state file or the target."""
    everything = dict(outputs)
    for path in (state_path, *state_path.parent.glob(state_path.name + "-*")):
        if path.is_file():
            everything[path.name] = path.read_bytes().decode("latin-1")
    everything["the target's events"] = "\n".join(
        event.to_ical().decode("utf-8", "replace") for event in rig.target.all_events())
    return check_no_secret(everything, rig.secrets)


#: Only a guard against a hang when a test has already failed: every wait is for an event.
WAIT = 120.0


def start_sync(config: Path, at: datetime, env: dict[str, str], log: Path) -> subprocess.Popen:
    """``clientlove -vv sync`` as its own process, its output into ``log`` (a pipe could
    fill up)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "daemon", "-vv", "--config", str(config), "--now",
             at.isoformat(), "sync"], stdout=out, stderr=subprocess.STDOUT, env=env)


class StaleWrite:
    """The first write to the target held in the proxy after it left its process, and let
    through only when the next run sends the same request.

    This is the window a SIGKILL opens: a request already on the wire lands after its sender
    died, here after the next run listed the target and just before that run's own write of
    the same key. The order is fixed by events, so the window opens every time.
    """

    def __init__(self, proxy: CountingProxy, prefix: str) -> None:
        self.prefix = prefix
        self.path: str | None = None
        self.held = threading.Event()
        self.landed = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._holder: int | None = None
        proxy.fault = self.fault
        proxy.landed = self._on_landed

    def fault(self, method: str, path: str) -> None:
        if method not in ("PUT", "POST") or not path.startswith(self.prefix):
            return None
        with self._lock:
            first = self.path is None
            if first:
                self.path, self._holder = path, threading.get_ident()
        if first:
            self.held.set()
            self._release.wait(WAIT)
        elif path == self.path and not self.landed.is_set():
            self._release.set()
            self.landed.wait(WAIT)
        return None

    def _on_landed(self, method: str, path: str, status: int) -> None:
        if threading.get_ident() == self._holder:
            self.landed.set()

    def close(self) -> None:
        self._release.set()


def run_crashes(rig: Rig, root: Path, crashes: int, seed: int = 2) -> ScenarioResult:
    """``clientlove sync`` killed with SIGKILL at random moments until ``crashes`` kills have
    landed (a run that ends before its kill counts as a cycle, not a crash; at most twice as
    many runs as kills)."""
    result = ScenarioResult(f"crashes ({rig.kind})")
    rng = random.Random(seed)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(full_config(rig, root)))
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(root / "creds")}
    foreign_before = rig.target.foreign_fingerprints()
    # slow writes, so a kill lands inside the cycle's writing
    rig.proxy.fault = lambda method, p: Fault(delay=0.05) if method in ("PUT", "POST",
                                                                         "DELETE") else None
    now = NOW

    log = root / "run.log"

    def sync(at: datetime) -> subprocess.Popen:
        return start_sync(path, at, env, log)

    outputs: dict[str, str] = {}
    start = time.perf_counter()
    first = sync(now)
    first.wait(timeout=120)
    outputs["the first run's output"] = log.read_text(errors="replace")
    # a kill lands at a random moment of a run as long as the last one that ran to its end
    span = max(0.5, time.perf_counter() - start)
    n = -1
    while result.crashes < crashes and n < 2 * crashes:
        n += 1
        now = NOW + timedelta(days=1 + n // 4, hours=n % 4)
        if n % 2 == 0:
            rig.drop_meeting(rng.randrange(CLIENTS))
            rig.add_meeting(rng.randrange(CLIENTS), now - timedelta(hours=2))
        began = time.perf_counter()
        proc = sync(now)
        time.sleep(rng.uniform(0.2, span))
        if proc.poll() is None:
            proc.kill()
            result.crashes += 1
        else:
            span = max(0.5, time.perf_counter() - began)
        proc.wait(timeout=30)
        output = log.read_text(errors="replace")
        outputs[f"run {n}'s output"] = output
        if "Traceback" in output:
            result.violations.append(f"run {n}: a traceback: {output[-300:]}")
        result.cycles += 1
    rig.proxy.fault = None
    config = parse_config(full_config(rig, root), root)
    state = State(root / "state.sqlite")
    os.environ["CREDENTIALS_DIRECTORY"] = str(root / "creds")
    result.add(_final_checks(rig, config, state, now + timedelta(minutes=5), foreign_before))
    result.cycles += 1
    state.close()
    result.add(no_secret_anywhere(rig, outputs, root / "state.sqlite"))
    return result
