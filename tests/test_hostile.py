"""Every hostile case (tests/hostile.py) in a process of its own: the outcome is right and the
process stays within the memory budget. Wall time is a figure of the reliability report, not an
assertion here (the suite must pass on a loaded machine)."""

from __future__ import annotations

import pytest

from tests.hostile import RSS_BUDGET_MB, load_cases, measure

NAMES = sorted(load_cases())


@pytest.mark.parametrize("name", NAMES or ["(none)"])
def test_hostile_input(name: str):
    if name == "(none)":
        pytest.skip("no hostile cases registered yet")
    row = measure(name)
    assert row.ok, f"{name}: {row.outcome}"
    assert row.peak_rss_mb <= RSS_BUDGET_MB, f"{name}: peak RSS {row.peak_rss_mb:.0f} MB"
