"""``clientlove run`` as systemd runs it: a subprocess, a notify socket bound by the test,
signals, a feed on loopback, and a kill -9 in the middle of a cycle."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import icalendar
import pytest
import requests
import yaml

from daemon.reminder_ical import key_of
from tests.servers import CountingProxy, DavServer, Fault, free_port

FEED_TOKEN = "feed-t0ken-4f9a2c7e1b"
DAV_SECRET_MARK = "s3cret"


def history(path: Path) -> None:
    events = []
    for i in range(30):
        events.append(
            "BEGIN:VEVENT\r\n"
            f"UID:m{i}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:202611{10 + i % 10:02d}T100000Z\r\n"
            f"SUMMARY:Review {i}\r\nATTENDEE:mailto:boss@c{i:02d}.example\r\nEND:VEVENT\r\n")
    path.write_text("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n" + "".join(events)
                    + "END:VCALENDAR\r\n")


class NotifySocket:
    """What systemd would be: a datagram socket collecting the daemon's messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.extend(data.decode().splitlines())

    def wait_for(self, prefix: str, timeout: float = 20.0, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.messages[after:]:
                if line.startswith(prefix):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no {prefix!r} in {self.messages}")

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@dataclass
class Daemon:
    root: Path
    config: Path
    notify: NotifySocket
    port: int
    proc: subprocess.Popen | None = None
    logs: list[str] = field(default_factory=list)

    def start(self, **env: str) -> None:
        full = {**os.environ, "NOTIFY_SOCKET": str(self.notify.path),
                "WATCHDOG_USEC": "1000000", "CREDENTIALS_DIRECTORY": str(self.root / "creds"),
                "PYTHONUNBUFFERED": "1", **env}
        full.pop("WATCHDOG_PID", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "--config", str(self.config), "-v", "run"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full)
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()

    def _drain(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.logs.append(line)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def wait_cycles(self, n: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum("cycle: " in line for line in self.logs) >= n:
                return
            time.sleep(0.05)
        raise AssertionError("".join(self.logs[-30:]))


def write_config(root: Path, port: int, **overrides: object) -> Path:
    config = {
        "timezone": "Europe/London",
        "state_path": str(root / "state.sqlite"),
        "sources": [{"type": "ics", "name": "work", "path": "history.ics"}],
        "target": {"type": "ics", "path": "reminders.ics"},
        "service": {"interval": "10s", "jitter": "0s"},
        "feed": {"listen": f"127.0.0.1:{port}", "token_credential": "feed-token"},
        "clients": [{"name": f"Client {i:02d}", "domains": [f"c{i:02d}.example"]}
                    for i in range(30)],
    }
    config.update(overrides)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "feed-token").write_text(FEED_TOKEN + "\n")
    history(tmp_path / "history.ics")
    port = free_port()
    notify = NotifySocket(tmp_path / "notify.sock")
    d = Daemon(tmp_path, write_config(tmp_path, port), notify, port)
    yield d
    d.kill()
    notify.close()


def test_ready_watchdog_status_reload_and_stop(daemon: Daemon):
    daemon.start()
    daemon.notify.wait_for("READY=1")
    daemon.wait_cycles(1)
    daemon.notify.wait_for("STATUS=30 clients")
    seen = len(daemon.notify.messages)
    daemon.notify.wait_for("WATCHDOG=1", after=seen)

    # a broken config on SIGHUP: reported, the old one kept, the daemon goes on
    good = daemon.config.read_text()
    daemon.config.write_text(good + "\nbogus_key: 1\n")
    seen = len(daemon.notify.messages)
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.notify.wait_for("STATUS=reload refused", after=seen)
    assert daemon.proc.poll() is None
    assert any("bogus_key: unknown key" in line for line in daemon.logs)
    seen = len(daemon.notify.messages)
    daemon.notify.wait_for("WATCHDOG=1", after=seen)
    daemon.config.write_text(good)
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.notify.wait_for("STATUS=config reloaded", after=seen)

    assert daemon.stop() == 0
    assert "STOPPING=1" in daemon.notify.messages
    assert (daemon.root / "reminders.ics").exists()


def test_feed_serves_and_survives_a_failing_source(daemon: Daemon):
    daemon.start()
    daemon.wait_cycles(1)
    feed = daemon.url(f"/{FEED_TOKEN}/clientlove.ics")
    first = requests.get(feed, timeout=5)
    assert first.status_code == 200 and first.headers["Content-Type"].startswith("text/calendar")
    cal = icalendar.Calendar.from_ical(first.content)
    assert len([e for e in cal.walk("VEVENT") if key_of(e)]) == 30
    again = requests.get(feed, headers={"If-None-Match": first.headers["ETag"]}, timeout=5)
    assert again.status_code == 304
    assert requests.get(daemon.url("/wrong-token/clientlove.ics"), timeout=5).status_code == 404
    assert requests.get(daemon.url("/healthz"), timeout=5).status_code == 200
    metrics = requests.get(daemon.url("/metrics"), timeout=5).text
    assert "clientlove_cycles_total" in metrics

    (daemon.root / "history.ics").unlink()  # the source fails from now on
    daemon.wait_cycles(2, timeout=40)
    assert requests.get(feed, timeout=5).status_code == 200, "the feed stays available"
    health = requests.get(daemon.url("/healthz"), timeout=5).json()
    assert health["errors"] and "work" in health["errors"][0]
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0


def test_no_secret_in_any_output(daemon: Daemon, radicale_auth: DavServer):
    """A full cycle with known secrets (a CalDAV password, the feed token): none of them in
    the logs, the state file, the reminders or the metrics."""
    from tests.harness import CalDavHarness

    (daemon.root / "creds" / "work-dav").write_text(radicale_auth.password)
    target = CalDavHarness(radicale_auth).url
    write_config(daemon.root, daemon.port,
                 target={"type": "caldav", "url": target, "username": "me",
                         "credential": "work-dav"})
    daemon.start()
    daemon.wait_cycles(1)
    feed = requests.get(daemon.url(f"/{FEED_TOKEN}/clientlove.ics"), timeout=5)
    assert feed.status_code == 200 and b"Client love" in feed.content
    metrics = requests.get(daemon.url("/metrics"), timeout=5).text
    assert daemon.stop() == 0
    outputs = {
        "logs": "".join(daemon.logs),
        "notify": "\n".join(daemon.notify.messages),
        "metrics": metrics,
        "feed": feed.text,
        "state": (daemon.root / "state.sqlite").read_bytes().decode("latin-1"),
    }
    for wal in daemon.root.glob("state.sqlite*"):
        outputs[wal.name] = wal.read_bytes().decode("latin-1")
    for name, text in outputs.items():
        for secret in (radicale_auth.password, FEED_TOKEN):
            assert secret not in text, f"{secret[:3]}... found in {name}"


def test_kill_9_mid_cycle_then_restart_makes_no_duplicate(daemon: Daemon, radicale: DavServer):
    """Writes slowed by a proxy; the daemon is killed while it writes; the next run finishes
    the job with exactly one pending reminder per client."""
    from tests.harness import CalDavHarness

    harness = CalDavHarness(radicale)
    proxy = CountingProxy(radicale.base_url)
    eighth, release = threading.Event(), threading.Event()

    def fault(method: str, path: str) -> Fault | None:
        if method != "PUT":
            return None
        if proxy.counts["PUT"] == 8:  # held until the kill: it lands in the middle, every time
            eighth.set()
            release.wait(120)
        return Fault(delay=0.15)

    proxy.fault = fault
    (daemon.root / "creds" / "work-dav").write_text(radicale.password)
    write_config(daemon.root, daemon.port, feed={"enabled": False},
                 target={"type": "caldav", "url": proxy.url_for(harness.url), "username": "me",
                         "credential": "work-dav"})
    try:
        daemon.start()
        assert eighth.wait(120), "".join(daemon.logs[-30:])  # a guard against a hang only
        daemon.kill()  # kill -9 in the middle of the writes
        written = proxy.counts["PUT"]
        assert 0 < written < 30
        proxy.fault = None
        release.set()
        daemon.start()
        daemon.wait_cycles(1)
        assert daemon.stop() == 0
    finally:
        release.set()
        proxy.close()
    keys = [key_of(e) for e in harness.all_events() if key_of(e)]
    assert len(keys) == len(set(keys)) == 30
    clients = {k.rsplit(".", 1)[0] for k in keys}
    assert len(clients) == 30, "one reminder per client"


def test_feed_url_prints_http_and_webcal(daemon: Daemon, monkeypatch):
    from click.testing import CliRunner

    from daemon.cli import cli

    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(daemon.root / "creds"))
    result = CliRunner().invoke(cli, ["--config", str(daemon.config), "feed", "url"])
    assert result.exit_code == 0, result.output
    http, webcal = result.stdout.split()
    assert http == f"http://127.0.0.1:{daemon.port}/{FEED_TOKEN}/clientlove.ics"
    assert webcal == f"webcal://127.0.0.1:{daemon.port}/{FEED_TOKEN}/clientlove.ics"
