"""Hostile cases against the service (issue 17, points 4, 9 and 10).

Each runs the real :class:`daemon.service.Service` in this process: its cycle worker, its
feed server on loopback, its sd_notify messages to a socket bound here. The hostile parts are
loopback servers and clients started here: a calendar server that drips its answer one byte
at a time and never finishes (until the case lets it), a browser page that reaches the
listener under its own host name (DNS rebinding), and 101 connections that each send one
header line now and then and never finish their request.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

from daemon.notify import Notifier
from daemon.retry import Backoff
from daemon.service import Service
from tests.hostile import case

TOKEN = "hostile-service-t0ken-5b8e1f"
FAST = Backoff(attempts=2, base=0.01, cap=0.05)
CLIENTS = [{"name": "Acme Corp", "domains": ["acme.example"]},
           {"name": "Globex", "domains": ["globex.example"]}]
CALENDAR = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//me//hostile//EN\r\n"
    b"BEGIN:VEVENT\r\nUID:m-acme\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261116T100000Z\r\n"
    b"DURATION:PT1H\r\nSUMMARY:Acme review\r\nATTENDEE:mailto:jane@acme.example\r\nEND:VEVENT\r\n"
    b"END:VCALENDAR\r\n")
#: The same calendar with 8 KB of notes (folded lines): dripped at 5 bytes a second it would
#: take 27 minutes, so "never" for any test; let go, it arrives at once.
LONG_CALENDAR = CALENDAR.replace(
    b"SUMMARY:Acme review\r\n",
    b"SUMMARY:Acme review\r\nDESCRIPTION:" + b"\r\n ".join([b"notes " * 12] * 110) + b"\r\n")


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait for a state to be reached (polling it; the timeout only ends a broken run)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


class DripServer:
    """An ICS server on loopback. Normally it answers at once; with :meth:`drip` on, it
    sends the headers, then one byte of the body every ``every`` seconds (each read of the
    client succeeds, so no read timeout fires) until :meth:`release`."""

    def __init__(self, body: bytes = LONG_CALENDAR, every: float = 0.2) -> None:
        self.body = body
        self.every = every
        self.dripping = threading.Event()
        self.released = threading.Event()
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/calendar")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                sent = 0
                if server.dripping.is_set():
                    while not server.released.wait(server.every) and sent < len(server.body) - 1:
                        self.wfile.write(server.body[sent:sent + 1])
                        self.wfile.flush()
                        sent += 1
                self.wfile.write(server.body[sent:])

            def log_message(self, *_args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/cal.ics"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def drip(self) -> None:
        self.released.clear()
        self.dripping.set()

    def release(self) -> None:
        self.dripping.clear()
        self.released.set()

    def close(self) -> None:
        self.release()
        self.http.shutdown()
        self.http.server_close()


class Notifications:
    """What systemd would see: a datagram socket collecting the service's messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def read(self) -> list[str]:
        while True:
            try:
                self.messages.extend(self.sock.recv(65536).decode().splitlines())
            except BlockingIOError:
                return self.messages

    def statuses(self) -> list[str]:
        return [m.removeprefix("STATUS=") for m in self.read() if m.startswith("STATUS=")]

    def close(self) -> None:
        self.sock.close()


def write_config(root: Path, source: dict, *, service: dict | None = None,
                 feed: dict | None = None) -> Path:
    config = {
        "timezone": "Europe/London",
        "state_path": str(root / "state.sqlite"),
        "sources": [source],
        "target": {"type": "ics", "path": str(root / "reminders.ics")},
        "service": {"interval": "10s", "jitter": "0s", **(service or {})},
        "feed": {"listen": "127.0.0.1:0", "token_credential": "feed-token", **(feed or {})},
        "clients": CLIENTS,
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def journal() -> Iterator[io.StringIO]:
    """The service's log lines (every level), as the journal would get them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("clientlove")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


@contextmanager
def running_service(root: Path, source: dict, **config: Any
                    ) -> Iterator[tuple[Service, Notifications]]:
    """The real Service as ``clientlove run`` builds it, with its feed on loopback; closed
    after. ``CREDENTIALS_DIRECTORY`` holds the feed token, as ``LoadCredential=`` would."""
    creds = root / "creds"
    creds.mkdir(exist_ok=True)
    (creds / "feed-token").write_text(TOKEN + "\n")
    before = os.environ.get("CREDENTIALS_DIRECTORY")
    os.environ["CREDENTIALS_DIRECTORY"] = str(creds)
    notes = Notifications(root / "notify.sock")
    try:
        service = Service(write_config(root, source, **config),
                          notifier=Notifier(str(notes.path)), backoff=FAST)
        try:
            service._start_feed()
            yield service, notes
        finally:
            service.request_stop()
            service.close(grace=2.0)
    finally:
        notes.close()
        if before is None:
            os.environ.pop("CREDENTIALS_DIRECTORY", None)
        else:
            os.environ["CREDENTIALS_DIRECTORY"] = before


def base_url(service: Service) -> str:
    server = service._feed_server
    assert server is not None, service.feed_state()
    return f"http://127.0.0.1:{server.port}"


def get(service: Service, path: str, host: str | None = None,
        timeout: float = 10.0) -> requests.Response:
    headers = {"Host": host} if host else {}
    return requests.get(base_url(service) + path, headers=headers, timeout=timeout)


# --- point 4: a hung cycle --------------------------------------------------------------


@case("cycle-hung", "an ICS URL source that drips its answer one byte every 0.2 s and never "
                    "ends (service.cycle_timeout 2s), then lets go")
def cycle_hung(scratch: Path) -> tuple[int, str]:
    drip = DripServer()
    try:
        with journal() as log, running_service(
                scratch, {"type": "ics", "name": "work", "url": drip.url},
                service={"cycle_timeout": "2s"}) as (service, notes):
            first = service.cycle()
            assert first is not None and first.ok, first
            assert get(service, f"/{TOKEN}/clientlove.ics").status_code == 200
            drip.drip()
            started = time.monotonic()
            assert service.cycle() is None, "a hung cycle must be abandoned"
            waited = time.monotonic() - started
            abandoned = notes.statuses()[-1]
            assert abandoned.startswith("cycle abandoned after "), abandoned
            assert abandoned.endswith(" s, over service.cycle_timeout (2 s), while reading "
                                      "source work; it sends no further writes, the next cycle "
                                      "tries again"), abandoned
            assert "cycle abandoned" in log.getvalue()
            health = get(service, "/healthz").json()
            assert health["abandoned"] == abandoned, health
            assert "reading source work" in health["running"], health
            assert get(service, f"/{TOKEN}/clientlove.ics").status_code == 200, "feed still up"
            assert service.cycle() is None, "no second cycle while the first still runs"
            assert notes.statuses()[-1].startswith("cycle skipped: the abandoned cycle 2 is "
                                                   "still running"), notes.statuses()[-1]
            assert drip.requests == 2, "the skipped cycle read nothing"
            assert service.watchdog_tick() or not service.notifier.enabled
            drip.release()
            run = service._run
            assert run is not None
            wait_until(run.done.is_set, "the abandoned cycle returns once the server lets go")
            assert "finished after all" in log.getvalue()
            assert notes.statuses()[-1].startswith("the abandoned cycle 2 finished after all")
            again = service.cycle()
            assert again is not None and again.ok, again
            health = get(service, "/healthz").json()
            assert "abandoned" not in health and health["status"] == "ok", health
    finally:
        drip.close()
    return (len(LONG_CALENDAR),
            f"abandoned after {waited:.1f} s, reported in STATUS=, /healthz and the log; the "
            "next cycle skipped while it ran, then one went fine")


@case("cycle-stuck", "an ICS URL source that drips its answer forever "
                     "(service.cycle_timeout 1s): the cycle never returns")
def cycle_stuck(scratch: Path) -> tuple[int, str]:
    drip = DripServer()
    drip.drip()
    try:
        with running_service(scratch, {"type": "ics", "name": "work", "url": drip.url},
                             service={"cycle_timeout": "1s"}) as (service, notes):
            assert service.watchdog_tick(), "pings while nothing is stuck"
            assert service.cycle() is None
            wait_until(service.stuck, "the cycle counts as stuck after twice its timeout")
            assert not service.watchdog_tick(), "no watchdog ping while a cycle is stuck"
            stuck = notes.statuses()[-1]
            assert stuck.startswith("stuck: cycle 1 has run for") and "systemd restarts" in stuck
            answer = get(service, "/healthz")
            assert answer.status_code == 503 and answer.json()["status"] == "stuck"
            pings = notes.read().count("WATCHDOG=1")
            assert not service.watchdog_tick()
            assert notes.read().count("WATCHDOG=1") == pings
            drip.release()  # let the worker go, so the service closes at once
    finally:
        drip.close()
    return (len(LONG_CALENDAR),
            'abandoned after 1 s, stuck after 2 s: watchdog pings stop (systemd restarts it), '
            '/healthz 503 "stuck"')


# --- point 9: DNS rebinding -------------------------------------------------------------


@case("dns-rebinding", "requests for /healthz, /metrics and the feed with the Host of a "
                       "page that rebinds its name to 127.0.0.1")
def dns_rebinding(scratch: Path) -> tuple[int, str]:
    with running_service(scratch, {"type": "ics", "name": "work",
                                   "path": str(_history(scratch))}) as (service, _notes):
        assert service.cycle() is not None
        port = service._feed_server.port  # type: ignore[union-attr]
        size = 0
        for path in ("/healthz", "/metrics", f"/{TOKEN}/clientlove.ics"):
            for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}",
                         f"localhost@evil.example:{port}", f"[::2]:{port}", "localhost, evil"):
                answer = get(service, path, host=host)
                size += len(host)
                assert answer.status_code == 421, (path, host, answer.status_code)
                assert answer.text == "misdirected request\n", answer.text
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())  # no Host at all
                assert sock.recv(65536).startswith(b"HTTP/1.0 421 "), path
            for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST"):
                assert get(service, path, host=host).status_code == 200, (path, host)
    return size, "421 without detail for every foreign Host; 200 for loopback names"


def _history(root: Path) -> Path:
    path = root / "history.ics"
    path.write_bytes(CALENDAR)
    return path


# --- point 10: slow clients -------------------------------------------------------------


DRIP_START = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"


class Drippers:
    """``count`` connections that each send a request line, then one header line every
    ``every`` seconds, and never the blank line that ends the request."""

    def __init__(self, port: int, count: int, every: float = 5.0) -> None:
        self.port = port
        self.sent = 0
        self.reconnects = 0
        self.sockets = [self._connect() for _ in range(count)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, args=(every,), daemon=True)
        self._thread.start()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(DRIP_START)
        self.sent += len(DRIP_START)
        return sock

    def _drip(self, every: float) -> None:
        line = 0
        while not self._stop.wait(every):
            line += 1
            for index, sock in enumerate(self.sockets):
                header = f"X-Drip-{line}: {line}\r\n".encode()
                try:
                    sock.sendall(header)
                    self.sent += len(header)
                except OSError:  # the server closed it: connect again, as an attacker would
                    sock.close()
                    self.sockets[index] = self._connect()
                    self.reconnects += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self.sockets:
            sock.close()


def slow_clients_against(service: Service, count: int = 101) -> tuple[int, float]:
    """Run ``count`` dripping connections, then a real client asking /healthz and the
    feed. Returns (bytes the attack sent before the answers came, seconds to the answers)."""
    port = service._feed_server.port  # type: ignore[union-attr]
    attack = Drippers(port, count)
    try:
        started = time.monotonic()
        try:
            health = get(service, "/healthz", timeout=8)
            feed = get(service, f"/{TOKEN}/clientlove.ics", timeout=8)
        except requests.Timeout:
            raise AssertionError(f"{count} slow clients starved a real one") from None
        took = time.monotonic() - started
        assert health.status_code == 200 and json.loads(health.text)["status"] == "ok"
        assert feed.status_code == 200 and b"BEGIN:VCALENDAR" in feed.content
        return attack.sent, took
    finally:
        attack.close()


@case("feed-drip-101", "101 connections to the feed each dripping one header line every 5 s, "
                       "while a real client asks /healthz and the feed")
def feed_drip(scratch: Path) -> tuple[int, str]:
    with running_service(scratch, {"type": "ics", "name": "work",
                                   "path": str(_history(scratch))}) as (service, _notes):
        assert service.cycle() is not None
        sent, took = slow_clients_against(service)
    return sent, f"the real client got /healthz and the feed in {took:.2f} s"
