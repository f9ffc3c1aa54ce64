"""Hostile inputs (issue 17): each a few kilobytes (or a hostile server), run against the real
code in a process of its own so its wall time and peak RSS can be measured.

A case registers itself with :func:`case`; its function builds the input in a scratch folder,
runs it through the real reader, provider, cycle or server, checks the outcome (a warning that
names source and UID, a typed error, a refusal) and returns a short outcome text. It raises
``AssertionError`` when the outcome is wrong. ``python -m tests.hostile NAME`` runs one case and
prints one JSON line: the test suite (tests/test_hostile.py) and the reliability report
(bench/reliability.py, the "hostile input" table) both run every case that way.

Modules holding cases are listed in ``MODULES``; each is imported to register its cases.
"""

from __future__ import annotations

import importlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Modules that register hostile cases (one per area, so engineers never share a file).
MODULES = (
    "tests.hostile_recurrence",
    "tests.hostile_servers",
    "tests.hostile_service",
    "tests.hostile_private",
)

#: Every case must finish within these on a 2-core machine (issue 17, "Done means").
WALL_BUDGET_S = 10.0
RSS_BUDGET_MB = 300.0


@dataclass(frozen=True)
class Case:
    name: str
    #: what the input is, for the table ("one event, 300 RRULE:FREQ=SECONDLY lines")
    what: str
    run: Callable[[Path], tuple[int, str]]  # scratch dir -> (input size in bytes, outcome)


CASES: dict[str, Case] = {}


def case(name: str, what: str) -> Callable[[Callable[[Path], tuple[int, str]]],
                                           Callable[[Path], tuple[int, str]]]:
    """Register a hostile case under ``name`` (unique, short, no spaces)."""

    def register(func: Callable[[Path], tuple[int, str]]) -> Callable[[Path], tuple[int, str]]:
        if name in CASES:
            raise ValueError(f"hostile case {name!r} registered twice")
        CASES[name] = Case(name, what, func)
        return func

    return register


def load_cases() -> dict[str, Case]:
    for module in MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return CASES


@dataclass(frozen=True)
class Measured:
    name: str
    what: str
    size: int
    wall: float
    peak_rss_mb: float
    outcome: str
    ok: bool


def measure(name: str, timeout: float = 120.0) -> Measured:
    """Run one case in a fresh interpreter; its wall time and peak RSS (of the child)."""
    cases = load_cases()
    what = cases[name].what if name in cases else "?"
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "tests.hostile", name], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Measured(name, what, 0, time.monotonic() - started, 0.0,
                        f"did not finish in {timeout:.0f} s", False)
    wall = time.monotonic() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return Measured(name, what, 0, wall, 0.0, " | ".join(tail) or f"exit {done.returncode}",
                        False)
    row = json.loads(lines[-1])
    return Measured(name, what, row["size"], wall, row["peak_rss_mb"], row["outcome"], row["ok"])


def _peak_rss_mb() -> float:
    """This process's own peak RSS. ``ru_maxrss`` is not: Linux carries the high-water mark
    over ``exec``, so a case started from a big pytest process would report the parent's."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _main(name: str) -> int:
    cases = load_cases()
    with tempfile.TemporaryDirectory(prefix=f"hostile-{name}-") as scratch:
        try:
            size, outcome = cases[name].run(Path(scratch))
            ok = True
        except AssertionError as exc:
            size, outcome, ok = 0, f"VIOLATION: {exc}", False
    peak = _peak_rss_mb()
    print(json.dumps({"size": size, "outcome": outcome, "ok": ok, "peak_rss_mb": peak}))
    return 0 if ok else 1


if __name__ == "__main__":
    # run as tests.hostile, the module the cases register with (not this __main__ copy)
    from tests.hostile import _main as main

    raise SystemExit(main(sys.argv[1]))
