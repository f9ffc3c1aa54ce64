"""Real CalDAV servers on 127.0.0.1 for the tests, and a counting, fault-injecting proxy.

Radicale and Xandikos are started as subprocesses on a free loopback port with a temporary
folder, and stopped by PID. Nothing here talks to anything but loopback.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import caldav
import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerExited(RuntimeError):
    """The server process ended while starting (its port was taken meanwhile, say)."""


#: How long a server may take to start: a guard against a hang on a loaded machine, not a
#: synchronisation (the wait ends as soon as the server is up).
START_TIMEOUT = 120.0


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = START_TIMEOUT,
                  ready: Callable[[], bool] = lambda: True) -> None:
    """Until the port accepts and ``ready()`` says the listener is this process's own."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerExited(f"server exited early with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0 and ready():
                return
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


@dataclass
class DavServer:
    """A running CalDAV server and how to reach it."""

    kind: str
    root: Path
    port: int
    proc: subprocess.Popen
    principal_path: str
    username: str = "me"
    password: str = "x"
    log: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def client(self, password: str | None = None) -> caldav.DAVClient:
        return caldav.DAVClient(url=self.base_url, username=self.username,
                                password=password or self.password, auth_type="basic",
                                enable_rfc6764=False, require_tls=False)

    def session(self) -> requests.Session:
        session = requests.Session()
        session.auth = (self.username, self.password)
        return session

    def new_calendar(self, name: str | None = None) -> str:
        """A fresh, empty calendar collection; its URL."""
        name = name or f"cal-{uuid.uuid4().hex[:10]}"
        url = f"{self.base_url}{self.principal_path.strip('/')}/{name}/"
        with self.session() as http:
            # a first authenticated request makes the principal exist (Radicale)
            http.request("PROPFIND", self.base_url, headers={"Depth": "0"})
            reply = http.request("MKCALENDAR", url)
            assert reply.status_code == 201, (reply.status_code, reply.text[:200])
        return url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def start_again(self) -> None:
        """Start the same server again on the same port and folder (after ``stop``)."""
        fresh = start_server(self.kind, self.root, port=self.port, htpasswd=self._htpasswd)
        self.proc = fresh.proc

    _htpasswd: bool = False


def start_server(kind: str, root: Path, *, port: int | None = None,
                 htpasswd: bool = False) -> DavServer:
    """Start a server on ``port``, else on a free one; a free port another process took
    between our look and the server's bind makes the server exit: then another port."""
    for _attempt in range(1 if port else 3):
        try:
            return _start(kind, root, port or free_port(), htpasswd)
        except ServerExited:
            if port:
                raise
    raise RuntimeError(f"{kind} did not start on three free ports")


def _start(kind: str, root: Path, port: int, htpasswd: bool) -> DavServer:
    root.mkdir(parents=True, exist_ok=True)
    log = root / f"{kind}.log"
    size = log.stat().st_size if log.exists() else 0
    # Radicale says when it bound (a connect alone could reach whoever took the port)
    listening = f"Listening on '127.0.0.1:{port}'".encode()
    if kind == "radicale":
        args = [sys.executable, "-m", "radicale", "--config", "",
                "--server-hosts", f"127.0.0.1:{port}",
                "--storage-filesystem-folder", str(root / "collections"),
                "--auth-delay", "0", "--logging-level", "info"]
        if htpasswd:
            users = root / "users"
            users.write_text("me:s3cret-pa55\n")
            args += ["--auth-type", "htpasswd", "--auth-htpasswd-filename", str(users),
                     "--auth-htpasswd-encryption", "plain"]
        else:
            args += ["--auth-type", "none"]
        principal = "me"
    elif kind == "xandikos":
        exe = shutil.which("xandikos")
        base = [exe] if exe else [sys.executable, "-m", "xandikos"]
        args = [*base, "serve", "--defaults", "-d", str(root / "data"),
                "-l", "127.0.0.1", "-p", str(port), "--no-detect-systemd"]
        principal = "user/calendars"
    else:
        raise ValueError(kind)
    handle = log.open("ab")
    proc = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    handle.close()

    def ready() -> bool:
        return kind != "radicale" or listening in log.read_bytes()[size:]

    try:
        wait_for_port(port, proc, ready=ready)
    except ServerExited:
        proc.wait()
        raise
    server = DavServer(kind, root, port, proc, principal, log=log,
                       password="s3cret-pa55" if htpasswd else "x")
    server._htpasswd = htpasswd
    return server


# -- the proxy --------------------------------------------------------------------------------

@dataclass
class Fault:
    """What the proxy does instead of (or to) one request."""

    status: int | None = None  # answer with this status
    retry_after: str | None = None
    drop: bool = False  # close the connection without an answer
    truncate: bool = False  # forward, but cut the body short
    delay: float = 0.0


@dataclass
class CountingProxy:
    """An HTTP reverse proxy on loopback that counts requests and can inject faults."""

    upstream: str
    fault: Callable[[str, str], Fault | None] | None = None
    #: told ``(method, path, status)`` once the upstream answered a forwarded request,
    #: before the answer goes back (the sender may be dead by then: it landed all the same)
    landed: Callable[[str, str, int], None] | None = None
    counts: Counter = field(default_factory=Counter)
    log: list[tuple[str, str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        owner = self
        up = urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def handle(self):
                # the client died (a killed run); what it sent has landed all the same
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    super().handle()

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                owner.counts[self.command] += 1
                fault = owner.fault(self.command, self.path) if owner.fault else None
                if fault and fault.delay:
                    time.sleep(fault.delay)
                if fault and fault.drop:
                    owner.log.append((self.command, self.path, 0))
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault and fault.status:
                    owner.log.append((self.command, self.path, fault.status))
                    self.send_response(fault.status)
                    if fault.retry_after:
                        self.send_header("Retry-After", fault.retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection", "keep-alive")}
                headers["Host"] = f"{up.hostname}:{up.port}"
                conn.request(self.command, self.path, body=body, headers=headers)
                reply = conn.getresponse()
                data = reply.read()
                conn.close()
                owner.log.append((self.command, self.path, reply.status))
                if owner.landed:
                    owner.landed(self.command, self.path, reply.status)
                self.send_response(reply.status)
                for key, value in reply.getheaders():
                    if key.lower() in ("transfer-encoding", "connection", "content-length",
                                       "keep-alive"):
                        continue
                    self.send_header(key, value)
                if fault and fault.truncate and len(data) > 10:
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_DELETE = do_POST = do_PROPFIND = do_REPORT = _any
            do_MKCALENDAR = do_MKCOL = do_OPTIONS = do_PROPPATCH = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def url_for(self, upstream_url: str) -> str:
        """The same resource reached through the proxy."""
        parts = urlsplit(upstream_url)
        return f"{self.base_url.rstrip('/')}{parts.path}"

    def reset(self) -> None:
        self.counts.clear()
        self.log.clear()

    def requests_under(self, path_prefix: str) -> int:
        return sum(1 for _m, path, _s in self.log if path.startswith(path_prefix))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
