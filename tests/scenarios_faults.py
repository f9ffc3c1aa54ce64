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
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import yaml

from daemon.config import parse_config
from daemon.cycle import run_cycle
from daemon.identity import slug
from daemon.notify import Notifier
from daemon.reconcile import day_of
from daemon.retry import Backoff
from daemon.service import Service
from daemon.state import State
from providers import build_source, build_target
from tests.harness import CalDavHarness, GoogleHarness, TargetHarness
from tests.invariants import ScenarioResult, check_state, check_target
from tests.servers import CountingProxy, Fault

TZ = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CLIENTS = 12
FAST = Backoff(attempts=3, base=0.01, cap=0.05)
SECRET = "s3cret-pa55"


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

    return Rig("caldav", proxy, target, config, add, drop, foreign)


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
        "token": "t", "refresh_token": "r", "token_uri": proxy.base_url.rstrip("/") + "/token",
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

    return Rig("google", proxy, target, config, add, drop, foreign)


def full_config(rig: Rig, root: Path) -> dict:
    return {"timezone": "Europe/London", "state_path": str(root / "state.sqlite"),
            "clients": [{"name": f"Client {i:02d}", "domains": [f"c{i:02d}.example"]}
                        for i in range(CLIENTS)],
            "feed": {"enabled": False}, **rig.config}


def _final_checks(rig: Rig, config, state: State, now: datetime,
                  foreign_before: dict[str, str]) -> list[str]:
    """One clean cycle, then every invariant."""
    sources = [build_source(s) for s in config.sources]
    target = build_target(config.target, stamp=lambda: now, tz=config.tz)
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
               seed: int = 1) -> ScenarioResult:
    """``cycles`` cycles of the daemon's own :class:`Service` (its providers, sessions and
    state kept from cycle to cycle, as in ``clientlove run``) with ``rate`` of the requests
    failing and the history changing. A cycle the service had to give up on as an internal
    error (it logs and goes on, so the daemon never exits) is a violation too."""
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
    try:
        for n in range(cycles):
            clock[0] = NOW + timedelta(hours=8 * n)
            if n % 3 == 0:
                rig.add_meeting(rng.randrange(CLIENTS), clock[0] - timedelta(hours=1))
            if n % 17 == 5:
                rig.drop_meeting(rng.randrange(CLIENTS))
            if service.cycle() is None:
                result.violations.append(f"cycle {n}: the service gave up (internal error)")
            result.cycles += 1
        rig.proxy.fault = None
        result.faults = counter[0]
        result.add(_final_checks(rig, service.config, service.state,
                                 clock[0] + timedelta(minutes=5), foreign_before))
        result.cycles += 1
    finally:
        rig.proxy.fault = None
        service.state.close()
    return result


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

    def sync(at: datetime) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "daemon", "--config", str(path), "--now", at.isoformat(),
             "sync"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)

    start = time.perf_counter()
    first = sync(now)
    first.wait(timeout=120)
    span = max(0.5, time.perf_counter() - start)
    n = -1
    while result.crashes < crashes and n < 2 * crashes:
        n += 1
        now = NOW + timedelta(days=1 + n // 4, hours=n % 4)
        if n % 2 == 0:
            rig.drop_meeting(rng.randrange(CLIENTS))
            rig.add_meeting(rng.randrange(CLIENTS), now - timedelta(hours=2))
        proc = sync(now)
        time.sleep(rng.uniform(0.2, span))
        if proc.poll() is None:
            proc.kill()
            result.crashes += 1
        proc.wait(timeout=30)
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        if "Traceback" in stderr:
            result.violations.append(f"run {n}: a traceback: {stderr[-300:]}")
        result.cycles += 1
    rig.proxy.fault = None
    config = parse_config(full_config(rig, root), root)
    state = State(root / "state.sqlite")
    os.environ["CREDENTIALS_DIRECTORY"] = str(root / "creds")
    result.add(_final_checks(rig, config, state, now + timedelta(minutes=5), foreign_before))
    result.cycles += 1
    state.close()
    return result
