"""Hostile and broken servers (issue 17, points 3, 5, 6, 7): a loopback server that answers
as a captive portal, a slow or runaway server, or a CalDAV server with odd answers would, and
the hostile cases that run the real sources, cycle and CLI against it.

:class:`OddServer` is a small but real CalDAV collection (sync-collection, calendar-multiget,
a ctag PROPFIND, GET of an ICS feed) whose ``mode`` says how it misbehaves; the tests in
tests/test_odd_servers.py use it too.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

from tests.hostile import case

#: The collection every odd server serves.
COLLECTION = "/dav/me/work/"
#: The secret of the ICS feed URL the odd server serves (it must never reach any output).
FEED_SECRET = "f33d-s3cret-9c1b7e"
FEED_PATH = f"/private/{FEED_SECRET}/basic.ics?token={FEED_SECRET}"

MODES = ("calendar", "html", "text", "notdav", "entity", "drip", "drip-headers", "hrefs",
         "bigdata", "doctype-bomb")


def meeting(uid: str, start: datetime, summary: str, attendee: str) -> str:
    """One VCALENDAR holding one meeting (what a CalDAV object is)."""
    stamp = start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//odd//server//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{stamp}\r\nDURATION:PT1H\r\n"
            f"SUMMARY:{summary}\r\nATTENDEE:mailto:{attendee}\r\nEND:VEVENT\r\n"
            "END:VCALENDAR\r\n")


class OddServer:
    """A loopback CalDAV collection and ICS feed whose ``mode`` picks the misbehaviour.

    ``calendar``: a well-behaved collection of ``objects`` (href name -> calendar text).
    ``html``/``text``: every request answered ``200`` with a login page / plain text.
    ``notdav``: ``207`` with XML that is not a DAV multistatus.
    ``entity``: multiget answers with a DOCTYPE whose entity sits in the calendar-data of
    ``entity_object``. ``doctype-bomb``: a billion-laughs DOCTYPE before the multistatus.
    ``drip``/``drip-headers``: the answer's body / headers one byte every ``drip`` seconds.
    ``hrefs``: a sync answer of endless hrefs. ``bigdata``: a multiget whose calendar-data
    never ends.
    """

    def __init__(self, objects: dict[str, str] | None = None, *, mode: str = "calendar",
                 drip: float = 0.2, entity_object: str = "") -> None:
        self.objects = dict(objects or {})
        self.mode = mode
        self.drip = drip
        self.entity_object = entity_object
        self.requests: list[tuple[str, str]] = []
        self.sent = 0  # bytes of endless answers sent, for the report
        self._stop = threading.Event()
        handler = type("Handler", (_Handler,), {"odd": self})
        self.httpd = _Quiet(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def url(self) -> str:
        return self.base + COLLECTION

    @property
    def feed_url(self) -> str:
        return self.base + FEED_PATH

    @property
    def token(self) -> str:
        """The sync token: changes whenever the objects do."""
        digest = abs(hash(json.dumps(self.objects, sort_keys=True))) % 10**12
        return f"http://odd.example/sync/{digest}"

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _Quiet(ThreadingHTTPServer):
    """A client hanging up mid-answer is what the tests do: no traceback on stderr."""

    def handle_error(self, request: object, client_address: object) -> None:
        return None


class _Handler(BaseHTTPRequestHandler):
    odd: OddServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        return None

    # -- dispatch ---------------------------------------------------------------------------
    def do_REPORT(self) -> None:
        self._any()

    def do_PROPFIND(self) -> None:
        self._any()

    def do_GET(self) -> None:
        self._any()

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        odd = self.odd
        odd.requests.append((self.command, self.path))
        mode = odd.mode
        if mode == "html":
            return self._send(200, "text/html; charset=utf-8",
                              b"<!DOCTYPE html><html><head><title>Hotel Wi-Fi</title></head>"
                              b"<body><form>Accept the terms to go online</form></body></html>")
        if mode == "text":
            return self._send(200, "text/plain", b"OK\n")
        if mode == "notdav":
            return self._send(207, "application/xml",
                              b'<?xml version="1.0"?><result><ok>yes</ok></result>')
        if mode == "drip-headers":
            return self._drip_headers()
        if self.command == "GET":
            return self._feed()
        if self.command == "PROPFIND":
            return self._multistatus([_response(COLLECTION, '<CS:getctag xmlns:CS="http://'
                                                f'calendarserver.org/ns/">{odd.token}'
                                                "</CS:getctag>")])
        if "sync-collection" in body:
            return self._sync()
        return self._multiget(body)

    # -- answers ----------------------------------------------------------------------------
    def _send(self, status: int, kind: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _multistatus(self, responses: list[str], top: str = "", doctype: str = "") -> None:
        data = (f'<?xml version="1.0" encoding="utf-8"?>{doctype}'
                '<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
                + "".join(responses) + top + "</D:multistatus>").encode()
        if self.odd.mode == "drip":
            return self._drip_body(data)
        self._send(207, "application/xml; charset=utf-8", data)

    def _sync(self) -> None:
        odd = self.odd
        if odd.mode == "hrefs":
            return self._endless(_endless_hrefs())
        responses = [_response(f"{COLLECTION}{name}", '<D:getetag>"1"</D:getetag>')
                     for name in sorted(odd.objects)]
        self._multistatus(responses, f"<D:sync-token>{odd.token}</D:sync-token>")

    def _multiget(self, body: str) -> None:
        odd = self.odd
        if odd.mode == "bigdata":
            return self._endless(_endless_data())
        wanted = [h.split("</D:href>")[0] for h in body.split("<D:href>")[1:]]
        responses = []
        doctype = ""
        for href in wanted:
            name = href.rsplit("/", 1)[-1]
            text = odd.objects.get(name)
            if text is None:
                responses.append(f"<D:response><D:href>{href}</D:href>"
                                 "<D:status>HTTP/1.1 404 Not Found</D:status></D:response>")
                continue
            data = escape(text)
            if odd.mode == "entity" and name == odd.entity_object:
                doctype = '<!DOCTYPE D:multistatus [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                data = data.replace("SUMMARY:", "SUMMARY:&xxe; ", 1)
            if odd.mode == "doctype-bomb":
                doctype = ("<!DOCTYPE D:multistatus [<!ENTITY a \"lol\">"
                           + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
                                     for p, c in zip("abcdefgh", "bcdefghi", strict=True))
                           + "]>")
                data = data.replace("SUMMARY:", "SUMMARY:&i; ", 1)
            responses.append(_response(href, '<D:getetag>"1"</D:getetag><C:calendar-data>'
                                       f"{data}</C:calendar-data>"))
        self._multistatus(responses, doctype=doctype)

    def _feed(self) -> None:
        text = "".join(self.odd.objects.values()).replace(
            "END:VCALENDAR\r\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//odd//server//EN\r\n",
            "")
        data = (text or "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n").encode()
        if self.odd.mode == "drip":
            return self._drip_body(data)
        self._send(200, "text/calendar", data)

    def _drip_body(self, data: bytes) -> None:
        """Headers at once, then the body a byte at a time (padded so it never ends soon)."""
        padded = data + b" " * 100_000
        self.send_response(200 if self.command == "GET" else 207)
        self.send_header("Content-Type", "text/calendar" if self.command == "GET"
                         else "application/xml")
        self.send_header("Content-Length", str(len(padded)))
        self.end_headers()
        self._trickle(padded)

    def _drip_headers(self) -> None:
        """The status line, then one header line byte by byte, endlessly."""
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        self._trickle(b"X-Wait: " + b"z" * 100_000)

    def _trickle(self, data: bytes) -> None:
        odd = self.odd
        for i in range(len(data)):
            if odd.stopping:
                return
            try:
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
            except OSError:
                return
            odd.sent += 1
            time.sleep(odd.drip)  # the hostile input itself: a server this slow

    def _endless(self, pieces: Iterator[bytes]) -> None:
        """A 207 without a length that never ends (until the client hangs up)."""
        self.send_response(207)
        self.send_header("Content-Type", "application/xml; charset=utf-8")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for piece in pieces:
            if self.odd.stopping:
                return
            try:
                self.wfile.write(piece)
            except OSError:
                return
            self.odd.sent += len(piece)


def _response(href: str, props: str) -> str:
    return (f"<D:response><D:href>{href}</D:href><D:propstat><D:prop>{props}</D:prop>"
            "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>")


def _endless_hrefs() -> Iterator[bytes]:
    yield (b'<?xml version="1.0" encoding="utf-8"?>'
           b'<D:multistatus xmlns:D="DAV:">')
    block = "".join(_response(f"{COLLECTION}{i:09d}-0000-0000-0000-000000000000.ics",
                              f'<D:getetag>"{i}"</D:getetag>') for i in range(500)).encode()
    while True:
        yield block


def _endless_data() -> Iterator[bytes]:
    yield (f'<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:" '
           f'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:response><D:href>{COLLECTION}big.ics'
           "</D:href><D:propstat><D:prop><C:calendar-data>BEGIN:VCALENDAR\r\n").encode()
    line = b"X-PAD:" + b"p" * 1000 + b"\r\n"
    block = line * 256
    while True:
        yield block


# -- the cases ----------------------------------------------------------------------------------

TODAY = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ACME = meeting("m-acme", TODAY - timedelta(days=7), "Acme review", "jane@acme.example")


def _scope():
    from daemon.model import ReadScope

    return ReadScope(start=TODAY - timedelta(days=400), end=TODAY + timedelta(days=120), tz=UTC,
                     needles=("acme.example", "@clientlove"))


def _expect(call, kind: type, *words: str) -> str:
    """Run ``call``; it must raise ``kind`` whose message has every word and no secret."""
    try:
        call()
    except kind as exc:
        text = str(exc)
        for word in words:
            assert word in text, f"{word!r} not in {text!r}"
        assert FEED_SECRET not in text and "/dav/me" not in text, f"URL not redacted: {text}"
        return text
    except Exception as exc:  # the point: any other type is the bug
        raise AssertionError(f"{type(exc).__name__} instead of {kind.__name__}: {exc}") from None
    raise AssertionError(f"no {kind.__name__} raised")


def _dav_source(server: OddServer, **kwargs):
    from providers.caldav import CalDavSource

    return CalDavSource("work-dav", server.url, **kwargs)


def _odd_report(mode: str, words: tuple[str, ...]) -> tuple[int, str]:
    from providers.base import BadData

    server = OddServer({"m-acme.ics": ACME}, mode=mode)
    try:
        text = _expect(lambda: _dav_source(server).changes(None, _scope()), BadData, *words)
    finally:
        server.close()
    return 0, f"BadData: {text.split(': ', 2)[-1][:70]}"


@case("dav-captive-portal", "CalDAV REPORT answered 200 text/html (a hotel Wi-Fi login page)")
def dav_captive_portal(scratch: Path) -> tuple[int, str]:
    return _odd_report("html", ("HTML page",))


@case("dav-plain-text", "CalDAV REPORT answered 200 text/plain")
def dav_plain_text(scratch: Path) -> tuple[int, str]:
    return _odd_report("text", ("text/plain",))


@case("dav-207-not-dav", "CalDAV REPORT answered 207 with XML that is not a multistatus")
def dav_207_not_dav(scratch: Path) -> tuple[int, str]:
    return _odd_report("notdav", ("not a DAV multistatus",))


@case("dav-xml-entity", "calendar-data with a DOCTYPE entity (&xxe; -> file:///etc/passwd)")
def dav_xml_entity(scratch: Path) -> tuple[int, str]:
    other = meeting("m-acme-2", TODAY - timedelta(days=3), "Acme call", "jane@acme.example")
    server = OddServer({"m-acme.ics": ACME, "x.ics": other.replace("m-acme-2", "evil-1")},
                       mode="entity", entity_object="x.ics")
    try:
        scope = _scope()
        changes = _dav_source(server).changes(None, scope)
        uids = [e.uid for e in changes.upserted]
    finally:
        server.close()
    assert uids == ["m-acme"], uids
    warned = [w for w in scope.warnings if "evil-1" in w and "&xxe;" in w]
    assert warned, scope.warnings
    assert not any("root:" in w for w in scope.warnings), "an entity was resolved"
    return len(other), "warning names UID evil-1; entity never resolved; the rest read"


@case("dav-billion-laughs", "multiget answer with a billion-laughs DOCTYPE in calendar-data")
def dav_billion_laughs(scratch: Path) -> tuple[int, str]:
    from providers.base import BadData

    server = OddServer({"m-acme.ics": ACME}, mode="doctype-bomb")
    try:
        _expect(lambda: _dav_source(server).changes(None, _scope()), BadData,
                "entities that would multiply")
    finally:
        server.close()
    return 1200, "BadData for the source; the entities never expanded"


@case("dav-drip", "CalDAV server sending its answer one byte every 0.2 s (deadline 2 s)")
def dav_drip(scratch: Path) -> tuple[int, str]:
    from providers.base import TooSlow

    server = OddServer({"m-acme.ics": ACME}, mode="drip")
    try:
        text = _expect(lambda: _dav_source(server, deadline=2.0).changes(None, _scope()),
                       TooSlow, "2 s")
    finally:
        server.close()
    return server.sent, f"TooSlow: {text.split(': ', 2)[-1][:60]}"


@case("dav-drip-headers", "CalDAV server sending one header byte every 0.2 s (deadline 2 s)")
def dav_drip_headers(scratch: Path) -> tuple[int, str]:
    from providers.base import TooSlow

    server = OddServer({}, mode="drip-headers")
    try:
        _expect(lambda: _dav_source(server, deadline=2.0).changes(None, _scope()), TooSlow,
                "2 s")
    finally:
        server.close()
    return server.sent, "TooSlow after the deadline, while still in the headers"


@case("ics-drip", "ICS feed URL sending one byte every 0.2 s (deadline 2 s), secret in URL")
def ics_drip(scratch: Path) -> tuple[int, str]:
    from providers.base import TooSlow
    from providers.ics import IcsSource

    server = OddServer({"m-acme.ics": ACME}, mode="drip")
    try:
        text = _expect(lambda: IcsSource("feed", url=server.feed_url, deadline=2.0)
                       .changes(None, _scope()), TooSlow, "2 s", "http://127.0.0.1")
    finally:
        server.close()
    return server.sent, f"TooSlow, URL shown as {text.split()[2]}"


@case("dav-endless-hrefs", "sync-collection answer of endless hrefs (cap 100,000 objects)")
def dav_endless_hrefs(scratch: Path) -> tuple[int, str]:
    from providers.base import BadData

    server = OddServer({}, mode="hrefs")
    try:
        _expect(lambda: _dav_source(server).changes(None, _scope()), BadData,
                "more than 100,000 objects")
    finally:
        server.close()
    return 0, f"refused at the cap while streaming ({server.sent >> 20} MB sent)"


@case("dav-endless-data", "multiget whose calendar-data never ends (parser limit 10 MB)")
def dav_endless_data(scratch: Path) -> tuple[int, str]:
    from providers.base import BadData

    server = OddServer({"big.ics": ACME}, mode="bigdata")
    try:
        _expect(lambda: _dav_source(server).changes(None, _scope()), BadData,
                "over the XML parser's limits")
    finally:
        server.close()
    return 0, f"refused at the cap while streaming ({server.sent >> 20} MB sent)"


@case("dav-many-matching", "CalDAV calendar of 1,500 objects, every one matching a client")
def dav_many_matching(scratch: Path) -> tuple[int, str]:
    from daemon.state import State

    objects = {f"e{i:05d}.ics": meeting(f"e{i:05d}", TODAY - timedelta(days=i % 300, hours=1),
                                        f"Acme sync {i}", "jane@acme.example")
               for i in range(1_500)}
    size = sum(len(t) for t in objects.values())
    server = OddServer(objects)
    try:
        changes = _dav_source(server).changes(None, _scope())
        state = State(scratch / "state.sqlite")
        count = state.apply_changes("work-dav", changes, TODAY)
        state.close()
    finally:
        server.close()
    assert count == 1_500, count
    return size, "1,500 events streamed into the state in batches"
