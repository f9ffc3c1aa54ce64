"""ICS sources: local files and http(s) URLs, read only when they changed."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from daemon.model import ReadScope
from providers import ics
from providers.base import AuthError, BadData, NotFound, Transient
from providers.ics import IcsSource

TZ = ZoneInfo("Europe/London")
BODY = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n"
    b"BEGIN:VEVENT\r\nUID:m1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\n"
    b"SUMMARY:Acme review\r\nATTENDEE:mailto:jane.doe@acme.example\r\nEND:VEVENT\r\n"
    b"END:VCALENDAR\r\n"
)


def scope(needles=("acme.example",)) -> ReadScope:
    return ReadScope(start=datetime(2025, 1, 1, tzinfo=TZ), end=datetime(2027, 1, 1, tzinfo=TZ),
                     tz=TZ, needles=tuple(needles))


class FeedServer:
    """A loopback calendar feed with ETag/Last-Modified and switchable faults."""

    def __init__(self) -> None:
        self.body = BODY
        self.status = 200
        self.requests: list[dict[str, str]] = []
        self.password: str | None = None
        self.cut_at: int | None = None  # send only this many bytes of the body, then hang up
        owner = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                owner.requests.append(dict(self.headers))
                if owner.password is not None:
                    token = base64.b64encode(f"me:{owner.password}".encode()).decode()
                    if self.headers.get("Authorization") != f"Basic {token}":
                        self.send_response(401)
                        self.send_header("WWW-Authenticate", 'Basic realm="cal"')
                        self.end_headers()
                        return
                if owner.status != 200:
                    self.send_response(owner.status)
                    self.send_header("Retry-After", "7")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                etag = '"' + hashlib.sha256(owner.body).hexdigest()[:12] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/calendar")
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", "Mon, 05 Jan 2026 10:00:00 GMT")
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body[: owner.cut_at])
                if owner.cut_at is not None:
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cal.ics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    server = FeedServer()
    yield server
    server.close()


def test_file_is_read_then_skipped_while_unchanged(tmp_path: Path):
    path = tmp_path / "cal.ics"
    path.write_bytes(BODY)
    source = IcsSource("work", path=path)
    first = source.changes(None, scope())
    assert first.full and [e.uid for e in first.upserted] == ["m1"]
    second = source.changes(first.cursor, scope())
    assert not second.full and not second.upserted
    # touched but same content: not parsed again either
    os.utime(path, ns=(1, 1))
    third = source.changes(second.cursor, scope())
    assert not third.full and not third.upserted
    path.write_bytes(BODY.replace(b"Acme review", b"Acme planning"))
    fourth = source.changes(third.cursor, scope())
    assert fourth.full and fourth.upserted[0].summary == "Acme planning"


def test_new_needles_mean_a_new_read(tmp_path: Path):
    path = tmp_path / "cal.ics"
    path.write_bytes(BODY)
    source = IcsSource("work", path=path)
    first = source.changes(None, scope())
    again = source.changes(first.cursor, scope(("acme.example", "globex.example")))
    assert again.full


def test_missing_file_is_not_found(tmp_path: Path):
    with pytest.raises(NotFound, match="work"):
        IcsSource("work", path=tmp_path / "nope.ics").changes(None, scope())


def test_url_conditional_get(feed: FeedServer):
    source = IcsSource("feed", url=feed.url)
    first = source.changes(None, scope())
    assert first.full and len(first.upserted) == 1
    second = source.changes(first.cursor, scope())
    assert not second.full and not second.upserted
    assert feed.requests[1].get("If-None-Match")
    assert feed.requests[1].get("If-Modified-Since") == "Mon, 05 Jan 2026 10:00:00 GMT"
    feed.body = BODY.replace(b"Acme review", b"Acme steering")
    third = source.changes(second.cursor, scope())
    assert third.full and third.upserted[0].summary == "Acme steering"


def test_url_basic_auth_and_wrong_password(feed: FeedServer):
    feed.password = "s3cret-pa55"
    good = IcsSource("feed", url=feed.url, username="me", secret=lambda: "s3cret-pa55")
    assert good.changes(None, scope()).full
    bad = IcsSource("feed", url=feed.url, username="me", secret=lambda: "wrong-guess")
    with pytest.raises(AuthError) as err:
        bad.changes(None, scope())
    assert "wrong-guess" not in str(err.value) and "feed" in str(err.value)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_trouble_is_transient_with_retry_after(feed: FeedServer, status: int):
    feed.status = status
    with pytest.raises(Transient) as err:
        IcsSource("feed", url=feed.url).changes(None, scope())
    assert err.value.retry_after == 7


def test_unreachable_url_is_transient():
    with pytest.raises(Transient):
        IcsSource("feed", url="http://127.0.0.1:9/none.ics", timeout=2).changes(None, scope())


def _big_body(events: int) -> bytes:
    """A calendar of ``events`` events, one in every 500 naming Acme."""
    blocks = [
        f"BEGIN:VEVENT\r\nUID:big-{n}\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:2026{1 + n % 12:02d}{1 + n % 28:02d}T100000Z\r\n"
        f"SUMMARY:{'Acme sync' if n % 500 == 0 else 'Dentist'} {n}\r\n"
        f"DESCRIPTION:{'x' * 300}\r\nEND:VEVENT\r\n"
        for n in range(events)
    ]
    return BODY.replace(b"END:VCALENDAR", "".join(blocks).encode() + b"END:VCALENDAR")


def test_big_download_is_spooled_and_read_like_the_file(feed: FeedServer, tmp_path: Path):
    """A feed over the in-memory spool size is streamed to a temporary file; it reads exactly
    as the same bytes read from a local file."""
    feed.body = _big_body(25_000)
    assert len(feed.body) > ics.SPOOL_IN_MEMORY
    (tmp_path / "cal.ics").write_bytes(feed.body)
    by_url = IcsSource("feed", url=feed.url).changes(None, scope(("acme",)))
    by_file = IcsSource("feed", path=tmp_path / "cal.ics").changes(None, scope(("acme",)))
    assert len(by_url.upserted) == 51 and by_url.upserted == by_file.upserted


def test_cut_off_download_is_transient_and_keeps_the_cursor(feed: FeedServer):
    """A body shorter than its Content-Length is a network fault, not a calendar: nothing
    is read from it, and the next try downloads again."""
    source = IcsSource("feed", url=feed.url)
    first = source.changes(None, scope())
    feed.body = BODY.replace(b"Acme review", b"Acme steering")
    feed.cut_at = len(feed.body) // 2
    with pytest.raises(Transient, match="feed"):
        source.changes(first.cursor, scope())
    feed.cut_at = None
    again = source.changes(first.cursor, scope())
    assert again.full and again.upserted[0].summary == "Acme steering"


def test_runaway_download_is_refused(feed: FeedServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ics, "MAX_DOWNLOAD", 4096)
    feed.body = _big_body(100)
    with pytest.raises(BadData, match="over"):
        IcsSource("feed", url=feed.url).changes(None, scope())
