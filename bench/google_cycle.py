"""Google cycle benchmark against the local Calendar API server of ``tests/google_server.py``.

(a) A cycle writing 500 reminders: the HTTP requests to the target calendar (goal at or
    below 11: ten batches of 50 plus the listing), all requests, and wall time.
(b) A cycle with nothing changed: requests per calendar (goal: one) and writes (goal: zero).

Run: ``python bench/google_cycle.py [--clients 500]``. It ends with the lines
``google 500 writes: requests=N`` (target calendar) and ``no-change: requests=N writes=N``
(the most requests any one calendar got, and the writes).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from daemon.config import parse_config  # noqa: E402
from daemon.cycle import run_cycle  # noqa: E402
from daemon.state import State  # noqa: E402
from providers.google import SCOPES, GoogleApi, GoogleSource, GoogleTarget  # noqa: E402
from tests.google_server import FakeGoogleCalendar  # noqa: E402

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ME = "me@example.com"


def per_calendar(requests: list[tuple[str, str]]) -> Counter:
    """HTTP requests by the calendar in their path (a batch counts for its own path)."""
    counts: Counter = Counter()
    for _method, path in requests:
        part = path.split("/calendars/", 1)
        counts[part[1].split("/", 1)[0] if len(part) == 2 else path.split("?")[0]] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    args = parser.parse_args()
    api = FakeGoogleCalendar(user=ME, time_zone="Europe/London", clock=lambda: NOW)
    api.start()
    try:
        target_id = api.add_calendar("Client love")
        for i in range(args.clients):
            day = NOW - timedelta(days=7 + i % 60)
            api.add_event("primary", {
                "summary": f"Review {i}",
                "start": {"dateTime": day.isoformat()},
                "end": {"dateTime": (day + timedelta(hours=1)).isoformat()},
                "attendees": [{"email": f"boss@c{i:04d}.example", "responseStatus": "accepted"}],
            })
        info = json.dumps({"token": "t", "refresh_token": "r", "token_uri": api.base_url + "/token",
                           "client_id": "c", "client_secret": "s", "scopes": SCOPES})
        with tempfile.TemporaryDirectory(prefix="clientlove-bench-") as tmp:
            config = parse_config({
                "timezone": "Europe/London",
                "sources": [{"type": "google", "calendar": "primary", "credential": "g",
                             "api_base": api.base_url}],
                "target": {"type": "google", "calendar": target_id, "credential": "g",
                           "api_base": api.base_url},
                "clients": [{"name": f"Client {i:04d}", "domains": [f"c{i:04d}.example"]}
                            for i in range(args.clients)],
            }, Path(tmp))
            state = State(Path(tmp) / "state.sqlite")

            def providers():
                def client(name: str) -> GoogleApi:
                    return GoogleApi(name, credentials_json=lambda: info, api_base=api.base_url)

                return ([GoogleSource("google-primary", "primary", client("source"))],
                        GoogleTarget(target_id, client("target"), tz=config.tz))

            api.reset_counts()
            sources, target = providers()
            start = time.perf_counter()
            report = run_cycle(config, state, sources, target, NOW)
            cold = time.perf_counter() - start
            assert report.ok, report.errors
            cold_requests = list(api.requests)
            cold_calls = len(api.calls)
            by_calendar = per_calendar(cold_requests)
            batches = sum(1 for _m, p in cold_requests if p.startswith("/batch"))
            target_requests = by_calendar[quote(target_id)] + by_calendar[target_id] + batches

            api.reset_counts()
            sources, target = providers()
            start = time.perf_counter()
            again = run_cycle(config, state, sources, target, NOW + timedelta(minutes=15))
            warm = time.perf_counter() - start
            assert again.ok, again.errors
            idle = per_calendar(api.requests)
            idle_writes = sum(1 for m, _p in api.calls if m in ("POST", "PUT", "PATCH",
                                                                  "DELETE"))
            state.close()
        print(f"clients: {args.clients}")
        print(f"cold cycle: {cold:.2f} s, {report.writes} reminders written, "
              f"{len(cold_requests)} HTTP requests in all ({cold_calls} API calls), "
              f"{batches} batches")
        print(f"  to the target calendar: {target_requests} (listing + batches); to the source: "
              f"{by_calendar['primary'] + by_calendar[quote(ME)]}")
        print(f"no-change cycle: {warm:.3f} s, requests per calendar: {dict(idle)}")
        print(f"google {report.writes} writes: requests={target_requests}")
        print(f"no-change: requests={max(idle.values(), default=0)} writes={idle_writes}")
    finally:
        api.stop()


if __name__ == "__main__":
    main()
