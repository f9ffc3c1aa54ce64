"""The subscribable ICS feed, /healthz and /metrics: a tiny WSGI app served by waitress.

Calendar apps cannot send auth headers, so the feed URL itself carries an unguessable token
(``/<token>/clientlove.ics``). The app never touches the disk: the feed body only ever comes
from the ``feed`` callable. Everything that is not exactly one of the three routes is a 404
that says nothing about how close a guess was. A request naming a host this service is not
known as (a DNS-rebinding page in a browser: ``Host: evil.example``) is a 421 before any route.

Waitress (pure Python, well kept) brings the limits on header and body size and closes idle
connections (``channel_timeout``). It does not bound how long a client may take to send one
request: a byte now and then keeps a connection "active", and 100 such connections fill
``connection_limit``, after which waitress stops accepting and every other client waits.
:class:`FeedServer` adds both bounds: a request must arrive whole within ``request_timeout``,
and at the connection limit the connection that has waited longest without a request in
service is closed to make room, so a real client is always accepted.

The token never reaches a log: requests are not logged, and paths that do get logged (an
error, waitress's own messages) have every segment but the route names replaced by ``***``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher
from waitress.trigger import trigger as Trigger

from daemon.config import LOOPBACK_NAMES
from daemon.metrics import Metrics

log = logging.getLogger("clientlove.feed")

FEED_NAME = "clientlove.ics"
#: Waitress limits: anything bigger is refused before the app sees it (431/413/400).
MAX_REQUEST_HEADER_SIZE = 16 * 1024
MAX_REQUEST_BODY_SIZE = 64 * 1024
#: A token must be URL-safe (never percent-encoded by a client) and long enough to be a secret.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_~.-]{16,256}")

#: A request must arrive whole (line, headers, body) within this many seconds.
REQUEST_TIMEOUT = 10.0
#: At most this many connections at once; at the limit the longest waiting one gives way.
CONNECTION_LIMIT = 100
#: A Host header as a client sends it: a name or IPv4 address, or an IPv6 one in brackets,
#: with an optional port. Anything else (a list, a user@, a path) is not a host of ours.
_HOST_HEADER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::[0-9]{1,5})?")

_ROUTE_NAMES = frozenset({"", "healthz", "metrics", FEED_NAME})
_ETAG = re.compile(r'[\s,]*(?:(W/)?("[^"]*")|(\*))\s*(?:,|$)')
_ALLOW = "GET, HEAD"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Response = tuple[str, list[tuple[str, str]], bytes]


@dataclass(frozen=True)
class FeedDoc:
    """What the feed serves right now: a whole VCALENDAR and its validators."""

    body: bytes
    etag: str
    last_modified: datetime


def feed_doc(body: bytes, modified: datetime) -> FeedDoc:
    """A :class:`FeedDoc` whose strong ETag is derived from the bytes, so equal feeds match."""
    if modified.tzinfo is None or modified.utcoffset() is None:
        raise ValueError("modified must be an aware datetime")
    return FeedDoc(bytes(body), f'"{hashlib.sha256(body).hexdigest()[:32]}"', modified)


def check_token(token: str) -> str:
    """The token, when it can be a URL path segment as-is and is long enough to be secret."""
    if not isinstance(token, str) or not TOKEN_PATTERN.fullmatch(token) or set(token) <= {"."}:
        raise ValueError("feed token must be 16 to 256 characters of A-Z a-z 0-9 _ ~ . -")
    return token


def feed_url(public_or_listen_base: str, token: str) -> tuple[str, str]:
    """The feed's (http/https URL, webcal:// URL) under a public URL or a HOST:PORT listen."""
    base = public_or_listen_base.strip().rstrip("/")
    if "://" not in base:
        base = f"http://{base}"
    url = f"{base}/{check_token(token)}/{FEED_NAME}"
    scheme, sep, rest = url.partition("://")
    if scheme.lower() not in ("http", "https"):
        raise ValueError(f"feed base must be http or https, not {scheme!r}")
    return url, f"webcal{sep}{rest}"


def redact_path(path: str) -> str:
    """The path with every segment that is not a route name (the token) replaced by ``***``."""
    path = path.split("?", 1)[0]
    return "/".join(s if s in _ROUTE_NAMES else "***" for s in path.split("/"))


def http_date(moment: datetime) -> str:
    """RFC 7231 IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def make_app(
    token: str | None,
    feed: Callable[[], FeedDoc | None],
    health: Callable[[], tuple[bool, dict]],
    metrics: Metrics,
    hosts: Collection[str] = LOOPBACK_NAMES,
) -> WSGIApp:
    """The WSGI app: ``/<token>/clientlove.ics``, ``/healthz``, ``/metrics``; 404 for the rest.

    ``token=None`` (none is configured, or it is unusable) still serves /healthz and /metrics;
    every feed URL then answers 503 saying how to make a token, so a subscriber sees why.
    Only requests for one of ``hosts`` (``feed.served_hosts``; loopback names by default) are
    answered: a browser page that rebinds its own name to 127.0.0.1 sends its own name as
    Host and gets a bare 421, so it can read neither the health report nor the metrics.
    """
    secret = None if token is None else check_token(token).encode("ascii")
    known = frozenset(h.lower().strip("[]").rstrip(".") for h in hosts)

    def route(environ: dict[str, Any]) -> Response:
        if request_host(environ) not in known:
            return _plain("421 Misdirected Request", "misdirected request\n")
        raw = _raw_path(environ)
        problem = _path_problem(raw, environ.get("PATH_INFO", ""))
        if problem is not None:
            return problem
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if raw == "/healthz":
            return _allowed(method) or _health(health, method)
        if raw == "/metrics":
            return _allowed(method) or _metrics(metrics, method)
        segments = raw.split("/")
        if len(segments) != 3 or segments[2] != FEED_NAME:
            return _not_found()
        if secret is None:
            return _allowed(method) or _no_token()
        if hmac.compare_digest(segments[1].encode("latin-1"), secret):
            return _allowed(method) or _feed(feed, environ, method)
        return _not_found()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            status, headers, body = route(environ)
        except Exception:  # never let waitress log the path (with the token) itself
            log.exception("feed: error serving %s", redact_path(_raw_path(environ)))
            status, headers, body = _plain("500 Internal Server Error", "internal error\n")
        start_response(status, headers)
        return [body]

    return app


def request_host(environ: dict[str, Any]) -> str | None:
    """The host a request is for, lower case without port or brackets; ``None`` when it
    names none in a form a client sends. An absolute-form target's authority wins over the
    Host header (RFC 9112, 3.2.2)."""
    uri = environ.get("REQUEST_URI") or environ.get("RAW_URI") or ""
    if uri and not uri.startswith("/"):
        try:
            netloc = urlsplit(uri).netloc
        except ValueError:
            return None
    else:
        netloc = environ.get("HTTP_HOST") or ""
    match = _HOST_HEADER.fullmatch(netloc.strip())
    if match is None:
        return None
    return match.group(1).strip("[]").lower().rstrip(".")


def _raw_path(environ: dict[str, Any]) -> str:
    """The request path as sent (still percent-encoded), without the query."""
    uri = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if not uri:
        return str(environ.get("PATH_INFO", ""))
    if not uri.startswith("/"):  # absolute-form: GET http://host/path HTTP/1.1
        try:
            uri = urlsplit(uri).path
        except ValueError:
            return "\x00"
    return uri.split("?", 1)[0].split("#", 1)[0]


def _path_problem(raw: str, decoded: str) -> Response | None:
    """400 for a path that does not decode, 404 for anything shaped like a traversal."""
    try:
        raw.encode("ascii")
        text = decoded.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return _plain("400 Bad Request", "bad request\n")
    for path in (raw, text):
        if (not path.startswith("/") or "//" in path or "\\" in path or "\x00" in path
                or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path)
                or any(s in (".", "..") for s in path.split("/"))):
            return _not_found()
    if "%2e" in raw.lower() or "%2f" in raw.lower() or "%5c" in raw.lower():
        return _not_found()
    return None


def _allowed(method: str) -> Response | None:
    if method in ("GET", "HEAD"):
        return None
    status, headers, body = _plain("405 Method Not Allowed", "method not allowed\n")
    return status, [*headers, ("Allow", _ALLOW)], body


def _feed(feed: Callable[[], FeedDoc | None], environ: dict[str, Any], method: str) -> Response:
    doc = feed()
    if doc is None:
        status, headers, body = _plain("503 Service Unavailable", "no feed written yet\n")
        return status, [*headers, ("Retry-After", "60")], body
    validators = [
        ("ETag", doc.etag),
        ("Last-Modified", http_date(doc.last_modified)),
        ("Cache-Control", "private, max-age=300"),
    ]
    if _not_modified(environ, doc):
        return "304 Not Modified", validators, b""
    headers = [
        ("Content-Type", "text/calendar; charset=utf-8"),
        ("Content-Length", str(len(doc.body))),
        ("Content-Disposition", f'inline; filename="{FEED_NAME}"'),
        ("X-Content-Type-Options", "nosniff"),
        *validators,
    ]
    return "200 OK", headers, b"" if method == "HEAD" else doc.body


def _no_token() -> Response:
    return _plain("503 Service Unavailable",
                  "the feed is off: the service has no usable feed token. Make one with "
                  "`clientlove feed token`, restart the service, then subscribe again with the "
                  "URL `clientlove feed url` prints.\n")


def _not_modified(environ: dict[str, Any], doc: FeedDoc) -> bool:
    """RFC 7232: If-None-Match (weak comparison) wins; else If-Modified-Since."""
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        return _etag_listed(if_none_match, doc.etag)
    since_text = environ.get("HTTP_IF_MODIFIED_SINCE")
    if not since_text:
        return False
    try:
        since = parsedate_to_datetime(since_text)
    except (TypeError, ValueError, IndexError):
        return False
    if since.tzinfo is None:  # "-0000" means UTC without a claim about the local zone
        since = since.replace(tzinfo=UTC)
    return doc.last_modified.replace(microsecond=0) <= since


def _etag_listed(header: str, etag: str) -> bool:
    """Whether the If-None-Match list names ``etag`` (W/ ignored) or is ``*``."""
    mine = etag.removeprefix("W/")
    header = header.strip().strip(",")
    position = 0
    while position < len(header):
        match = _ETAG.match(header, position)
        if match is None or match.end() == position:
            return False
        if match.group(3) or match.group(2) == mine:
            return True
        position = match.end()
    return False


def _health(health: Callable[[], tuple[bool, dict]], method: str) -> Response:
    try:
        ok, info = health()
        body = json.dumps(info, default=str).encode()
    except Exception:
        log.exception("feed: the health check failed")
        ok, body = False, json.dumps({"ok": False, "error": "health check failed"}).encode()
    status = "200 OK" if ok else "503 Service Unavailable"
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    return status, headers, b"" if method == "HEAD" else body


def _metrics(metrics: Metrics, method: str) -> Response:
    body, content_type = metrics.render()
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    return "200 OK", headers, b"" if method == "HEAD" else body


def _not_found() -> Response:
    return _plain("404 Not Found", "not found\n")


def _plain(status: str, text: str) -> Response:
    body = text.encode()
    return status, [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
    ], body


class _RedactPaths(logging.Filter):
    """Waitress puts request paths in some messages: hide the token there too."""

    _PATH = re.compile(r"(?<![:/])/\S*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._PATH.sub(lambda m: redact_path(m.group(0)), message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _quiet_waitress() -> None:
    logger = logging.getLogger("waitress")
    logger.setLevel(logging.WARNING)
    if not any(isinstance(f, _RedactPaths) for f in logger.filters):
        logger.addFilter(_RedactPaths())


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class _GuardedChannel(HTTPChannel):
    """A waitress channel that knows since when its current request has been arriving."""

    #: monotonic time the first byte of the request being received arrived (None: none is)
    request_began: float | None = None
    #: monotonic time of the last bytes received (or of the accept)
    last_seen: float = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.last_seen = time.monotonic()
        super().__init__(*args, **kwargs)

    def received(self, data: bytes) -> bool:
        self.last_seen = time.monotonic()
        if self.request_began is None and data:
            self.request_began = self.last_seen
        done = super().received(data)
        if self.request is None:  # nothing half-received left over
            self.request_began = None
        return done

    @property
    def waiting_since(self) -> float:
        return self.request_began if self.request_began is not None else self.last_seen

    @property
    def evictable(self) -> bool:
        """No request of it is in service and it is not closing already."""
        return not self.requests and not self.will_close and self.connected


class _GuardedServer(TcpWSGIServer):
    """Waitress's TCP server with a deadline per request and room for new clients.

    ``maintenance`` (every ``cleanup_interval``) also closes a connection whose request has
    been arriving for longer than ``request_timeout``; at ``connection_limit`` the listener
    does not stop accepting (waitress's way, which lets 100 slow clients lock everyone out)
    but closes the connection that has waited longest, without a request in service.
    """

    channel_class = _GuardedChannel
    request_timeout: float = REQUEST_TIMEOUT
    _full = False

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        cutoff = time.monotonic() - self.request_timeout
        for channel in list(self.active_channels.values()):
            if (isinstance(channel, _GuardedChannel) and channel.evictable
                    and channel.request_began is not None and channel.request_began < cutoff):
                channel.will_close = True

    def readable(self) -> bool:
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        if not self.accepting:
            return False
        if len(self._map) < self.adj.connection_limit:
            self._full = False
            return True
        # at the limit: listen on only while some connection could give way (else a waiting
        # client would wake the loop for nothing, again and again)
        return self._victim() is not None

    def handle_accept(self) -> None:
        if len(self._map) >= self.adj.connection_limit:
            victim = self._victim()
            if victim is None:
                return
            if not self._full:
                self._full = True
                log.warning("feed: %d connections open (the limit); closing the ones that "
                            "wait longest without a request in service to make room",
                            len(self._map))
            victim.will_close = True  # closed in this turn of the loop: the count holds
        super().handle_accept()

    def _victim(self) -> _GuardedChannel | None:
        """The connection that has waited longest without a request in service; one still
        receiving an answer goes last (its client did nothing wrong yet)."""
        victims = [c for c in list(self._map.values())
                   if isinstance(c, _GuardedChannel) and c.evictable]
        if not victims:
            return None
        return min(victims, key=lambda c: (bool(c.total_outbufs_len), c.waiting_since))


class FeedServer:
    """Waitress in a background thread; binds at construction so :attr:`port` is known."""

    def __init__(
        self,
        app: WSGIApp,
        host: str,
        port: int,
        *,
        channel_timeout: float = 10.0,
        request_timeout: float = REQUEST_TIMEOUT,
        connection_limit: int = CONNECTION_LIMIT,
        threads: int = 4,
    ) -> None:
        _quiet_waitress()
        self.host = host
        self._map: dict[int, Any] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        adj = Adjustments(
            listen=f"{_bracket(host)}:{port}",
            threads=threads,
            # waitress takes whole seconds and checks idle channels every cleanup_interval:
            # check every second so a stalled client goes within about channel_timeout + 1 s.
            channel_timeout=max(1, math.ceil(channel_timeout)),
            cleanup_interval=1,
            connection_limit=connection_limit,
            max_request_header_size=MAX_REQUEST_HEADER_SIZE,
            max_request_body_size=MAX_REQUEST_BODY_SIZE,
            clear_untrusted_proxy_headers=True,
            ident="clientlove",
            expose_tracebacks=False,
            log_socket_errors=False,
            asyncore_use_poll=True,
        )
        self._dispatcher = ThreadedTaskDispatcher()
        self._dispatcher.set_thread_count(threads)
        self._servers: list[_GuardedServer] = []
        try:
            for sockinfo in adj.listen:
                server = _GuardedServer(app, map=self._map, dispatcher=self._dispatcher,
                                        adj=adj, sockinfo=sockinfo)
                server.request_timeout = request_timeout
                self._servers.append(server)
        except BaseException:
            self._close()
            raise
        self.port = int(self._servers[0].effective_port)
    @property
    def url(self) -> str:
        return f"http://{_bracket(self.host)}:{self.port}"

    def start(self) -> None:
        """Serve in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            raise RuntimeError("FeedServer already started")
        self._thread = threading.Thread(target=self._run, name="clientlove-feed", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, finish the requests in flight, close every socket. Idempotent."""
        self._stopping.set()
        if self._thread is None:
            self._close()
            return
        for item in list(self._map.values()):
            if isinstance(item, Trigger):  # wake the poll loop now rather than in a second
                # the loop may have seen the flag and closed the trigger meanwhile: then it is
                # ending anyway
                with contextlib.suppress(OSError):
                    item.pull_trigger()
                break
        self._thread.join(timeout)

    def _run(self) -> None:
        # The loop and the sockets live in this thread only; stop() just asks and waits.
        try:
            while self._map and not self._stopping.is_set():
                wasyncore.loop(timeout=1.0, map=self._map, use_poll=True, count=1)
        finally:
            self._close()

    def _close(self) -> None:
        self._dispatcher.shutdown(timeout=5)
        wasyncore.close_all(self._map)
