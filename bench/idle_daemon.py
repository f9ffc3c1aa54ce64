"""The idle daemon: memory after 20 cycles with nothing changed, CPU per idle cycle, and feed
requests per second with conditional GETs (loopback only).

A child process builds the real :class:`daemon.service.Service` on a generated history
(``bench/generate.py``), starts its feed server, runs one cold cycle and then 20 idle ones
(the scheduler's job, called directly so the run takes seconds, not 20 intervals), and
reports its CPU time per idle cycle and its resident memory. While the child serves, this
process sends conditional GETs (``If-None-Match``) from one client for a few seconds.

Run: ``python bench/idle_daemon.py [--events 20000] [--clients 200]``; it ends with
``idle rss MB: X``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKEN = "bench-feed-token-7c1e"


def child(config: str, cycles: int) -> None:
    """Runs in the child: the service, its cycles, then serve until stdin closes."""
    from daemon.service import Service

    service = Service(Path(config))
    service._start_feed()
    start = time.process_time()
    service.cycle()
    cold_cpu = time.process_time() - start
    samples = []
    for _ in range(cycles):
        start = time.process_time()
        report = service.cycle()
        samples.append(time.process_time() - start)
        assert report is not None and report.writes == 0, "an idle cycle must not write"
    with open("/proc/self/statm") as handle:
        rss_pages = int(handle.read().split()[1])
    rss = rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"cold_cpu": cold_cpu, "idle_cpu": sorted(samples)[len(samples) // 2],
                      "idle_cpu_mean": sum(samples) / len(samples), "rss_mb": rss,
                      "peak_mb": peak, "port": service._feed_server.port}), flush=True)
    sys.stdin.read()  # serve the feed until the parent is done
    service._feed_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0, help="feed load duration")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.cycles)
        return
    import requests  # the load generator's, here in the parent: the child measured holds none

    from bench.generate import generate

    with tempfile.TemporaryDirectory(prefix="clientlove-idle-") as tmp:
        folder = Path(tmp)
        generate(args.events, args.clients, 1, folder)
        config = folder / "config.yaml"
        text = config.read_text()
        text += ("\nservice: {interval: 15min}\nfeed: {listen: '127.0.0.1:0', "
                 "token_credential: feed-token}\n")
        config.write_text(text)
        (folder / "creds").mkdir()
        (folder / "creds" / "feed-token").write_text(TOKEN)
        env = {**os.environ, "CREDENTIALS_DIRECTORY": str(folder / "creds"),
               "TZ": "Europe/London"}
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(config), "--cycles", str(args.cycles)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"the child failed (exit {proc.wait()})")
        figures = json.loads(line)
        url = f"http://127.0.0.1:{figures['port']}/{TOKEN}/clientlove.ics"
        session = requests.Session()
        first = session.get(url, timeout=10)
        assert first.status_code == 200, first.status_code
        etag = first.headers["ETag"]
        count, deadline = 0, time.perf_counter() + args.seconds
        start = time.perf_counter()
        while time.perf_counter() < deadline:
            reply = session.get(url, headers={"If-None-Match": etag}, timeout=10)
            assert reply.status_code == 304
            count += 1
        rate = count / (time.perf_counter() - start)
        proc.stdin.close()
        proc.wait(timeout=30)
    print(f"history: {args.events} events, {args.clients} clients; {args.cycles} idle cycles")
    print(f"cold cycle CPU: {figures['cold_cpu']:.2f} s")
    print(f"idle cycle CPU: median {figures['idle_cpu']:.3f} s, "
          f"mean {figures['idle_cpu_mean']:.3f} s")
    print(f"peak RSS: {figures['peak_mb']:.1f} MB")
    print(f"feed: {rate:.0f} conditional GETs per second (304, one client, keep-alive, "
          f"{len(first.content)} byte feed)")
    print(f"idle rss MB: {figures['rss_mb']:.1f}")


if __name__ == "__main__":
    main()
