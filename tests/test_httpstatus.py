"""The one HTTP status mapping: every status lands on the class the engine acts on, with the
status, the provider and (for a transient one) the wait the server asked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from providers.base import (
    ERROR_KINDS,
    AlreadyExists,
    AuthError,
    BadData,
    CursorExpired,
    NotFound,
    PreconditionFailed,
    ProviderError,
    TooSlow,
    Transient,
)
from providers.httpstatus import MAX_RETRY_AFTER, error_for_status, parse_retry_after

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("status", "cls"), [
    (401, AuthError), (403, AuthError), (404, NotFound), (410, NotFound),
    (409, AlreadyExists), (412, PreconditionFailed),
    (408, Transient), (425, Transient), (429, Transient), (500, Transient),
    (502, Transient), (503, Transient), (599, Transient),
    (400, BadData), (405, BadData), (415, BadData), (422, BadData),
    (200, BadData), (204, BadData), (301, BadData), (304, BadData),
])
def test_each_status_maps_to_its_class(status: int, cls: type[ProviderError]):
    error = error_for_status(status, "list work", provider="work")
    assert type(error) is cls
    assert error.status == status and error.provider == "work"
    assert error.kind == cls.kind
    assert f"HTTP {status}" in str(error) and str(error).startswith("work: list work: ")


def test_retry_after_only_on_transient():
    assert error_for_status(503, "x", provider="p", retry_after=7).retry_after == 7
    assert error_for_status(429, "x", provider="p").retry_after is None
    assert error_for_status(404, "x", provider="p", retry_after=7).retry_after is None


def test_overrides_detail_and_hints():
    expired = error_for_status(410, "sync", provider="g", overrides={410: CursorExpired})
    assert type(expired) is CursorExpired and expired.status == 410
    limited = error_for_status(403, "list", provider="g", retry_after=60.0,
                               detail="quotaExceeded", overrides={403: Transient})
    assert type(limited) is Transient and limited.retry_after == 60.0
    assert "HTTP 403 quotaExceeded" in str(limited)
    login = error_for_status(401, "list", provider="g", hints={401: "sign in again"})
    assert str(login).endswith("; sign in again")
    assert "sign in" not in str(error_for_status(403, "list", provider="g",
                                                 hints={401: "sign in again"}))


def test_message_is_redacted():
    error = error_for_status(404, "fetch https://h.example/s3cret.ics", provider="feed")
    assert "s3cret" not in str(error) and "https://h.example/" in str(error)


@pytest.mark.parametrize(("header", "seconds"), [
    ("0", 0.0), ("7", 7.0), (" 120 ", 120.0), ("1.5", 1.5),
    (None, None), ("", None), ("soon", None), ("-3", None), ("nan", None), ("inf", None),
    ("1e3", None), ("\u0663", None),  # an Arabic-Indic digit is no delta-seconds
    ("86400", MAX_RETRY_AFTER),
])
def test_retry_after_delta_seconds(header: str | None, seconds: float | None):
    assert parse_retry_after(header, now=NOW) == seconds


def test_retry_after_http_date():
    later = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=NOW) == 90.0
    assert parse_retry_after("Mon, 02 Mar 2026 09:01:00 -0000", now=NOW) == 60.0
    past = format_datetime(NOW - timedelta(days=1), usegmt=True)
    assert parse_retry_after(past, now=NOW) == 0.0
    far = format_datetime(NOW + timedelta(days=3), usegmt=True)
    assert parse_retry_after(far, now=NOW) == MAX_RETRY_AFTER
    assert parse_retry_after("Mon, 99 Foo 2026 99:99:99 GMT", now=NOW) is None


def test_every_error_is_typed_by_keyword():
    """kind, provider, status, retry_after: set by keyword on every class, message first."""
    classes = (ProviderError, AuthError, CursorExpired, PreconditionFailed, AlreadyExists,
               NotFound, Transient, BadData, TooSlow)
    assert len(set(ERROR_KINDS)) == len(classes)
    for cls in classes:
        error = cls("went wrong", provider="p", status=500, retry_after=1.0)
        assert (error.provider, error.status, error.retry_after) == ("p", 500, 1.0)
        assert error.kind in ERROR_KINDS and error.message == "went wrong"
        bare = cls("went wrong")
        assert (bare.provider, bare.status, bare.retry_after) == ("", None, None)
        assert str(bare) == "went wrong"
    assert AlreadyExists("x", gone=True).gone and not AlreadyExists("x").gone
    assert Transient("x", retry_after=3).retry_after == 3
    assert ProviderError("x").kind == "error" and TooSlow("x").kind == "too-slow"


def test_providers_use_it():
    """CalDAV's 409 stays "changed meanwhile"; Google's rate-limit 403 is transient and
    its quota gets a minute; both carry their status."""
    import httplib2
    from googleapiclient.errors import HttpError

    from providers.caldav import _status_error
    from providers.google import translate

    assert _status_error(207, "x", "dav") is None
    conflict = _status_error(409, "update k", "dav")
    assert type(conflict) is PreconditionFailed and conflict.status == 409
    busy = _status_error(503, "list", "dav", "12")
    assert type(busy) is Transient and busy.retry_after == 12.0

    def http_error(status: int, reason: str, **headers: str) -> HttpError:
        body = f'{{"error": {{"errors": [{{"reason": "{reason}"}}]}}}}'.encode()
        return HttpError(httplib2.Response({"status": status, **headers}), body)

    quota = translate(http_error(403, "quotaExceeded"), "list", "g")
    assert type(quota) is Transient and quota.retry_after == 60.0 and quota.status == 403
    denied = translate(http_error(403, "forbidden"), "list", "g")
    assert type(denied) is AuthError and denied.status == 403
    gone = translate(http_error(410, "fullSyncRequired"), "list", "g")
    assert type(gone) is NotFound and gone.status == 410
    slow = translate(http_error(503, "backendError", **{"retry-after": "5"}), "list", "g")
    assert type(slow) is Transient and slow.retry_after == 5.0


@pytest.mark.parametrize(("status", "cls"), [
    (401, AuthError), (403, AuthError), (404, NotFound), (410, NotFound),
    (429, Transient), (503, Transient), (204, BadData), (302, BadData), (418, BadData),
    (409, BadData), (412, BadData),
])
def test_feed_statuses(status: int, cls: type[ProviderError]):
    """An ICS feed's answer: 200 and 304 pass, anything else is typed with its status."""
    import requests

    from providers.ics import IcsSource

    source = IcsSource("feed", url="https://h.example/s3cret.ics")
    response = requests.Response()
    response.status_code = status
    response.headers["Retry-After"] = "7"
    with pytest.raises(cls) as raised:
        source._check_status(response)
    error = raised.value
    assert type(error) is cls and error.status == status and error.provider == "feed"
    assert error.retry_after == (7.0 if cls is Transient else None)
    assert "s3cret" not in str(error)
    response.status_code = 304
    assert source._check_status(response) == {}
