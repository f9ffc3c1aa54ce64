"""Faults and crashes against real CalDAV (Radicale) and Google (local API) targets.

CI runs the sizes below; ``CLIENTLOVE_SOAK=1`` runs the long variants.
"""

from __future__ import annotations

import os

import pytest

from tests.scenarios_faults import caldav_rig, google_rig, run_crashes, run_faults

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
        result = run_faults(rig, tmp_path, cycles=400 if SOAK else 100, rate=0.2)
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
