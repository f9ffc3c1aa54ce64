"""Feed server abuse, counted: wrong tokens, traversal, oversized and slow requests.

Every probe must get a 4xx (or, for a stalled client, a closed connection), nothing outside
the feed may ever be served, and the feed must still answer afterwards.
"""

from __future__ import annotations

import random
import socket
import threading
from datetime import UTC, datetime

from daemon.feed import FeedServer, feed_doc, make_app
from daemon.metrics import Metrics
from tests.invariants import ScenarioResult

TOKEN = "abuse-test-token-0123456789"
BODY = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nREFRESH-INTERVAL;VALUE=DURATION:"
        b"PT1H\r\nEND:VCALENDAR\r\n")
SECRET_FILE_MARK = b"root:x:0:0"

PATHS = [
    "/", "/clientlove.ics", f"/{TOKEN[:-1]}/clientlove.ics", f"/{TOKEN.upper()}/clientlove.ics",
    f"/{TOKEN}x/clientlove.ics", f"/{TOKEN}/clientlove.ics/x", f"/{TOKEN}//clientlove.ics",
    "/../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", f"/{TOKEN}/../../etc/passwd",
    f"/{TOKEN}/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd", "/etc/passwd",
    "/%00", "/\\..\\..\\etc\\passwd", f"/{TOKEN}/clientlove.ics%00.txt", "/healthz/../metrics",
    "//etc/passwd", "/%c0%ae%c0%ae/etc/passwd", "/proc/self/environ",
]


def _raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until closed; a reset after the answer (an oversized body the
    server refused to read) still returns what was answered."""
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            pass
    return b"".join(chunks)


def _status(reply: bytes) -> int:
    try:
        return int(reply.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def run_feed_abuse(rounds: int = 1, seed: int = 3) -> ScenarioResult:
    result = ScenarioResult("feed abuse")
    rng = random.Random(seed)
    doc = feed_doc(BODY, datetime(2026, 11, 23, tzinfo=UTC))
    app = make_app(TOKEN, lambda: doc, lambda: (True, {"status": "ok"}), Metrics())
    server = FeedServer(app, "127.0.0.1", 0, channel_timeout=2)
    server.start()
    good = f"GET /{TOKEN}/clientlove.ics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    try:
        for _ in range(rounds):
            for path in PATHS:
                reply = _raw(server.port, f"GET {path} HTTP/1.1\r\nHost: localhost\r\n"
                                          "Connection: close\r\n\r\n".encode("latin-1"))
                result.inputs += 1
                if not 400 <= _status(reply) < 500 or SECRET_FILE_MARK in reply:
                    result.violations.append(f"{path!r}: answered {_status(reply)}")
            huge = "X-Fill: " + "a" * (64 * 1024)
            for probe in (f"GET / HTTP/1.1\r\nHost: localhost\r\n{huge}\r\n\r\n",
                          "POST /healthz HTTP/1.1\r\nHost: localhost\r\n"
                          "Content-Length: 999999999\r\n\r\n" + "x" * 70000,
                          "garbage\r\n\r\n", "GET /" + "a" * 70000 + " HTTP/1.1\r\n\r\n"):
                reply = _raw(server.port, probe.encode())
                result.inputs += 1
                if reply and not 400 <= _status(reply) < 500:
                    result.violations.append(f"oversized/garbage: answered {_status(reply)}")
            # a stalled client must not hold the server: others are served meanwhile
            stalled = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            stalled.sendall(b"GET /" + TOKEN.encode()[: rng.randrange(1, 10)])
            served = threading.Event()

            def other(done: threading.Event = served) -> None:
                if _status(_raw(server.port, good.encode())) == 200:
                    done.set()

            thread = threading.Thread(target=other)
            thread.start()
            thread.join()  # bounded by the other's own socket timeout
            result.inputs += 1
            if not served.is_set():
                result.violations.append("a stalled client blocked another one")
            try:
                # a bound is the only way to say "never cut off": 15 times the channel timeout
                stalled.settimeout(30)
                closed = stalled.recv(1) == b""
            except TimeoutError:
                closed = False
            except OSError:
                closed = True
            if not closed:
                result.violations.append("a stalled client was not cut off")
            stalled.close()
        if _status(_raw(server.port, good.encode())) != 200:
            result.violations.append("the feed stopped answering")
    finally:
        server.stop()
    return result
