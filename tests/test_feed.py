"""The feed server on loopback: the token route, validators, health, metrics and abuse.

Traversal and oversize probes go through raw sockets: ``requests`` (urllib3) would normalise
``..`` away before sending, which would test the client, not the server.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest
import requests

from daemon.feed import (
    FeedDoc,
    FeedServer,
    check_token,
    feed_doc,
    feed_url,
    http_date,
    make_app,
    redact_path,
)
from daemon.metrics import Metrics

TOKEN = "Zq3-x_9LmN0pR7sT2uV5wY8aB1cD4eF6"
MODIFIED = datetime(2026, 11, 3, 9, 30, 15, 123456, tzinfo=UTC)
BODY = (
    b"BEGIN:VCALENDAR\r\n"
    b"VERSION:2.0\r\n"
    b"PRODID:-//clientlove//feed test//EN\r\n"
    b"NAME:Client love\r\n"
    b"REFRESH-INTERVAL;VALUE=DURATION:PT1H\r\n"
    b"X-PUBLISHED-TTL:PT1H\r\n"
    b"BEGIN:VEVENT\r\n"
    b"UID:cl-acme-1@clientlove\r\n"
    b"DTSTAMP:20261103T093015Z\r\n"
    b"DTSTART;VALUE=DATE:20261110\r\n"
    b"SUMMARY:Client love: Acme\r\n"
    b"END:VEVENT\r\n"
    b"END:VCALENDAR\r\n"
)
LEAKS = (b"root:", b"/bin/", b"[extensions]", b"def ")


class Fake:
    """The service's side of the app: what feed() and health() answer right now."""

    def __init__(self) -> None:
        self.doc: FeedDoc | None = feed_doc(BODY, MODIFIED)
        self.health: tuple[bool, dict] = (True, {"ok": True, "last_success": "2026-11-03"})
        self.fail = False

    def feed(self) -> FeedDoc | None:
        if self.fail:
            raise RuntimeError("the feed broke")
        return self.doc

    def check(self) -> tuple[bool, dict]:
        if self.fail:
            raise RuntimeError("the health check broke")
        return self.health


@dataclass
class Plan:
    reminder_day: date | None
    overdue: bool = False


@dataclass
class SourceInfo:
    name: str
    error: str | None = None


@dataclass
class Report:
    now: datetime
    plans: list[Plan] = field(default_factory=list)
    sources: list[SourceInfo] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    target_error: str | None = None
    refused: str | None = None
    writes: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors and self.refused is None


@pytest.fixture(scope="module")
def fake() -> Fake:
    return Fake()


@pytest.fixture(scope="module")
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture(scope="module")
def server(fake: Fake, metrics: Metrics) -> Iterator[FeedServer]:
    app = make_app(TOKEN, fake.feed, fake.check, metrics)
    srv = FeedServer(app, "127.0.0.1", 0)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _reset(request) -> None:
    if "fake" in request.fixturenames:
        f = request.getfixturevalue("fake")
        f.doc, f.fail = feed_doc(BODY, MODIFIED), False
        f.health = (True, {"ok": True, "last_success": "2026-11-03"})


def get(server: FeedServer, path: str, **kwargs) -> requests.Response:
    return requests.get(server.url + path, timeout=5, allow_redirects=False, **kwargs)


def raw(server: FeedServer, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes as they are and read until the server closes (or stops talking)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def raw_get(server: FeedServer, target: str, method: str = "GET") -> tuple[int, bytes]:
    answer = raw(server, f"{method} {target} HTTP/1.1\r\nHost: localhost\r\n"
                         "Connection: close\r\n\r\n".encode("latin-1"))
    return int(answer.split(b" ", 2)[1]), answer


def assert_alive(server: FeedServer) -> None:
    response = get(server, f"/{TOKEN}/clientlove.ics")
    assert response.status_code == 200
    assert response.content == BODY


FEED = f"/{TOKEN}/clientlove.ics"


# --- the feed -----------------------------------------------------------------------------


def test_feed_200_with_body_and_headers(server):
    response = get(server, FEED)
    assert response.status_code == 200
    assert response.content == BODY
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert response.headers["Content-Length"] == str(len(BODY))
    assert response.headers["ETag"] == feed_doc(BODY, MODIFIED).etag
    assert response.headers["ETag"].startswith('"') and response.headers["ETag"].endswith('"')
    assert response.headers["Last-Modified"] == "Tue, 03 Nov 2026 09:30:15 GMT"
    assert response.headers["Cache-Control"] == "private, max-age=300"
    assert response.headers["Server"] == "clientlove"
    assert b"REFRESH-INTERVAL;VALUE=DURATION:PT1H" in response.content


def test_query_string_is_ignored(server):
    assert get(server, FEED + "?x=1").content == BODY


def test_head_is_headers_only(server):
    response = requests.head(server.url + FEED, timeout=5)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == str(len(BODY))
    assert response.headers["ETag"] == feed_doc(BODY, MODIFIED).etag


@pytest.mark.parametrize("header", [
    "{etag}",
    '"nope", {etag}',
    '"nope",{etag} , "other"',
    "W/{etag}",
    '"nope", W/{etag}',
    "*",
])
def test_if_none_match_304(server, header):
    etag = feed_doc(BODY, MODIFIED).etag
    response = get(server, FEED, headers={"If-None-Match": header.format(etag=etag)})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == etag
    assert "Content-Length" not in response.headers or response.headers["Content-Length"] == "0"


@pytest.mark.parametrize("header", ['"nope"', '"nope", W/"other"', "garbage", ""])
def test_if_none_match_other_200(server, header):
    response = get(server, FEED, headers={"If-None-Match": header})
    assert response.status_code == 200
    assert response.content == BODY


def test_if_modified_since(server):
    same = http_date(MODIFIED)
    assert get(server, FEED, headers={"If-Modified-Since": same}).status_code == 304
    later = http_date(MODIFIED + timedelta(days=1))
    assert get(server, FEED, headers={"If-Modified-Since": later}).status_code == 304
    earlier = http_date(MODIFIED - timedelta(seconds=1))
    assert get(server, FEED, headers={"If-Modified-Since": earlier}).status_code == 200
    assert get(server, FEED, headers={"If-Modified-Since": "yesterday"}).status_code == 200


def test_if_none_match_wins_over_if_modified_since(server):
    headers = {"If-None-Match": '"nope"', "If-Modified-Since": http_date(MODIFIED)}
    assert get(server, FEED, headers=headers).status_code == 200


def test_new_body_new_etag(server, fake):
    old = get(server, FEED).headers["ETag"]
    fake.doc = feed_doc(BODY.replace(b"Acme", b"Globex"), MODIFIED + timedelta(hours=1))
    response = get(server, FEED, headers={"If-None-Match": old})
    assert response.status_code == 200
    assert b"Globex" in response.content
    assert response.headers["ETag"] != old


def test_503_before_the_first_write(server, fake):
    fake.doc = None
    response = get(server, FEED)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "60"
    assert b"BEGIN:VCALENDAR" not in response.content


def test_feed_error_is_500_and_never_logs_the_token(server, fake, caplog):
    fake.fail = True
    with caplog.at_level(logging.INFO):
        response = get(server, FEED)
    assert response.status_code == 500
    assert TOKEN.encode() not in response.content
    assert "clientlove.ics" in caplog.text  # the error was logged ...
    assert TOKEN not in caplog.text  # ... without the token
    fake.fail = False
    assert_alive(server)


@pytest.mark.parametrize("path", [
    "/wrong-token-0123456789abcdef/clientlove.ics",
    f"/{TOKEN[:-1]}/clientlove.ics",
    f"/{TOKEN[:8]}/clientlove.ics",
    f"/{TOKEN}x/clientlove.ics",
    f"/{TOKEN.swapcase()}/clientlove.ics",
    f"/{TOKEN.upper()}/clientlove.ics",
    f"/{TOKEN}/clientlove.ics/extra",
    f"/{TOKEN}/clientlove.ics/",
    f"/x/{TOKEN}/clientlove.ics",
    f"/{TOKEN}/other.ics",
    f"/{TOKEN}/CLIENTLOVE.ICS",
    f"/{TOKEN}/",
    f"/{TOKEN}",
    "/clientlove.ics",
    "//clientlove.ics",
    f"/{TOKEN}%2Fclientlove.ics",
    "/",
    "/healthz/",
    "/metrics/x",
    "/favicon.ico",
])
def test_404_for_anything_but_the_exact_route(server, path):
    response = get(server, path)
    assert response.status_code == 404
    assert response.content == b"not found\n"
    assert b"BEGIN:VCALENDAR" not in response.content
    assert "ETag" not in response.headers


def test_wrong_token_answers_exactly_like_nonsense(server):
    near = get(server, f"/{TOKEN[:-1]}/clientlove.ics")
    far = get(server, "/nothing-like-it-at-all/x")
    assert (near.status_code, near.content) == (far.status_code, far.content)
    drop = {"Date"}
    assert ({k: v for k, v in near.headers.items() if k not in drop}
            == {k: v for k, v in far.headers.items() if k not in drop})


def test_token_check_is_constant_time_compare(monkeypatch, fake, metrics):
    import daemon.feed as feed_module

    seen = []
    real = feed_module.hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(feed_module.hmac, "compare_digest", spy)
    app = make_app(TOKEN, fake.feed, fake.check, metrics)
    statuses = []
    app({"REQUEST_METHOD": "GET", "PATH_INFO": "/abc/clientlove.ics",
         "REQUEST_URI": "/abc/clientlove.ics", "HTTP_HOST": "localhost"},
        lambda s, h: statuses.append(s))
    assert statuses == ["404 Not Found"]
    assert seen == [(b"abc", TOKEN.encode())]


# --- health and metrics ---------------------------------------------------------------------


def test_healthz_200_and_503(server, fake):
    response = get(server, "/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json() == {"ok": True, "last_success": "2026-11-03"}
    fake.health = (False, {"ok": False, "reason": "no success for 3 h"})
    response = get(server, "/healthz")
    assert response.status_code == 503
    assert response.json() == {"ok": False, "reason": "no success for 3 h"}
    fake.fail = True
    response = get(server, "/healthz")
    assert response.status_code == 503
    assert response.json()["ok"] is False


def test_metrics_after_observe(server, metrics):
    now = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    metrics.observe(Report(now, plans=[Plan(date(2026, 11, 4), overdue=True), Plan(None)],
                           sources=[SourceInfo("work")], writes=2), 1.5)
    response = get(server, "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.text
    for name in ("clientlove_cycles_total", "clientlove_cycle_failures_total",
                 "clientlove_writes_total", "clientlove_refused_cycles_total",
                 "clientlove_last_success_timestamp_seconds",
                 "clientlove_last_cycle_duration_seconds", "clientlove_clients_due",
                 "clientlove_clients_overdue", "clientlove_clients", "clientlove_up"):
        assert f"\n{name}" in text or text.startswith(name), name
    assert "clientlove_up 1.0" in text
    assert 'clientlove_cycle_failures_total{provider="work"} 0.0' in text
    assert "python_gc" not in text  # our own registry, not the global one


@pytest.mark.parametrize("path", [FEED, "/healthz", "/metrics"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_405_on_the_routes(server, path, method):
    response = requests.request(method, server.url + path, timeout=5, data=b"x")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert b"BEGIN:VCALENDAR" not in response.content


def test_post_to_a_wrong_token_is_404(server):
    response = requests.post(server.url + f"/{TOKEN[:-1]}/clientlove.ics", timeout=5)
    assert response.status_code == 404


# --- abuse ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [
    "/../etc/passwd",
    "/../../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E/%2E%2E/etc/passwd",
    "/.%2e/.%2e/etc/passwd",
    f"/{TOKEN}/../../etc/passwd",
    f"/{TOKEN}/clientlove.ics/../x",
    f"/{TOKEN}/clientlove.ics/..",
    f"/{TOKEN}/./clientlove.ics",
    f"/x/../{TOKEN}/clientlove.ics",
    f"/{TOKEN}/%2e%2e/{TOKEN}/clientlove.ics",
    "/..%2fetc%2fpasswd",
    "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/..\\..\\etc\\passwd",
    "/%5c..%5c..%5cetc%5cpasswd",
    f"/{TOKEN}\\clientlove.ics",
    "/etc/passwd%00.ics",
    f"/{TOKEN}/clientlove.ics%00",
    f"//{TOKEN}/clientlove.ics",
    f"/{TOKEN}//clientlove.ics",
    "//etc/passwd",
    "/metrics/../healthz",
    "/pyproject.toml",
    "/daemon/feed.py",
    "http://127.0.0.1/../etc/passwd",
])
def test_traversal_is_404_and_serves_no_file(server, target):
    status, answer = raw_get(server, target)
    assert status == 404
    assert not any(leak in answer for leak in LEAKS)
    assert b"BEGIN:VCALENDAR" not in answer


@pytest.mark.parametrize("target", ["/%ff%fe/clientlove.ics", f"/{TOKEN}/clientlove%c0%ae.ics"])
def test_undecodable_path_is_400(server, target):
    status, answer = raw_get(server, target)
    assert status == 400
    assert not any(leak in answer for leak in LEAKS)


def test_percent_encoded_token_is_404(server):
    # requests would decode %5A back to "Z" before sending: go raw. The token is compared on the
    # raw segment, so an encoded spelling of the right token is just another wrong token.
    status, answer = raw_get(server, f"/%{ord(TOKEN[0]):02X}{TOKEN[1:]}/clientlove.ics")
    assert status == 404
    assert b"BEGIN:VCALENDAR" not in answer


def test_absolute_form_request_target_still_needs_the_token(server):
    assert raw_get(server, f"http://127.0.0.1{FEED}")[0] == 200
    assert raw_get(server, f"http://127.0.0.1/{TOKEN[:-1]}/clientlove.ics")[0] == 404


def test_oversized_headers_are_refused(server):
    big = b"X-Junk: " + b"a" * (64 * 1024) + b"\r\n"
    answer = raw(server, f"GET {FEED} HTTP/1.1\r\nHost: localhost\r\n".encode() + big + b"\r\n")
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500
    assert b"BEGIN:VCALENDAR" not in answer
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 100) for i in range(400))
    answer = raw(server, f"GET {FEED} HTTP/1.1\r\nHost: localhost\r\n".encode() + many + b"\r\n")
    assert 400 <= int(answer.split(b" ", 2)[1]) < 500
    assert_alive(server)


def test_oversized_body_is_refused(server):
    answer = raw(server, b"POST /healthz HTTP/1.1\r\nHost: localhost\r\n"
                         b"Content-Length: 1000000\r\n\r\n" + b"z" * 100_000)
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500
    assert_alive(server)


def test_garbage_request_line(server):
    answer = raw(server, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
    assert answer == b"" or 400 <= int(answer.split(b" ", 2)[1]) < 500
    assert_alive(server)


def test_many_requests_on_one_connection(server):
    with requests.Session() as session:
        for _ in range(20):
            assert session.get(server.url + FEED, timeout=5).status_code == 200
            assert session.get(server.url + "/nope", timeout=5).status_code == 404


def test_server_still_answers_after_all_that(server):
    assert_alive(server)
    assert get(server, "/healthz").status_code == 200


# --- slow clients ---------------------------------------------------------------------------


@pytest.fixture
def slow_server(fake: Fake) -> Iterator[FeedServer]:
    srv = FeedServer(make_app(TOKEN, fake.feed, fake.check, Metrics()), "127.0.0.1", 0,
                     channel_timeout=2)
    srv.start()
    yield srv
    srv.stop()


#: How long a test waits for the server to cut a stalled or idle client off (channel timeout
#: 2 s, checked every second). "Cut off" can only be checked against some bound: ten times.
CUT_OFF = 30.0
HALF_A_REQUEST = b"GET /" + TOKEN[:10].encode()  # half a request line, then nothing


def _held(sock: socket.socket) -> bool:
    """Whether the server still holds the connection: nothing to read and not closed."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(CUT_OFF)


def test_stalled_client_does_not_hold_up_the_others(fake: Fake):
    """Others are served while a stalled client is still held (its channel timeout outlasts
    the test, so the order cannot depend on how loaded the machine is)."""
    srv = FeedServer(make_app(TOKEN, fake.feed, fake.check, Metrics()), "127.0.0.1", 0,
                     channel_timeout=CUT_OFF)
    srv.start()
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=CUT_OFF) as sock:
            sock.sendall(HALF_A_REQUEST)
            codes = [get(srv, FEED).status_code for _ in range(3)]
            assert _held(sock)
    finally:
        srv.stop()
    assert codes == [200, 200, 200]


def test_stalled_client_is_dropped_while_others_are_served(slow_server):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", slow_server.port), timeout=CUT_OFF) as sock:
        sock.sendall(HALF_A_REQUEST)
        assert get(slow_server, FEED).status_code == 200
        try:
            data = sock.recv(1024)
        except ConnectionResetError:
            data = b""
        closed_after = time.monotonic() - started
    assert data == b""  # closed without an answer
    assert closed_after >= 1.5  # not before its channel timeout (load only makes it later)
    assert get(slow_server, "/healthz").status_code == 200


def test_idle_keepalive_connection_is_closed(slow_server):
    with socket.create_connection(("127.0.0.1", slow_server.port), timeout=CUT_OFF) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        try:
            while sock.recv(65536):  # a TimeoutError here: never closed
                pass
        except ConnectionResetError:
            pass


def test_stop_is_prompt_and_idempotent(fake):
    srv = FeedServer(make_app(TOKEN, fake.feed, fake.check, Metrics()), "127.0.0.1", 0)
    srv.start()
    assert get(srv, FEED).status_code == 200
    srv.stop()
    srv.stop()
    # stop returned because the loop ended (woken at once), not because its join gave up
    assert srv._thread is not None and not srv._thread.is_alive()
    with pytest.raises(requests.ConnectionError):
        get(srv, FEED)


def test_without_a_token_health_and_metrics_serve_and_the_feed_says_why(fake):
    srv = FeedServer(make_app(None, fake.feed, fake.check, Metrics()), "127.0.0.1", 0)
    srv.start()
    try:
        assert get(srv, "/healthz").status_code == 200
        assert get(srv, "/metrics").status_code == 200
        for path in (FEED, "/anything-at-all/clientlove.ics"):
            reply = get(srv, path)
            assert reply.status_code == 503 and "clientlove feed token" in reply.text
            assert BODY not in reply.content
        assert get(srv, "/x/other.ics").status_code == 404
        assert requests.post(srv.url + FEED, timeout=5).status_code == 405
    finally:
        srv.stop()


# --- pure helpers ---------------------------------------------------------------------------


def test_feed_doc_etag_is_a_quoted_hash_prefix():
    doc = feed_doc(BODY, MODIFIED)
    assert doc.etag.startswith('"') and doc.etag.endswith('"') and len(doc.etag) > 16
    assert feed_doc(BODY, MODIFIED + timedelta(days=1)).etag == doc.etag
    assert feed_doc(BODY + b"\r\n", MODIFIED).etag != doc.etag
    with pytest.raises(ValueError):
        feed_doc(BODY, datetime(2026, 11, 3, 9, 30))


def test_feed_url():
    assert feed_url("127.0.0.1:8787", TOKEN) == (
        f"http://127.0.0.1:8787/{TOKEN}/clientlove.ics",
        f"webcal://127.0.0.1:8787/{TOKEN}/clientlove.ics",
    )
    assert feed_url("https://cal.example.com/love/", TOKEN) == (
        f"https://cal.example.com/love/{TOKEN}/clientlove.ics",
        f"webcal://cal.example.com/love/{TOKEN}/clientlove.ics",
    )


@pytest.mark.parametrize("token", ["", "short", "has/slash-0123456789", "sp ace-0123456789",
                                   "%2e%2e%2e%2e%2e%2e%2e%2e", "." * 20, "é" * 20])
def test_unusable_tokens_are_refused(token, fake, metrics):
    with pytest.raises(ValueError):
        check_token(token)
    with pytest.raises(ValueError):
        make_app(token, fake.feed, fake.check, metrics)


def test_redact_path():
    assert redact_path(f"/{TOKEN}/clientlove.ics?x=1") == "/***/clientlove.ics"
    assert redact_path("/healthz") == "/healthz"
    assert TOKEN not in redact_path(f"/{TOKEN}/../{TOKEN}")


def test_waitress_messages_are_redacted(server, caplog):
    with caplog.at_level(logging.INFO):
        logging.getLogger("waitress").error("Exception while serving %s", FEED)
        logging.getLogger("waitress").info("Client disconnected while serving %s", FEED)
    assert "Exception while serving /***/clientlove.ics" in caplog.text
    assert TOKEN not in caplog.text
    assert "Client disconnected" not in caplog.text  # waitress is held at WARNING


def test_metrics_observe_values():
    m = Metrics()
    value = m.registry.get_sample_value
    assert value("clientlove_up") == 1
    assert value("clientlove_last_success_timestamp_seconds") == 0
    now = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    failed = Report(
        now,
        plans=[Plan(date(2026, 11, 4)), Plan(date(2026, 11, 3), overdue=True), Plan(None)],
        sources=[SourceInfo("work", "timeout"), SourceInfo("home")],
        errors=["source work: timeout", "source work: again", "target cal: 503",
                "target cal: update cl-1: 500"],
        target_error="503",
        writes=4,
    )
    m.observe(failed, 2.5)
    assert value("clientlove_cycles_total") == 1
    assert value("clientlove_cycle_failures_total", {"provider": "work"}) == 1
    assert value("clientlove_cycle_failures_total", {"provider": "home"}) == 0
    assert value("clientlove_cycle_failures_total", {"provider": "target"}) == 1
    assert value("clientlove_writes_total") == 4
    assert value("clientlove_refused_cycles_total") == 0
    assert value("clientlove_last_success_timestamp_seconds") == 0
    assert value("clientlove_last_cycle_duration_seconds") == 2.5
    assert value("clientlove_clients") == 3
    assert value("clientlove_clients_due") == 2
    assert value("clientlove_clients_overdue") == 1

    later = now + timedelta(minutes=30)
    m.observe(Report(later, plans=[Plan(None)], sources=[SourceInfo("work"), SourceInfo("home")]),
              0.25)
    assert value("clientlove_cycles_total") == 2
    assert value("clientlove_cycle_failures_total", {"provider": "work"}) == 1
    assert value("clientlove_last_success_timestamp_seconds") == later.timestamp()
    assert value("clientlove_last_cycle_duration_seconds") == 0.25
    assert (value("clientlove_clients"), value("clientlove_clients_due"),
            value("clientlove_clients_overdue")) == (1, 0, 0)

    m.observe(Report(later, sources=[SourceInfo("work")], refused="source work empty"), 0.1)
    assert value("clientlove_refused_cycles_total") == 1
    assert value("clientlove_last_success_timestamp_seconds") == later.timestamp()
    assert value("clientlove_writes_total") == 4
    assert Metrics().registry.get_sample_value("clientlove_cycles_total") == 0  # own registries


def test_metrics_observe_a_real_cycle_report():
    from daemon.cycle import CycleReport, SourceReport

    m = Metrics()
    report = CycleReport(now=datetime(2026, 11, 3, tzinfo=UTC), today=date(2026, 11, 3))
    report.sources.append(SourceReport("work", error="boom"))
    report.errors.append("source work: boom")
    m.observe(report, 1.0)
    assert m.registry.get_sample_value("clientlove_cycle_failures_total",
                                       {"provider": "work"}) == 1
    body, content_type = m.render()
    assert b"clientlove_cycles_total 1.0" in body
    assert content_type.startswith("text/plain")


def test_feed_abuse_scenario_counts_no_violation():
    """The counted variant the reliability report uses."""
    from tests.scenarios_feed import run_feed_abuse

    result = run_feed_abuse()
    assert result.inputs >= 20
    assert result.violations == [], "\n".join(result.violations)
