"""Faults and crashes against real CalDAV (Radicale) and Google (local API) targets.

CI runs the sizes below; ``CLIENTLOVE_SOAK=1`` runs the long variants.
"""

from __future__ import annotations

import os
from datetime import timedelta
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from daemon.reconcile import day_of
from daemon.state import State
from tests.invariants import check_state, check_target
from tests.scenarios_faults import (
    NOW,
    TZ,
    WAIT,
    StaleWrite,
    caldav_rig,
    full_config,
    google_rig,
    run_crashes,
    run_faults,
    start_sync,
)

SOAK = os.environ.get("CLIENTLOVE_SOAK") == "1"


@pytest.fixture(autouse=True)
def _restore_credentials_env(monkeypatch):
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", os.environ.get("CREDENTIALS_DIRECTORY", ""))


def _rig(kind, request, root):
    if kind == "caldav":
        # logins required, so the password is a real secret the no-secret invariant looks for
        return caldav_rig(request.getfixturevalue("radicale_auth"), root)
    return google_rig(request.getfixturevalue("google_api"), root)


@pytest.mark.parametrize("kind", ["caldav", "google"])
def test_faults_at_20_percent_then_one_clean_cycle_converges(kind, request, tmp_path):
    rig = _rig(kind, request, tmp_path)
    try:
        result = run_faults(rig, tmp_path, cycles=400 if SOAK else 100, rate=0.2,
                            min_faults=51)
    finally:
        rig.proxy.close()
    assert result.faults > 50
    assert result.violations == [], "\n".join(result.violations)


@pytest.mark.parametrize("kind", ["caldav", "google"])
def test_kill_9_at_random_points(kind, request, tmp_path):
    rig = _rig(kind, request, tmp_path)
    try:
        # 25 kills each: the "at least 50" over CalDAV and Google in every CI run
        result = run_crashes(rig, tmp_path, crashes=100 if SOAK else 25)
    finally:
        rig.proxy.close()
    assert result.crashes >= (100 if SOAK else 25)
    assert result.violations == [], "\n".join(result.violations)


def _pending(rig) -> dict[str, object]:
    """Key -> start of every pending reminder of ours on the target (as the user sees it)."""
    today = NOW.astimezone(TZ).date()
    return {r.key: r.start for r in rig.target.target().list_ours()
            if not r.cancelled and day_of(r.start, TZ) >= today}


@pytest.mark.parametrize("kind", ["caldav", "google"])
def test_a_killed_runs_write_that_lands_after_the_next_listing_is_adopted(
        kind, request, tmp_path):
    """Issue 12 point 7, the window behind the crash test's rare failure, opened every time:
    ``sync`` is killed while its first create is on the wire; that create lands after the
    next run listed the target, just before the next run creates the same key (refused as
    existing). That run must still end knowing the reminder, or the user's deletion of it
    is not seen as a skip and a second reminder is written for the same day."""
    rig = _rig(kind, request, tmp_path)
    prefix = urlsplit(rig.target.url).path if kind == "caldav" else "/batch"
    stale = StaleWrite(rig.proxy, prefix)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(full_config(rig, tmp_path)))
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}
    log = tmp_path / "run.log"

    def sync(minutes: int) -> str:
        proc = start_sync(config, NOW + timedelta(minutes=minutes), env, log)
        assert proc.wait(timeout=WAIT) == 0, log.read_text()
        return log.read_text()

    try:
        killed = start_sync(config, NOW, env, log)
        assert stale.held.wait(WAIT), "the first run never wrote"
        killed.kill()
        killed.wait(timeout=WAIT)
        output = sync(10)
        assert stale.landed.is_set(), output
        assert "already exists" in output  # the window did open: the run met the stale write
        pending = _pending(rig)
        state = State(tmp_path / "state.sqlite")
        try:
            stored = {s.key for s in state.reminders()}
        finally:
            state.close()
        assert check_state(stored, set(pending), set(pending)) == []

        # the user deletes the reminder the stale write made, before its day: a skip
        key = (unquote(stale.path.rsplit("/", 1)[1]).removesuffix(".ics") if kind == "caldav"
               else sorted(pending)[0])  # a Google batch carried every create
        day = day_of(pending[key], TZ)
        rig.target.user_delete(key)
        sync(60)
    finally:
        stale.close()
        rig.proxy.close()
    client = key.rsplit(".", 1)[0]
    again = {k: day_of(start, TZ) for k, start in _pending(rig).items()
             if k.rsplit(".", 1)[0] == client}
    assert all(d > day for d in again.values()), (key, day, again)
    assert check_target(rig.target.all_events(), NOW.astimezone(TZ).date(), TZ) == []
