"""The cold-cycle benchmark: a first ``status`` on a large history against a bare parse.

In one run: generate a history (100,000 events, 500 clients by default) with
``bench/generate.py``, then measure, each in a fresh subprocess so the times and the peak
memory are the step's own:

1. floor: ``icalendar.Calendar.from_ical`` of the whole file, nothing else;
2. cold: ``clientlove --config DIR/config.yaml --now ... status --json`` without a state
   file (the CLI runs in-process in the child, so the RSS is the CLI's own);
3. warm: the same command again, nothing changed (the second cycle);
4. full-read: ``status --full-read --json`` (every event parsed) with its own state file,
   whose rows must equal the cold rows.

Times are measured in the child from just before the import of the code under test
(``import icalendar`` / ``from daemon.cli import main``) to the end of the work; the
"process s" column adds the interpreter's start, as the parent saw it. The last line is
``cold/parse ratio: X.XX`` (cold seconds / floor seconds); the goal is 0.50 or less.

Run: ``python bench/cold_cycle.py [--events N] [--clients M] [--repeat K] [--dir DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOW = "2026-11-23T08:00"


# -- the child side ----------------------------------------------------------------------------


def _rss_mb() -> float:
    """Peak RSS of this process in MB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _hwm_mb() -> float | None:
    """This process's own peak RSS from /proc (Linux), a cross-check of ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _child_floor(path: str) -> dict[str, Any]:
    """Parse the file with icalendar alone."""
    began = time.perf_counter()
    import icalendar

    with open(path, "rb") as handle:
        data = handle.read()
    calendar = icalendar.Calendar.from_ical(data)
    seconds = time.perf_counter() - began
    events = sum(1 for c in calendar.subcomponents if c.name == "VEVENT")
    return {"seconds": seconds, "rss_mb": _rss_mb(), "hwm_mb": _hwm_mb(), "events": events,
            "exit": 0}


def _child_cli(out_path: str, profile_path: str, argv: list[str]) -> dict[str, Any]:
    """Run the CLI in this process with ``argv``; its stdout goes to ``out_path``."""
    import contextlib

    profiler = None
    if profile_path:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    began = time.perf_counter()
    from daemon.cli import main

    sys.argv = ["clientlove", *argv]
    code = 0
    with open(out_path, "w", encoding="utf-8") as out, contextlib.redirect_stdout(out):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    seconds = time.perf_counter() - began
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile_path)
    return {"seconds": seconds, "rss_mb": _rss_mb(), "hwm_mb": _hwm_mb(), "exit": code}


def _child(argv: list[str]) -> int:
    floor = argv[0] == "floor"
    result = _child_floor(argv[1]) if floor else _child_cli(argv[1], argv[2], argv[3:])
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# -- the parent side ---------------------------------------------------------------------------


@dataclass
class Run:
    """One measured subprocess."""

    seconds: float
    process_seconds: float
    rss_mb: float
    exit: int
    stderr: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _spawn(args: list[str]) -> Run:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    began = time.perf_counter()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    process_seconds = time.perf_counter() - began
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"child {args[:2]} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    return Run(result["seconds"], process_seconds, result["rss_mb"], result["exit"],
               done.stderr, result)


def _best(runs: list[Run]) -> Run:
    return min(runs, key=lambda run: run.seconds)


def _drop_state(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _cli(config: Path, out: Path, *extra: str, now: str, profile: Path | None = None) -> Run:
    return _spawn(["cli", str(out), str(profile or ""), "--config", str(config), "--now", now,
                   "status", *extra, "--json"])


def _cached_occurrences(state: Path) -> int | None:
    try:
        with sqlite3.connect(state) as db:
            return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    except sqlite3.Error:
        return None


def _compare(cold: list[dict], full: list[dict]) -> list[str]:
    """Human-readable differences between two status outputs (empty when equal)."""
    problems = []
    a = {row["client"]: row for row in cold}
    b = {row["client"]: row for row in full}
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            problems.append(f"  {name}:\n    fast: {a.get(name)}\n    full: {b.get(name)}")
    return problems


def _profile_report(path: Path, top: int) -> str:
    """The profile's own time per module and the top functions, as text."""
    import pstats

    stats = pstats.Stats(str(path))
    by_module: dict[str, float] = {}
    total = 0.0
    for (filename, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        module = f"builtin {func}" if filename == "~" else _module_name(filename)
        by_module[module] = by_module.get(module, 0.0) + tt
        total += tt
    lines = [f"profile of the cold run ({total:.2f} s of own time):", "  own time per module:"]
    for module, seconds in sorted(by_module.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"    {seconds:7.2f} s {100 * seconds / total:5.1f}%  {module}")
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]  # type: ignore[attr-defined]
    lines.append("  top functions by own time:")
    for (filename, line, func), (_cc, nc, tt, ct, _callers) in rows:
        lines.append(f"    {tt:7.2f} s own {ct:7.2f} s cum {nc:>9} calls  "
                     f"{_module_name(filename)}:{line} {func}")
    ours = [(k, v) for k, v in stats.stats.items()  # type: ignore[attr-defined]
            if "/daemon/" in k[0] or "/providers/" in k[0]]
    lines.append("  project functions by cumulative time:")
    for (filename, line, func), (_cc, nc, _tt, ct, _callers) in sorted(
            ours, key=lambda kv: -kv[1][3])[:top]:
        lines.append(f"    {ct:7.2f} s cum {nc:>9} calls  {_module_name(filename)}:{line} {func}")
    return "\n".join(lines)


def _module_name(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return filename
    path = Path(filename)
    parts = path.with_suffix("").parts
    for anchor in ("site-packages", "daemon", "providers"):
        if anchor in parts:
            index = parts.index(anchor)
            tail = parts[index + 1:] if anchor == "site-packages" else parts[index:]
            return ".".join(tail)
    if "lib" in parts:
        return "stdlib." + ".".join(parts[parts.index("lib") + 2:])
    return str(path)


def main(argv: list[str] | None = None) -> int:
    """Generate, measure, print the table and the ratio."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return _child(argv[1:])
    parser = argparse.ArgumentParser(description="clientlove cold-cycle benchmark")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--now", default=NOW, help="--now for the CLI (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=1, help="best of K for each step")
    parser.add_argument("--dir", type=Path, help="work here instead of a temporary folder")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse DIR/history.ics and config.yaml when present")
    parser.add_argument("--no-full-read", action="store_true",
                        help="skip the (slow) status --full-read comparison")
    parser.add_argument("--profile", type=int, nargs="?", const=25, default=0, metavar="TOP",
                        help="profile one extra cold run with cProfile and print the top TOP")
    args = parser.parse_args(argv)

    temporary = args.dir is None
    work = Path(tempfile.mkdtemp(prefix="clientlove-bench-")) if temporary else args.dir
    work.mkdir(parents=True, exist_ok=True)
    try:
        history, config = work / "history.ics", work / "config.yaml"
        if not (args.reuse and history.exists() and config.exists()):
            # In a subprocess: a child's ru_maxrss starts at its parent's RSS at fork time
            # (Linux carries the high-water mark across exec), so the parent must stay small.
            began = time.perf_counter()
            subprocess.run(
                [sys.executable, str(ROOT / "bench" / "generate.py"), "--events",
                 str(args.events), "--clients", str(args.clients), "--seed", str(args.seed),
                 "--out", str(work), "--now", _day(args.now).isoformat()],
                check=True, capture_output=True)
            print(f"generated {args.events} events, {args.clients} clients "
                  f"({history.stat().st_size / 1e6:.1f} MB) in "
                  f"{time.perf_counter() - began:.1f} s in {work}", flush=True)
        state = work / "state.sqlite"
        repeat = max(1, args.repeat)

        floor = _best([_spawn(["floor", str(history)]) for _ in range(repeat)])
        events = floor.extra.get("events", args.events)
        print(f"floor parse: {floor.seconds:.2f} s", flush=True)

        cold_runs = []
        for _ in range(repeat):
            _drop_state(state)
            cold_runs.append(_cli(config, work / "cold.json", now=args.now))
        cold = _best(cold_runs)
        cold_rows = json.loads((work / "cold.json").read_text(encoding="utf-8"))
        occurrences = _cached_occurrences(state)
        print(f"cold status: {cold.seconds:.2f} s", flush=True)

        warm = _best([_cli(config, work / "warm.json", now=args.now) for _ in range(repeat)])
        warm_rows = json.loads((work / "warm.json").read_text(encoding="utf-8"))

        full = None
        full_problems: list[str] = []
        if not args.no_full_read:
            full_config = work / "config-full.yaml"
            text = config.read_text(encoding="utf-8")
            full_config.write_text(
                text.replace("state_path: state.sqlite", "state_path: state-full.sqlite"),
                encoding="utf-8")
            _drop_state(work / "state-full.sqlite")
            full = _cli(full_config, work / "full.json", "--full-read", now=args.now)
            full_rows = json.loads((work / "full.json").read_text(encoding="utf-8"))
            full_problems = _compare(cold_rows, full_rows)

        profile_text = ""
        if args.profile:
            _drop_state(state)
            _cli(config, work / "profiled.json", now=args.now, profile=work / "cold.prof")
            profile_text = _profile_report(work / "cold.prof", args.profile)

        clients = len(cold_rows)
        table = [("floor: icalendar parse", floor), ("cold: status (no state)", cold),
                 ("warm: status again", warm)]
        if full is not None:
            table.append(("full-read: status --full-read", full))
        print()
        print(f"{'step':32} {'seconds':>8} {'process s':>10} {'peak MB':>8} {'events':>8} "
              f"{'clients':>8} {'exit':>5}")
        for name, run in table:
            shown_clients = "-" if run is floor else str(clients)
            print(f"{name:32} {run.seconds:8.2f} {run.process_seconds:10.2f} {run.rss_mb:8.1f} "
                  f"{events:>8} {shown_clients:>8} {run.exit:>5}")
        for name, run in table:
            hwm = run.extra.get("hwm_mb")
            if hwm and abs(hwm - run.rss_mb) > 0.1 * run.rss_mb:
                print(f"note: {name}: ru_maxrss {run.rss_mb:.1f} MB but VmHWM {hwm:.1f} MB")
        print()
        print(f"history: {history.stat().st_size / 1e6:.1f} MB; best of {repeat}; "
              f"occurrences cached by the cold cycle: {occurrences}; "
              f"clients ever met: {sum(1 for r in cold_rows if r['last_contact'])}")
        warnings = sum(1 for line in cold.stderr.splitlines() if "WARNING" in line)
        print(f"cold warnings: {warnings}; warm rows equal cold rows: {warm_rows == cold_rows}")
        if full is not None:
            if full_problems:
                print(f"full-read status DIFFERS from cold in {len(full_problems)} clients:")
                print("\n".join(full_problems[:20]))
            else:
                print(f"full-read status equals cold status ({full.seconds:.2f} s)")
        if profile_text:
            print()
            print(profile_text)
        print(f"warm cycle seconds: {warm.seconds:.2f}")
        print(f"cold/parse ratio: {cold.seconds / floor.seconds:.2f}")
        return 1 if full_problems else 0
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)


def _day(now: str):
    from datetime import datetime

    return datetime.fromisoformat(now).date()


if __name__ == "__main__":
    raise SystemExit(main())
