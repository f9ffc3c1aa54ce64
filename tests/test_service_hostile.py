"""Issue 17, points 4, 9 and 10: the service survives a hung cycle, answers only its own host
names, and cannot be starved by slow clients.

``clientlove run`` runs as systemd runs it (a subprocess, a notify socket bound here) where it
is about the service over time; the real :class:`~daemon.service.Service` in this process
where a test needs to look inside (is a cycle stuck, would the watchdog ping). The hostile
parts are loopback servers and clients from :mod:`tests.hostile_service`. Nothing here waits
for time to pass: every wait is for a state (a log line, a notify message, a returned cycle)
and its timeout only ends a broken run.
"""

from __future__ import annotations

import re
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from daemon.cli import cli
from daemon.config import FeedConfig, ServiceConfig
from daemon.feed import FeedServer, feed_doc, make_app
from daemon.metrics import Metrics
from tests.hostile_service import (
    TOKEN,
    Drippers,
    DripServer,
    journal,
    running_service,
    wait_until,
    write_config,
)
from tests.servers import free_port
from tests.test_service import Daemon, NotifySocket

BODY = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nEND:VCALENDAR\r\n"
MODIFIED = datetime(2026, 11, 23, tzinfo=UTC)

def returns_within(call: Callable[[], Any], timeout: float = 60.0) -> Any:
    """``call()`` in a thread; an AssertionError (not a hung test) when it does not return."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{call} did not return"
    return result[0]


@pytest.fixture
def drip() -> Iterator[DripServer]:
    server = DripServer()
    yield server
    server.close()


@pytest.fixture
def daemon_at(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """``clientlove run`` on a config written by :func:`write_config` (feed on a free port)."""
    started: list[Daemon] = []
    notify = NotifySocket(tmp_path / "notify.sock")
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "feed-token").write_text(TOKEN + "\n")

    def start(source: dict, **config: Any) -> Daemon:
        port = free_port()
        feed = {"listen": f"127.0.0.1:{port}", **config.pop("feed", {})}
        path = write_config(tmp_path, source, feed=feed, **config)
        daemon = Daemon(tmp_path, path, notify, port)
        daemon.start()
        started.append(daemon)
        notify.wait_for("READY=1")
        return daemon

    yield start
    for daemon in started:
        daemon.kill()
    notify.close()


def history(root: Path) -> dict:
    from tests.hostile_service import CALENDAR

    (root / "history.ics").write_bytes(CALENDAR)
    return {"type": "ics", "name": "work", "path": str(root / "history.ics")}


def logged(daemon: Daemon, text: str, after: int = 0) -> int:
    """Wait until a log line holding ``text`` appears after line ``after``; its index."""
    found: list[int] = []

    def seen() -> bool:
        found[:] = [i for i, line in enumerate(daemon.logs) if i >= after and text in line]
        return bool(found)

    wait_until(seen, f"log line {text!r}")
    return found[0]


# --- point 4: a hung cycle is abandoned, reported, and the service goes on --------------


def test_a_hung_cycle_is_abandoned_reported_and_the_next_one_runs(daemon_at, drip):
    """A consultant's calendar server hangs mid-answer (it drips one byte every 0.2 s). The
    cycle is abandoned after service.cycle_timeout, and says so in STATUS=, /healthz and the
    journal; once the server recovers, the next cycle writes the reminders."""
    drip.drip()
    daemon = daemon_at({"type": "ics", "name": "work", "url": drip.url},
                       service={"cycle_timeout": "2s"})
    status = daemon.notify.wait_for("STATUS=cycle abandoned")
    # "after N s": 2 or a little more on a loaded machine
    assert re.fullmatch(r"STATUS=cycle abandoned after \d+ s, over service\.cycle_timeout "
                        r"\(2 s\), while reading source work; it sends no further writes, the "
                        r"next cycle tries again", status), status
    assert any("ERROR" in line and status.removeprefix("STATUS=") in line
               for line in daemon.logs)
    health = requests.get(daemon.url("/healthz"), timeout=10)
    assert health.status_code == 503
    body = health.json()
    assert body["abandoned"] == status.removeprefix("STATUS=")
    assert body["running"].startswith("cycle 1 for ") and "reading source work" in body["running"]
    assert body["status"] == "starting"
    assert drip.requests == 1

    drip.release()
    late = logged(daemon, "the abandoned cycle 1 finished after all")
    logged(daemon, "cycle: 2 clients, 2 reminders written (2 create), 0 errors", after=late)
    health = requests.get(daemon.url("/healthz"), timeout=10)
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok" and "abandoned" not in health.json()
    assert (daemon.root / "reminders.ics").read_text().count("BEGIN:VEVENT") == 2
    assert daemon.stop() == 0


def test_sigterm_during_a_hung_cycle_stops_the_service(daemon_at, drip):
    """SIGTERM while a cycle waits on a hung server: the service stops (exit 0) instead of
    waiting for the server for ever (systemd would SIGKILL it after TimeoutStopSec)."""
    drip.drip()
    daemon = daemon_at({"type": "ics", "name": "work", "url": drip.url})
    wait_until(lambda: drip.requests == 1, "the cycle asks the hung server")
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=60) == 0
    assert "STOPPING=1" in daemon.notify.messages
    assert any("cycle abandoned" in line and "the service is stopping" in line
               for line in daemon.logs)


def test_no_second_cycle_while_the_abandoned_one_runs(tmp_path, drip):
    """Never two cycles at once: while an abandoned cycle still waits, each scheduled one is
    skipped (and says so), reads no source, and the state stays the first cycle's."""
    drip.drip()
    with running_service(tmp_path, {"type": "ics", "name": "work", "url": drip.url},
                         service={"cycle_timeout": "1s"}) as (service, notes):
        assert returns_within(service.cycle) is None
        for _ in range(3):
            assert returns_within(service.cycle) is None
            assert notes.statuses()[-1].startswith(
                "cycle skipped: the abandoned cycle 1 is still running")
        assert drip.requests == 1
        assert service.cycles == 0
        drip.release()
        wait_until(lambda: service._run is not None and service._run.done.is_set(),
                   "the abandoned cycle returns")
        report = returns_within(service.cycle)
        assert report is not None and report.ok and report.writes == 2
        assert drip.requests == 2


def test_an_abandoned_cycle_sends_no_further_writes(tmp_path, drip):
    """Once abandoned, a cycle that comes back writes nothing more: the next cycle (the only
    one running) does the writes, so two cycles never write at once."""
    drip.drip()
    with journal() as log, running_service(
            tmp_path, {"type": "ics", "name": "work", "url": drip.url},
            service={"cycle_timeout": "1s"}) as (service, _notes):
        assert returns_within(service.cycle) is None
        drip.release()
        wait_until(lambda: service._run is not None and service._run.done.is_set(),
                   "the abandoned cycle returns")
        assert "0 reminders written before it was abandoned" in log.getvalue()
        assert not (tmp_path / "reminders.ics").exists() or "BEGIN:VEVENT" not in (
            tmp_path / "reminders.ics").read_text()
        assert service.last_success is None, "an abandoned cycle is no success"
        report = returns_within(service.cycle)
        assert report is not None and report.writes == 2


def test_a_stuck_cycle_stops_the_watchdog_and_fails_healthz(tmp_path, drip):
    """A cycle that never returns (twice its timeout): no more WATCHDOG=1, so systemd
    restarts the service; STATUS= and /healthz say why. Before, that took 30 minutes."""
    drip.drip()
    with running_service(tmp_path, {"type": "ics", "name": "work", "url": drip.url},
                         service={"cycle_timeout": "1s"}) as (service, notes):
        assert service.watchdog_tick()
        assert returns_within(service.cycle) is None
        wait_until(service.stuck, "stuck after twice the cycle timeout")
        pings = notes.read().count("WATCHDOG=1")
        assert not service.watchdog_tick()
        assert not service.watchdog_tick()
        assert notes.read().count("WATCHDOG=1") == pings
        status = notes.statuses()[-1]
        assert status.startswith("stuck: cycle 1 has run for ")
        assert "(reading source work)" in status and "systemd restarts the service" in status
        answer = requests.get(f"http://127.0.0.1:{service._feed_server.port}/healthz",
                              timeout=10)
        assert answer.status_code == 503 and answer.json()["status"] == "stuck"
        drip.release()
        wait_until(lambda: service._run is not None and service._run.done.is_set(),
                   "the stuck cycle returns once the server lets go")
        assert not service.stuck() and service.watchdog_tick()


def test_reload_while_a_cycle_hangs_does_not_block(tmp_path, drip):
    """SIGHUP while a cycle hangs: the reload is taken at once (it does not wait for the
    cycle's lock), and the next cycle runs on the new config."""
    drip.drip()
    with running_service(tmp_path, {"type": "ics", "name": "work", "url": drip.url},
                         service={"cycle_timeout": "1s"}) as (service, _notes):
        assert returns_within(service.cycle) is None
        config = service.config_path.read_text().replace("Globex", "Initech")
        service.config_path.write_text(config)
        assert returns_within(service.reload, timeout=30) is True
        drip.release()
        wait_until(lambda: service._run is not None and service._run.done.is_set(),
                   "the abandoned cycle returns")
        report = returns_within(service.cycle)
        assert report is not None
        assert sorted(p.client for p in report.plans) == ["Acme Corp", "Initech"]


def test_cycle_timeout_is_validated():
    assert ServiceConfig().cycle_timeout.to_timedelta().total_seconds() == 300
    assert ServiceConfig(cycle_timeout="90s").cycle_timeout.to_timedelta().total_seconds() == 90
    for bad in ("0s", "2h", "1mo"):
        with pytest.raises(ValueError):
            ServiceConfig(cycle_timeout=bad)


# --- point 9: only the configured host names ----------------------------------------------


def test_healthz_metrics_and_feed_refuse_a_foreign_host(daemon_at, tmp_path):
    """A web page whose name was rebound to 127.0.0.1 (DNS rebinding) asks with its own Host:
    a bare 421 for /healthz, /metrics and the feed; the loopback names are answered."""
    daemon = daemon_at(history(tmp_path))
    daemon.wait_cycles(1)
    port = daemon.port
    for path in ("/healthz", "/metrics", f"/{TOKEN}/clientlove.ics", "/nothing"):
        for host in (f"rebind.evil.example:{port}", "evil.example", f"127.0.0.1.nip.io:{port}"):
            answer = requests.get(daemon.url(path), headers={"Host": host}, timeout=10)
            assert answer.status_code == 421, (path, host)
            assert answer.text == "misdirected request\n"
            assert "cycles" not in answer.text and "clientlove_" not in answer.text
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert requests.get(daemon.url("/healthz"), headers={"Host": host},
                            timeout=10).status_code == 200
        assert requests.get(daemon.url("/metrics"), headers={"Host": host},
                            timeout=10).status_code == 200
    assert daemon.stop() == 0


def _status(app: Any, host: str | None, path: str = "/healthz") -> str:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "REQUEST_URI": path}
    if host is not None:
        environ["HTTP_HOST"] = host
    seen: list[str] = []
    app(environ, lambda status, _headers: seen.append(status))
    return seen[0]


def test_public_url_and_allowed_hosts_are_answered_and_nothing_else():
    feed = FeedConfig(listen="127.0.0.1:8787", public_url="https://Cal.Example.org/feeds",
                      allowed_hosts=["feed.lan", "10.0.0.7", "[fd00::7]"])
    assert feed.served_hosts == {"localhost", "127.0.0.1", "::1", "cal.example.org",
                                 "feed.lan", "10.0.0.7", "fd00::7"}
    doc = feed_doc(BODY, MODIFIED)
    app = make_app(TOKEN, lambda: doc, lambda: (True, {"status": "ok"}), Metrics(),
                   hosts=feed.served_hosts)
    for host in ("cal.example.org", "CAL.EXAMPLE.ORG.", "cal.example.org:443", "feed.lan:8787",
                 "10.0.0.7", "[fd00::7]:8787", "[::1]:8787", "localhost"):
        assert _status(app, host) == "200 OK", host
    assert _status(app, "cal.example.org", f"/{TOKEN}/clientlove.ics") == "200 OK"
    for host in (None, "", "evil.example", "cal.example.org.evil.example", "feed.lan@evil",
                 "feed.lan, evil.example", "fd00::7", "10.0.0.8", "127.0.0.2", "0.0.0.0"):
        assert _status(app, host) == "421 Misdirected Request", host
    # an absolute-form request names its host in the target; that one counts
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/healthz", "HTTP_HOST": "localhost",
               "REQUEST_URI": "http://evil.example/healthz"}
    seen: list[str] = []
    app(environ, lambda status, _headers: seen.append(status))
    assert seen == ["421 Misdirected Request"]
    # the default: loopback names only
    default = make_app(TOKEN, lambda: doc, lambda: (True, {}), Metrics())
    assert _status(default, "127.0.0.1:8787") == "200 OK"
    assert _status(default, "cal.example.org") == "421 Misdirected Request"


def test_a_wildcard_listen_is_not_a_host_name():
    feed = FeedConfig(listen="0.0.0.0:8787")
    assert "0.0.0.0" not in feed.served_hosts
    assert FeedConfig(listen="192.0.2.10:8787").served_hosts >= {"192.0.2.10"}
    with pytest.raises(ValueError):
        FeedConfig(allowed_hosts=["https://feed.example.org"])
    with pytest.raises(ValueError):
        FeedConfig(allowed_hosts=["feed.example.org:443"])


def test_a_listen_that_is_not_loopback_is_warned_about(tmp_path, monkeypatch):
    """check-config notes it, and the service logs it at start, unless an https:// public
    URL fronts it. (192.0.2.10 is TEST-NET: nothing here listens beyond loopback.)"""
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "feed-token").write_text(TOKEN + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    source = history(tmp_path)

    def check(**feed: Any) -> str:
        path = write_config(tmp_path, source, feed=feed)
        result = CliRunner().invoke(cli, ["--config", str(path), "check-config"])
        assert result.exit_code == 0, result.output
        return result.output

    exposed = check(listen="192.0.2.10:8787")
    assert "note: feed.listen: 192.0.2.10:8787 is not a loopback address" in exposed
    assert "https:// feed.public_url" in exposed
    assert "not a loopback" in check(listen="0.0.0.0:8787",
                                     public_url="http://cal.example.org")
    assert "not a loopback" not in check(listen="0.0.0.0:8787",
                                         public_url="https://cal.example.org")
    assert "not a loopback" not in check(listen="127.0.0.1:8787")
    assert "not a loopback" not in check(listen="[::1]:8787")

    from daemon.service import Service

    path = write_config(tmp_path, source, feed={"listen": "192.0.2.10:8787"})
    with journal() as log:
        service = Service(path)
        try:
            service._start_feed()
        finally:
            service.close(grace=1.0)
    assert "feed.listen 192.0.2.10:8787 is not a loopback address" in log.getvalue()


# --- point 10: slow clients cannot starve the feed ----------------------------------------


def test_101_dripping_connections_do_not_starve_the_feed_or_healthz(daemon_at, tmp_path):
    """The attack of the issue against ``clientlove run``: 101 connections each sending one
    header line every 5 s. A calendar app and a health check are answered meanwhile."""
    daemon = daemon_at(history(tmp_path))
    daemon.wait_cycles(1)
    attack = Drippers(daemon.port, 101)
    try:
        health = requests.get(daemon.url("/healthz"), timeout=30)
        feed = requests.get(daemon.url(f"/{TOKEN}/clientlove.ics"), timeout=30)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert feed.status_code == 200 and b"Client love: Acme Corp" in feed.content
        assert len(attack.sockets) == 101, "the attack was still going on"
    finally:
        attack.close()
    assert daemon.stop() == 0


def test_a_request_that_never_ends_is_cut_off():
    """A client sending one header line after another, each in time, never completing its
    request: cut off after request_timeout (waitress alone keeps it: it only counts
    silence). The connection is closed without an answer; others are served."""
    doc = feed_doc(BODY, MODIFIED)
    server = FeedServer(make_app(TOKEN, lambda: doc, lambda: (True, {}), Metrics()),
                        "127.0.0.1", 0, channel_timeout=30, request_timeout=1)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
            lines = 0
            answer = b"?"
            while lines < 2000:  # 2000 lines x 50 ms: far past the budget, inside 16 KB
                try:
                    sock.sendall(b"X-Drip: %d\r\n" % lines)
                except OSError:
                    answer = b""
                    break
                lines += 1
                sock.settimeout(0.05)
                try:
                    answer = sock.recv(1024)
                    break
                except TimeoutError:
                    continue
                except OSError:
                    answer = b""
                    break
            assert answer == b"", answer
            assert lines < 2000
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        server.stop()


def test_at_the_connection_limit_the_longest_waiting_gives_way():
    """With every slot taken by idle connections, a new client is still served: the one
    that has waited longest is closed to make room (waitress would stop accepting)."""
    doc = feed_doc(BODY, MODIFIED)
    server = FeedServer(make_app(TOKEN, lambda: doc, lambda: (True, {}), Metrics()),
                        "127.0.0.1", 0, channel_timeout=60, request_timeout=60,
                        connection_limit=10)
    server.start()
    idle = []
    try:
        for _ in range(12):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # half a request, then nothing
            idle.append(sock)
        for _ in range(3):
            assert requests.get(f"{server.url}/healthz", timeout=30).status_code == 200
        idle[0].settimeout(30)
        assert idle[0].recv(1024) == b"", "the oldest one was closed to make room"
    finally:
        for sock in idle:
            sock.close()
        server.stop()
