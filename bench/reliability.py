"""The reliability report: every scenario of the harness, its counts and its violations.

Starts its own Radicale and local Google API server on 127.0.0.1, runs the scenarios of
``tests/scenarios_*.py`` (the same functions the test suite runs, larger with ``--soak``)
and prints one row each: cycles, faults injected, crashes, inputs tried, invariant
violations. It ends with ``violations: N`` (the goal is zero).

Then the "hostile input" table: every case of ``tests/hostile.py`` in a process of its own,
with the input's size, the wall time, the peak RSS and the outcome; a case over 10 s or
300 MB, or with a wrong outcome, is a violation. ``--hostile-only`` prints that table alone.

Run: ``python bench/reliability.py [--soak] [--hostile-only]``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.google_server import FakeGoogleCalendar  # noqa: E402
from tests.invariants import ScenarioResult  # noqa: E402
from tests.servers import start_server  # noqa: E402


def _google() -> FakeGoogleCalendar:
    api = FakeGoogleCalendar(user="me@example.com", time_zone="Europe/London")
    api.start()
    return api


def scenarios(soak: bool, tmp: Path,
              radicale, radicale_auth) -> list[tuple[str, Callable[[], ScenarioResult]]]:
    """(name, thunk) for every scenario; each thunk builds what it needs and cleans up."""
    from tests import scenarios_faults as faults
    from tests import scenarios_feed as feed

    folders = iter(range(1000))

    def fresh() -> Path:
        path = tmp / f"run-{next(folders)}"
        path.mkdir()
        return path

    def with_rig(kind: str, run: Callable) -> Callable[[], ScenarioResult]:
        def thunk() -> ScenarioResult:
            root = fresh()
            api = _google() if kind == "google" else None
            rig = faults.caldav_rig(radicale_auth, root) if api is None else faults.google_rig(
                api, root)
            try:
                return run(rig, root)
            finally:
                rig.proxy.close()
                if api is not None:
                    api.stop()

        return thunk

    cycles = 400 if soak else 100
    crashes = 100 if soak else 25
    found: list[tuple[str, Callable[[], ScenarioResult]]] = [
        ("faults caldav", with_rig("caldav", lambda r, p: faults.run_faults(r, p, cycles))),
        ("faults google", with_rig("google", lambda r, p: faults.run_faults(r, p, cycles))),
        ("crashes caldav", with_rig("caldav", lambda r, p: faults.run_crashes(r, p, crashes))),
        ("crashes google", with_rig("google", lambda r, p: faults.run_crashes(r, p, crashes))),
        ("feed abuse", lambda: feed.run_feed_abuse(rounds=5 if soak else 1)),
    ]
    found += _more(soak, fresh, radicale)
    return found


def _more(soak: bool, fresh: Callable[[], Path], radicale) -> list:
    """The scenarios of tests/scenarios_input.py and tests/scenarios_clock.py."""
    from tests import scenarios_clock as clock

    try:
        from tests import scenarios_input as bad
    except ImportError:  # the bad-input scenarios are not built yet
        print("  bad-input scenarios: not in this tree, not run", file=sys.stderr)
        bad = None

    big = 500 if soak else 100

    def guard() -> ScenarioResult:
        total = ScenarioResult("mass-change guard")
        for kind in clock.GUARD_KINDS:
            part = _with_api(lambda api, k=kind: clock.run_mass_change_guard(
                fresh(), k, dav=radicale, google=api))
            total.cycles += part.cycles
            total.inputs += 1
            total.add(part.violations)
        return total

    inputs = [] if bad is None else [
        ("bad iCalendar", lambda: bad.run_broken_icalendar(3000 if soak else 300)),
        ("hypothesis reader", lambda: _hypothesis(soak)),
        ("bad config", lambda: bad.run_broken_configs(2000 if soak else 200)),
        ("corpus", bad.run_corpus),
        (f"{big} MB source", lambda: bad.run_big_file(big, fresh())),
    ]
    return [
        *inputs,
        ("clock and zones", lambda: clock.run_clock_and_zones(
            fresh(), days_around=10 if soak else 4)),
        ("clock jumps", lambda: clock.run_clock_jumps(fresh(), rounds=40 if soak else 6,
                                                      resets=True)),
        ("two instances caldav", lambda: clock.run_two_instances(
            "caldav", radicale, fresh(), rounds=100 if soak else 20)),
        ("two instances google", lambda: _with_api(lambda api: clock.run_two_instances(
            "google", api, fresh(), rounds=100 if soak else 20))),
        ("mass-change guard", guard),
    ]


def _hypothesis(soak: bool) -> ScenarioResult:
    """The hypothesis properties of the reader (tests/test_fuzz_ical.py) in a pytest child:
    inputs are the passing examples hypothesis reports, violations the failing tests."""
    env = {**os.environ, "CLIENTLOVE_SOAK": "1" if soak else "0"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--hypothesis-show-statistics", str(ROOT / "tests" / "test_fuzz_ical.py")],
        capture_output=True, text=True, cwd=ROOT, env=env)
    result = ScenarioResult("hypothesis reader")
    result.inputs = sum(int(n) for n in re.findall(r"(\d+) passing examples", done.stdout))
    result.add(f"failed: {line[7:]}" for line in done.stdout.splitlines()
               if line.startswith("FAILED "))
    if done.returncode != 0 and not result.violations:
        result.add([f"pytest exited {done.returncode}: {done.stdout[-300:]}"])
    return result


def _with_api(run: Callable[[FakeGoogleCalendar], ScenarioResult]) -> ScenarioResult:
    api = _google()
    try:
        return run(api)
    finally:
        api.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soak", action="store_true", help="the long variants")
    parser.add_argument("--hostile-only", action="store_true",
                        help="only the hostile-input table")
    args = parser.parse_args()
    rows: list[tuple] = []
    problems: list[str] = []
    if args.hostile_only:
        _hostile(problems)
        print(f"violations: {len(problems)}")
        sys.exit(1 if problems else 0)
    saved = os.environ.get("CREDENTIALS_DIRECTORY")
    with tempfile.TemporaryDirectory(prefix="clientlove-reliability-") as tmp:
        radicale = start_server("radicale", Path(tmp) / "radicale")
        # the fault and crash rigs log in: the password is a secret the invariants look for
        radicale_auth = start_server("radicale", Path(tmp) / "radicale-auth", htpasswd=True)
        try:
            _run_all(scenarios(args.soak, Path(tmp), radicale, radicale_auth), rows, problems)
        finally:
            radicale.stop()
            radicale_auth.stop()
    if saved is None:
        os.environ.pop("CREDENTIALS_DIRECTORY", None)
    _print(rows, problems)
    print()
    _hostile(problems)
    print(f"violations: {len(problems)}")
    sys.exit(1 if problems else 0)


def _hostile(problems: list[str]) -> None:
    """The hostile-input table: one fresh process per case, measured."""
    from tests.hostile import RSS_BUDGET_MB, WALL_BUDGET_S, load_cases, measure

    header = ("hostile input", "size", "wall s", "peak RSS MB", "outcome")
    rows = []
    for name in sorted(load_cases()):
        row = measure(name)
        rows.append((f"{name}: {row.what}", _size(row.size), f"{row.wall:.1f}",
                     f"{row.peak_rss_mb:.0f}", row.outcome))
        if not row.ok:
            problems.append(f"hostile {name}: {row.outcome}")
        elif row.wall > WALL_BUDGET_S or row.peak_rss_mb > RSS_BUDGET_MB:
            problems.append(f"hostile {name}: {row.wall:.1f} s, {row.peak_rss_mb:.0f} MB "
                            f"(budget {WALL_BUDGET_S:.0f} s, {RSS_BUDGET_MB:.0f} MB)")
        print(f"  done: hostile {name} ({row.wall:.1f} s)", file=sys.stderr, flush=True)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    print(" | ".join(h.ljust(w) for h, w in zip(header[:4], widths, strict=True)) + " | outcome")
    print("-+-".join("-" * w for w in widths) + "-+--------")
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True))
              + f" | {row[4]}")


def _size(size: int) -> str:
    if size >= 1 << 20:
        return f"{size / (1 << 20):.1f} MB"
    if size >= 1 << 10:
        return f"{size / (1 << 10):.1f} KB"
    return f"{size} B"


def _run_all(found: list, rows: list, problems: list[str]) -> None:
    for name, thunk in found:
        start = time.perf_counter()
        try:
            result = thunk()
        except Exception as exc:  # a scenario that cannot run is a violation too
            result = ScenarioResult(name, violations=[f"scenario crashed: {exc!r}"])
        result.name = name
        rows.append((*result.row(), time.perf_counter() - start))
        problems += [f"{name}: {v}" for v in result.violations]
        print(f"  done: {name} ({rows[-1][-1]:.0f} s)", file=sys.stderr, flush=True)


def _print(rows: list, problems: list[str]) -> None:
    header = ("scenario", "cycles", "faults", "crashes", "inputs", "violations", "seconds")
    widths = [max(len(str(r[i])) if i != 6 else 7 for r in [header, *rows]) for i in range(7)]
    widths[0] = max(len(str(r[0])) for r in [header, *rows])
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        cells = [str(c) if i != 6 else f"{c:.0f}" for i, c in enumerate(row)]
        print(" | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    total = [sum(r[i] for r in rows) for i in range(1, 6)]
    print(" | ".join(str(c).ljust(w) for c, w in zip(["total", *total, ""], widths,
                                                       strict=True)))
    for problem in problems[:50]:
        print(f"violation: {problem}")


if __name__ == "__main__":
    main()
