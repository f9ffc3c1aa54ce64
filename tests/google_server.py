"""A local Google Calendar API v3 server for tests, strict where Google is strict.

Why: the Google provider must be tested against something that fails the way Google fails
(410 on an expired sync token, 409 on a reused client id even after a delete, 412 on a stale
``If-Match``, short pages, 429 with ``Retry-After``, multipart batches), without any network.
The real ``googleapiclient`` talks to it over HTTP on 127.0.0.1, so request building, batch
framing, retries and the OAuth refresh are all exercised for real.

Usage::

    with FakeGoogleCalendar() as server:
        service = google_service(server.base_url)
        service.events().list(calendarId="primary").execute()

Choices where Google is ambiguous or undocumented are listed in ``FakeGoogleCalendar``'s
docstring. Only 127.0.0.1 is ever bound.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import http
import json
import re
import secrets
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrulestr

JSON_TYPE = "application/json; charset=UTF-8"
API_PREFIX = "/calendar/v3/"
BATCH_PATH = "/batch/calendar/v3"
TOKEN_PATH = "/token"
CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar"

MAX_RESULTS_DEFAULT = 250
MAX_RESULTS_LIMIT = 2500
CALENDAR_LIST_DEFAULT = 100
CALENDAR_LIST_LIMIT = 250
MAX_BATCH_PARTS = 1000
MAX_OVERRIDES = 5
MAX_REMINDER_MINUTES = 40320
EXT_KEY_LIMIT = 44
EXT_VALUE_LIMIT = 1024
MAX_INSTANCES = 730  # cap for open-ended recurrences (Google expands about two years)

ID_RE = re.compile(r"[a-v0-9]{5,1024}")
SYNC_FORBIDDEN = ("iCalUID", "orderBy", "privateExtendedProperty", "q",
                  "sharedExtendedProperty", "timeMin", "timeMax", "updatedMin")
EVENT_TYPES = ("birthday", "default", "focusTime", "fromGmail", "outOfOffice",
               "workingLocation")
SEND_UPDATES = ("all", "externalOnly", "none")
USAGE_REASONS = ("rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded",
                 "dailyLimitExceeded")
# Query parameters that do not change which items a list returns (not part of a page token).
NEUTRAL_PARAMS = ("pageToken", "syncToken", "maxResults", "alt", "fields", "prettyPrint",
                  "quotaUser", "key", "timeZone", "maxAttendees", "alwaysIncludeEmail")
# Fields an event body may set; everything else (kind, etag, htmlLink, created, ...) is
# read-only and ignored, like Google does.
PASSTHROUGH = ("location", "colorId", "visibility", "source", "guestsCanModify",
               "guestsCanInviteOthers", "guestsCanSeeOtherGuests", "anyoneCanAddSelf",
               "attachments", "conferenceData", "locked", "privateCopy",
               "focusTimeProperties", "outOfOfficeProperties", "workingLocationProperties",
               "birthdayProperties", "endTimeUnspecified")


class ApiError(Exception):
    """An error answered in Google's JSON error format."""

    def __init__(self, code: int, reason: str, message: str, *, domain: str = "global",
                 location: str | None = None, location_type: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.domain = domain
        self.location = location
        self.location_type = location_type
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"domain": self.domain, "reason": self.reason,
                                  "message": self.message}
        if self.location:
            detail["locationType"] = self.location_type or "parameter"
            detail["location"] = self.location
        error: dict[str, Any] = {"errors": [detail], "code": self.code, "message": self.message}
        if self.code == 401:
            error["status"] = "UNAUTHENTICATED"
        return {"error": error}


def _bad(message: str, reason: str = "invalid", location: str | None = None) -> ApiError:
    return ApiError(400, reason, message, location=location)


def _not_found() -> ApiError:
    return ApiError(404, "notFound", "Not Found")


@dataclass
class Response:
    """One HTTP answer (also one part of a batch answer)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def _json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
    hdrs = {"Content-Type": JSON_TYPE, **(headers or {})}
    return Response(status, hdrs, json.dumps(obj).encode())


def _error_response(err: ApiError) -> Response:
    return _json_response(err.code, err.body(), err.headers)


@dataclass
class CallRecord:
    """One API call as the server saw it, so tests can assert on what the client sent."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int = 0
    in_batch: bool = False


@dataclass
class _Fault:
    status: int
    remaining: int
    retry_after: str | None
    reason: str | None
    match: re.Pattern[str] | None


@dataclass
class _Stored:
    body: dict[str, Any]
    created_seq: int
    updated_seq: int


@dataclass
class _Calendar:
    id: str
    summary: str
    time_zone: str
    access_role: str = "owner"
    description: str | None = None
    primary: bool = False
    created_seq: int = 0
    events: dict[str, _Stored] = field(default_factory=dict)
    log: list[tuple[int, str]] = field(default_factory=list)  # (write seq, event id)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def etag(self) -> str:
        digest = hashlib.sha1(f"{self.id}|{self.summary}|{self.time_zone}".encode()).hexdigest()
        return f'"{digest[:16]}"'

    @property
    def default_reminders(self) -> list[dict[str, Any]]:
        return [{"method": "popup", "minutes": 10}] if self.primary else []


# -- small helpers ------------------------------------------------------------------------------

def _b64(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()


def _unb64(text: str) -> Any:
    padded = text + "=" * (-len(text) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode()).decode())


def _stamp(dt: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as Google writes ``created``/``updated``."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _fmt_dt(dt: datetime, tz: ZoneInfo) -> str:
    text = dt.astimezone(tz).replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _parse_rfc3339(value: str, name: str) -> datetime:
    """A timestamp with an offset, or 400 (Google rejects ``2024-01-01T10:00:00``)."""
    try:
        if "T" not in value.upper():
            raise ValueError(value)
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise _bad(f"Bad Request: invalid {name}", "badRequest", name) from None
    if parsed.tzinfo is None:
        raise _bad(f"Bad Request: {name} needs a time zone offset", "badRequest", name)
    return parsed


def _zone(name: str, what: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _bad(f"Invalid time zone definition for {what}.", "invalid") from None


def _random_id(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Google's patch semantics: objects merge, arrays and scalars replace, null removes."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _parse_fields(spec: str) -> dict[str, Any]:
    """Parse a ``fields`` selector (``items(id,start/dateTime),nextPageToken``) to a tree."""
    spec = re.sub(r"\s+", "", spec)
    pos = 0
    name_re = re.compile(r"[A-Za-z0-9_*]+")

    def merge(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        out = dict(a)
        for key, sub in b.items():
            out[key] = merge(out[key], sub) if key in out else sub
        return out

    def item() -> dict[str, Any]:
        nonlocal pos
        match = name_re.match(spec, pos)
        if not match:
            raise _bad(f"Invalid field selection {spec}", "invalidParameter", "fields")
        name, pos = match.group(), match.end()
        if spec.startswith("/", pos):
            pos += 1
            return {name: item()}
        if spec.startswith("(", pos):
            pos += 1
            sub = items()
            if not spec.startswith(")", pos):
                raise _bad(f"Invalid field selection {spec}", "invalidParameter", "fields")
            pos += 1
            return {name: sub}
        return {name: None}

    def items() -> dict[str, Any]:
        nonlocal pos
        tree: dict[str, Any] = {}
        while True:
            tree = merge(tree, item())
            if spec.startswith(",", pos):
                pos += 1
                continue
            return tree

    tree = items()
    if pos != len(spec):
        raise _bad(f"Invalid field selection {spec}", "invalidParameter", "fields")
    return tree


def _apply_fields(tree: dict[str, Any] | None, value: Any) -> Any:
    if tree is None or "*" in tree:
        return value
    if isinstance(value, list):
        return [_apply_fields(tree, item) for item in value]
    if isinstance(value, dict):
        return {k: _apply_fields(sub, value[k]) for k, sub in tree.items() if k in value}
    return value


class _Params:
    """Query parameters with Google-like validation."""

    def __init__(self, query: dict[str, list[str]]) -> None:
        self.query = query

    def __contains__(self, name: str) -> bool:
        return name in self.query

    def get(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def all(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if value.lower() not in ("true", "false"):
            raise _bad(f"Invalid boolean value for {name}: {value}", "invalidParameter", name)
        return value.lower() == "true"

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.get(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise _bad(f"Invalid value for {name}: {value}", "invalidParameter", name) from None
        if not low <= number <= high:
            raise _bad(f"Invalid value for {name}: {value}", "invalid", name)
        return number


# -- the server -----------------------------------------------------------------------------------

class FakeGoogleCalendar:
    """In-memory Google Calendar API v3 + OAuth token endpoint on 127.0.0.1.

    Choices where Google's behaviour is ambiguous or not documented:

    - Auth: any non-empty ``Authorization: Bearer`` token is accepted while ``valid_tokens``
      is None (the default). Set ``valid_tokens`` to a set for strict checking; the token
      endpoint then adds every access token it issues to that set, so clearing it expires
      them all (``expire_access_tokens()``). Missing header: 401 ``required``; unknown
      token: 401 ``authError``.
    - Updating (PUT/PATCH) a deleted event answers 403 ``forbidden`` (real Google sometimes
      restores it instead). Deleting it again is 410 ``deleted``. ``events.get`` of a deleted
      event is 200 with the full body and ``status: cancelled``.
    - In lists, cancelled events have the minimal body ``kind, etag, id, status`` (plus
      ``recurringEventId``/``originalStartTime`` for instances): Google only guarantees ``id``.
    - ``syncToken`` together with ``showDeleted=false`` is 400 (the discovery document says
      it is not allowed); a sync token of another calendar or an undecodable one is 410.
    - A page token is bound to the query that made it: changing a filter between pages is 400.
      Paging is keyset-based, so writes between pages never skip or repeat items; the
      ``nextSyncToken`` of the last page is the log position when the first page was served,
      so writes made while paging come again in the next incremental sync (at least once).
    - ``singleEvents=true`` expands RRULE masters (via dateutil, at most 730 instances of an
      open-ended rule); cancelled masters are returned as themselves, not as instances.
      No exceptions (modified instances) are modelled; ``events.get`` resolves instance ids.
    - ``dateTime`` values are stored and returned in the event's ``timeZone`` if given, else in
      the calendar's (``Z`` for UTC), as Google rewrites them: compare instants, not strings.
    - ``sequence``: kept unless the body sends a higher one; bumped when start/end/recurrence
      change; a lower one is 400. ``user_edit`` always bumps it.
    - ``maxResults`` above the limit (2500 events, 250 calendar list) is 400, not clamped.
    - Reminder errors: ``cannotUseDefaultRemindersAndSpecifyOverride``,
      ``cannotUseMoreThan5Reminders``, ``invalidReminderMinutes``, ``invalidReminderMethod``
      (all 400, domain calendar).
    - Writes to a calendar with access role ``reader`` are 403 ``requiredAccessLevel``.
    - ``quota_per_minute`` exceeded is 403 ``rateLimitExceeded`` (domain usageLimits).
    - The batch envelope is not authenticated; its parts are (401 per part).
    - The ``timeZone`` query parameter of events.list is ignored.
    - ``events.instances``, ``import``, ``move``, ``quickAdd`` and ``watch`` are not served (404).
    """

    def __init__(self, *, user: str = "me@example.com", time_zone: str = "UTC",
                 clock: Callable[[], datetime] | None = None) -> None:
        self.user = user
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._seq = 0
        self._etag_base = 3_400_000_000_000_000
        self._last_now: datetime | None = None
        self._sync_gen: dict[str, int] = {}
        self.calendars: dict[str, _Calendar] = {}
        self.primary_id = user
        self.calendars[user] = _Calendar(user, user, time_zone, primary=True)
        # knobs
        self.short_pages = False  # serve at most 1 item per page (still paging correctly)
        self.empty_first_page = False  # first page of a non-empty list is empty + nextPageToken
        self.latency = 0.0  # seconds slept before each API call
        self.quota_per_minute: int | None = None
        self.valid_tokens: set[str] | None = None
        self.oauth_clients: dict[str, str] | None = None  # client_id -> secret; None: any
        self.refresh_tokens: set[str] | None = None  # None: any refresh token not revoked
        self.revoked_refresh_tokens: set[str] = set()
        self.auth_codes: dict[str, str] = {}  # code -> the scopes the user consented to
        # records
        self.requests: list[tuple[str, str]] = []
        self.calls: list[tuple[str, str]] = []
        self.call_log: list[CallRecord] = []
        self.sent_updates: list[str | None] = []
        self.token_requests: list[dict[str, str]] = []
        self.internal_errors: list[str] = []
        self._faults: list[_Fault] = []
        self._call_times: deque[float] = deque()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeGoogleCalendar:
        """Serve on a free loopback port in a daemon thread."""
        if self._httpd is not None:
            return self
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.fake = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-google", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close kept-alive connections (their threads end with them)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeGoogleCalendar:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- knobs for tests ------------------------------------------------------------------

    def inject(self, status: int, count: int = 1, retry_after: float | str | None = None,
               reason: str | None = None, match: str | None = None) -> None:
        """The next ``count`` matching calls answer ``status`` instead of running.

        ``match`` is a regex searched in ``"METHOD /path"`` (no query). Without it a fault
        hits API calls only (each batch part on its own). With it, the batch envelope
        (``POST /batch/calendar/v3``) and the token endpoint (``POST /token``) can be hit too.
        """
        with self._lock:
            self._faults.append(_Fault(status, count, None if retry_after is None
                                       else str(retry_after), reason,
                                       re.compile(match) if match else None))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def expire_sync_tokens(self, calendar_id: str | None = None) -> None:
        """Every sync token issued so far (for one calendar, or all) now answers 410."""
        with self._lock:
            ids = [self._resolve(calendar_id)] if calendar_id else list(self.calendars)
            for cal_id in ids:
                self._sync_gen[cal_id] = self._sync_gen.get(cal_id, 0) + 1

    def issue_code(self, scopes: str) -> str:
        """What Google's consent page hands back: a one-time code for these scopes."""
        code = "4/" + secrets.token_urlsafe(16)
        with self._lock:
            self.auth_codes[code] = scopes
        return code

    def revoke(self, refresh_token: str) -> None:
        """The token endpoint now answers ``invalid_grant`` for this refresh token."""
        with self._lock:
            self.revoked_refresh_tokens.add(refresh_token)

    def expire_access_tokens(self) -> None:
        """Strict auth with no valid token: the next API call is 401 until a refresh."""
        with self._lock:
            self.valid_tokens = set()

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.calls.clear()
            self.call_log.clear()
            self.sent_updates.clear()
            self.token_requests.clear()

    # -- playing the user directly on the data -----------------------------------------------

    def add_calendar(self, summary: str, *, calendar_id: str | None = None,
                     time_zone: str | None = None, access_role: str = "owner") -> str:
        """A calendar in the user's list (``access_role="reader"`` for a subscribed one)."""
        with self._lock:
            return self._new_calendar(summary, calendar_id, time_zone, access_role).id

    def add_event(self, calendar_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Insert as the user would in the Google UI (same validation; ValueError if bad)."""
        with self._lock:
            cal = self.calendars[self._resolve(calendar_id)]
            try:
                return copy.deepcopy(self._insert(cal, body))
            except ApiError as err:
                raise ValueError(str(err)) from None

    def user_edit(self, calendar_id: str, event_id: str, **fields: Any) -> dict[str, Any]:
        """Patch an event as the user; bumps etag, updated and sequence, and logs the change."""
        with self._lock:
            cal = self.calendars[self._resolve(calendar_id)]
            stored = cal.events[event_id]
            merged = _deep_merge(stored.body, fields)
            merged["sequence"] = stored.body.get("sequence", 0) + 1
            try:
                body = self._build(cal, merged, stored, event_id)
            except ApiError as err:
                raise ValueError(str(err)) from None
            return copy.deepcopy(self._write(cal, event_id, body, stored))

    def user_delete(self, calendar_id: str, event_id: str) -> None:
        """Delete as the user: status cancelled, id kept, change logged."""
        with self._lock:
            cal = self.calendars[self._resolve(calendar_id)]
            stored = cal.events[event_id]
            body = copy.deepcopy(stored.body)
            body["status"] = "cancelled"
            body["updated"] = _stamp(self._now())
            self._write(cal, event_id, body, stored)

    def events(self, calendar_id: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Stored events (masters, not instances) in creation order, as copies."""
        with self._lock:
            cal = self.calendars[self._resolve(calendar_id)]
            return [copy.deepcopy(s.body) for s in sorted(cal.events.values(),
                                                          key=lambda s: s.created_seq)
                    if include_deleted or s.body["status"] != "cancelled"]

    def event(self, calendar_id: str, event_id: str) -> dict[str, Any]:
        """One stored event (also a deleted one), as a copy."""
        with self._lock:
            cal = self.calendars[self._resolve(calendar_id)]
            return copy.deepcopy(cal.events[event_id].body)

    # -- HTTP entry ---------------------------------------------------------------------------

    def handle_http(self, method: str, target: str, headers: dict[str, str],
                    body: bytes) -> Response:
        """Answer one HTTP request (headers with lower-case names)."""
        path = urlsplit(target).path
        with self._lock:
            self.requests.append((method, path))
        if path == TOKEN_PATH and method == "POST":
            fault = self._take_fault(method, path, explicit_only=True)
            if fault is not None:
                return self._oauth_fault(fault)
            return self._token(body, headers)
        if path.rstrip("/") == BATCH_PATH and method == "POST":
            return self._batch(headers, body)
        if path.startswith(API_PREFIX):
            return self._api_call(method, target, headers, body, in_batch=False)
        return _error_response(_not_found())

    # -- OAuth token endpoint -----------------------------------------------------------------

    def _token(self, body: bytes, headers: dict[str, str] | None = None) -> Response:
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"),
                                              keep_blank_values=True).items()}
        # RFC 6749 2.3.1: the client may authenticate with HTTP Basic instead of the form
        auth = next((v for k, v in (headers or {}).items() if k.lower() == "authorization"), "")
        if auth.lower().startswith("basic ") and "client_id" not in form:
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                user = password = ""
            form["client_id"], form["client_secret"] = unquote(user), unquote(password)
        with self._lock:
            self.token_requests.append(form)
            client_id = form.get("client_id")
            if not client_id:
                return _json_response(400, {"error": "invalid_request", "error_description":
                                            "Could not determine client ID from request."})
            if (self.oauth_clients is not None
                    and self.oauth_clients.get(client_id) != form.get("client_secret")):
                return _json_response(401, {"error": "invalid_client",
                                            "error_description": "Unauthorized"})
            grant = form.get("grant_type")
            answer: dict[str, Any] = {"expires_in": 3599, "token_type": "Bearer",
                                      "scope": form.get("scope") or CALENDAR_SCOPE}
            if grant == "refresh_token":
                refresh = form.get("refresh_token")
                if not refresh:
                    return _json_response(400, {"error": "invalid_request", "error_description":
                                                "Missing required parameter: refresh_token"})
                if refresh in self.revoked_refresh_tokens or (
                        self.refresh_tokens is not None and refresh not in self.refresh_tokens):
                    return _json_response(400, {"error": "invalid_grant", "error_description":
                                                "Token has been expired or revoked."})
            elif grant == "authorization_code":
                if not form.get("code"):
                    return _json_response(400, {"error": "invalid_request", "error_description":
                                                "Missing required parameter: code"})
                granted = self.auth_codes.pop(form["code"], None)
                if granted is None:
                    return _json_response(400, {"error": "invalid_grant", "error_description":
                                                "Malformed auth code."})
                answer["scope"] = granted
                refresh = "1//fake-" + secrets.token_urlsafe(24)
                if self.refresh_tokens is not None:
                    self.refresh_tokens.add(refresh)
                answer["refresh_token"] = refresh
            else:
                return _json_response(400, {"error": "unsupported_grant_type",
                                            "error_description": f"Invalid grant_type: {grant}"})
            access = "ya29.fake-" + secrets.token_urlsafe(24)
            if self.valid_tokens is not None:
                self.valid_tokens.add(access)
            answer["access_token"] = access
        return _json_response(200, dict(sorted(answer.items())),
                              {"Cache-Control": "no-cache, no-store, max-age=0"})

    @staticmethod
    def _oauth_fault(fault: _Fault) -> Response:
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        error = fault.reason or ("internal_failure" if fault.status >= 500 else "invalid_request")
        return _json_response(fault.status, {"error": error, "error_description": "Injected"},
                              headers)

    # -- batch ------------------------------------------------------------------------------------

    def _batch(self, headers: dict[str, str], body: bytes) -> Response:
        """multipart/mixed in, multipart/mixed out; one HTTP request, one call per part.

        The envelope is not authenticated: each part is (with the envelope's Authorization
        when it has none), so a stale token gives 401 parts, which googleapiclient refreshes
        and re-sends, as it does against Google.
        """
        fault = self._take_fault("POST", BATCH_PATH, explicit_only=True)
        if fault is not None:
            return _error_response(self._fault_error(fault))
        ctype = headers.get("content-type", "")
        if not ctype.lower().startswith("multipart/mixed") or "boundary=" not in ctype:
            return _error_response(_bad("Batch request must be multipart/mixed.", "badRequest"))
        message = BytesParser().parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n"
                                           + body)
        parts = message.get_payload() if message.is_multipart() else []
        if not parts:
            return _error_response(_bad("Batch request is empty.", "badRequest"))
        if len(parts) > MAX_BATCH_PARTS:
            return _error_response(_bad(f"A batch cannot hold more than {MAX_BATCH_PARTS} "
                                        "requests.", "batchSizeTooLarge"))
        boundary = "batch_" + secrets.token_hex(12)
        out: list[bytes] = []
        for part in parts:
            content_id = (part.get("Content-ID") or "").strip()
            inner = content_id[1:-1] if content_id.startswith("<") else content_id
            raw = part.get_payload()
            raw_bytes = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
            try:
                method, target, part_headers, part_body = _parse_inner_request(raw_bytes)
            except ValueError:
                reply = _error_response(_bad("Malformed batch part.", "badRequest"))
            else:
                if "authorization" not in part_headers and "authorization" in headers:
                    part_headers["authorization"] = headers["authorization"]
                path = urlsplit(target).path
                if path.startswith(API_PREFIX):
                    reply = self._api_call(method, target, part_headers, part_body,
                                           in_batch=True)
                else:
                    reply = _error_response(_not_found())
            out.append(_serialize_part(boundary, inner, reply))
        payload = b"".join(out) + f"--{boundary}--\r\n".encode()
        return Response(200, {"Content-Type": f"multipart/mixed; boundary={boundary}"}, payload)

    # -- one API call ----------------------------------------------------------------------------

    def _api_call(self, method: str, target: str, headers: dict[str, str], body: bytes,
                  *, in_batch: bool) -> Response:
        split = urlsplit(target)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            parsed_body = json.loads(body) if body else None
        except ValueError:
            parsed_body = body.decode("utf-8", "replace")
        record = CallRecord(method, path, query, dict(headers), parsed_body, in_batch=in_batch)
        with self._lock:
            self.calls.append((method, path))
            self.call_log.append(record)
        if self.latency:
            time.sleep(self.latency)
        try:
            with self._lock:
                self._check_auth(headers)
                self._check_quota()
                fault = self._take_fault(method, path, explicit_only=False)
                if fault is not None:
                    raise self._fault_error(fault)
                if body and not isinstance(parsed_body, (dict, list)):
                    raise _bad("Parse Error", "parseError")
                reply = self._route(method, path, _Params(query), headers, parsed_body)
                fields = _Params(query).get("fields")
                if fields and reply.status < 300 and reply.body:
                    tree = _parse_fields(fields)
                    reply.body = json.dumps(_apply_fields(tree, json.loads(reply.body))).encode()
        except ApiError as err:
            reply = _error_response(err)
        except Exception:  # a bug in the fake: answer 500 and keep the trace for the test
            self.internal_errors.append(traceback.format_exc())
            reply = _error_response(ApiError(500, "backendError", "Backend Error"))
        record.status = reply.status
        return reply

    def _check_auth(self, headers: dict[str, str]) -> None:
        auth = headers.get("authorization", "")
        challenge = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            raise ApiError(401, "required", "Login Required.", location="Authorization",
                           location_type="header", headers=challenge)
        token = auth[7:].strip()
        if self.valid_tokens is not None and token not in self.valid_tokens:
            raise ApiError(401, "authError", "Invalid Credentials", location="Authorization",
                           location_type="header",
                           headers={"WWW-Authenticate": challenge["WWW-Authenticate"]
                                    + ', error="invalid_token"'})

    def _check_quota(self) -> None:
        if self.quota_per_minute is None:
            return
        now = time.monotonic()
        while self._call_times and now - self._call_times[0] > 60:
            self._call_times.popleft()
        if len(self._call_times) >= self.quota_per_minute:
            raise ApiError(403, "rateLimitExceeded", "Rate Limit Exceeded",
                           domain="usageLimits")
        self._call_times.append(now)

    def _take_fault(self, method: str, path: str, *, explicit_only: bool) -> _Fault | None:
        with self._lock:
            key = f"{method} {path}"
            for fault in self._faults:
                if fault.match is None:
                    if explicit_only:
                        continue
                elif not fault.match.search(key):
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _fault_error(fault: _Fault) -> ApiError:
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        status = fault.status
        defaults = {
            429: ("rateLimitExceeded", "Rate Limit Exceeded"),
            403: ("rateLimitExceeded", "Rate Limit Exceeded"),
            500: ("backendError", "Backend Error"),
            503: ("backendError", "Service Unavailable"),
            401: ("authError", "Invalid Credentials"),
            410: ("fullSyncRequired", "Sync token is no longer valid, a full sync is required."),
        }
        reason, message = defaults.get(status, (None, None))
        if fault.reason:
            reason = fault.reason
            message = {"userRateLimitExceeded": "User Rate Limit Exceeded",
                       "quotaExceeded": "Calendar usage limits exceeded."}.get(reason, message)
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        reason = reason or phrase[:1].lower() + phrase.title().replace(" ", "")[1:]
        domain = "usageLimits" if reason in USAGE_REASONS else "global"
        return ApiError(status, reason, message or phrase, domain=domain, headers=headers)

    # -- routing -------------------------------------------------------------------------------

    def _route(self, method: str, path: str, params: _Params, headers: dict[str, str],
               body: Any) -> Response:
        segs = [unquote(s) for s in path[len(API_PREFIX):].split("/")]
        if segs and segs[-1] == "":
            segs.pop()
        match segs:
            case ["users", "me", "calendarList"] if method == "GET":
                return _json_response(200, self._calendar_list(params))
            case ["users", "me", "calendarList", cal_id] if method == "GET":
                return _json_response(200, self._list_entry(self._calendar(cal_id)))
            case ["calendars"] if method == "POST":
                return _json_response(200, self._calendars_insert(body))
            case ["calendars", cal_id] if method == "GET":
                return _json_response(200, self._calendar_resource(self._calendar(cal_id)))
            case ["calendars", cal_id] if method == "DELETE":
                self._calendars_delete(cal_id)
                return Response(204)
            case ["calendars", cal_id, "events"] if method == "GET":
                return _json_response(200, self._events_list(self._calendar(cal_id), params))
            case ["calendars", cal_id, "events"] if method == "POST":
                cal = self._writable(cal_id)
                self._send_updates(params)
                if not isinstance(body, dict):
                    raise _bad("Missing event body.", "required")
                event = self._insert(cal, body)
                return _json_response(200, event, {"ETag": event["etag"]})
            case ["calendars", cal_id, "events", event_id] if method == "GET":
                return self._events_get(self._calendar(cal_id), event_id, headers)
            case ["calendars", cal_id, "events", event_id] if method in ("PUT", "PATCH"):
                cal = self._writable(cal_id)
                self._send_updates(params)
                if not isinstance(body, dict):
                    raise _bad("Missing event body.", "required")
                event = self._update(cal, event_id, body, headers, patch=method == "PATCH")
                return _json_response(200, event, {"ETag": event["etag"]})
            case ["calendars", cal_id, "events", event_id] if method == "DELETE":
                cal = self._writable(cal_id)
                self._send_updates(params)
                self._delete(cal, event_id, headers)
                return Response(204)
        raise _not_found()

    def _resolve(self, cal_id: str) -> str:
        return self.primary_id if cal_id == "primary" else cal_id

    def _calendar(self, cal_id: str) -> _Calendar:
        cal = self.calendars.get(self._resolve(cal_id))
        if cal is None:
            raise _not_found()
        return cal

    def _writable(self, cal_id: str) -> _Calendar:
        cal = self._calendar(cal_id)
        if cal.access_role not in ("owner", "writer"):
            raise ApiError(403, "requiredAccessLevel",
                           "You need to have writer access to this calendar.", domain="calendar")
        return cal

    def _send_updates(self, params: _Params) -> None:
        value = params.get("sendUpdates")
        if value is not None and value not in SEND_UPDATES:
            raise _bad(f"Invalid value for sendUpdates: {value}", "invalidParameter",
                       "sendUpdates")
        self.sent_updates.append(value)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _now(self) -> datetime:
        """The clock, made strictly increasing so ``updated`` orders writes."""
        now = self.clock().astimezone(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if self._last_now is not None and now <= self._last_now:
            now = self._last_now + timedelta(milliseconds=1)
        self._last_now = now
        return now

    # -- calendars --------------------------------------------------------------------------------

    def _new_calendar(self, summary: str, cal_id: str | None, time_zone: str | None,
                      access_role: str) -> _Calendar:
        cal_id = cal_id or (_random_id("abcdefghijklmnopqrstuvwxyz0123456789", 26)
                            + "@group.calendar.google.com")
        tz = time_zone or self.calendars[self.primary_id].time_zone
        _zone(tz, "calendar")
        cal = _Calendar(cal_id, summary, tz, access_role=access_role,
                        created_seq=self._next_seq())
        self.calendars[cal_id] = cal
        return cal

    def _calendar_resource(self, cal: _Calendar) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "calendar#calendar", "etag": cal.etag, "id": cal.id,
                               "summary": cal.summary}
        if cal.description:
            out["description"] = cal.description
        out["timeZone"] = cal.time_zone
        out["conferenceProperties"] = {"allowedConferenceSolutionTypes": ["hangoutsMeet"]}
        return out

    def _list_entry(self, cal: _Calendar) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "calendar#calendarListEntry", "etag": cal.etag,
                               "id": cal.id, "summary": cal.summary}
        if cal.description:
            out["description"] = cal.description
        out.update({"timeZone": cal.time_zone, "colorId": "14", "backgroundColor": "#9fe1e7",
                    "foregroundColor": "#000000", "selected": True,
                    "accessRole": cal.access_role, "defaultReminders": cal.default_reminders})
        if cal.primary:
            out["notificationSettings"] = {"notifications": [
                {"type": "eventCreation", "method": "email"}]}
            out["primary"] = True
        out["conferenceProperties"] = {"allowedConferenceSolutionTypes": ["hangoutsMeet"]}
        return out

    def _calendar_list(self, params: _Params) -> dict[str, Any]:
        size = params.integer("maxResults", CALENDAR_LIST_DEFAULT, 1, CALENDAR_LIST_LIMIT)
        if self.short_pages:
            size = 1
        ordered = sorted(self.calendars.values(), key=lambda c: (not c.primary, c.created_seq))
        start = 0
        token = params.get("pageToken")
        if token:
            try:
                start = int(_unb64(token)["o"])
            except (ValueError, KeyError, TypeError):
                raise _bad("Invalid page token value.", "invalid", "pageToken") from None
        page = ordered[start:start + size]
        out: dict[str, Any] = {"kind": "calendar#calendarList",
                               "etag": f'"p{self._seq:020d}"'}
        if start + size < len(ordered):
            out["nextPageToken"] = _b64({"o": start + size})
        else:
            out["nextSyncToken"] = _b64({"cl": self._seq})
        out["items"] = [self._list_entry(c) for c in page]
        return out

    def _calendars_insert(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not body.get("summary"):
            raise _bad("Missing title.", "required", "summary")
        cal = self._new_calendar(str(body["summary"]), None, body.get("timeZone"), "owner")
        cal.description = body.get("description")
        return self._calendar_resource(cal)

    def _calendars_delete(self, cal_id: str) -> None:
        cal = self._calendar(cal_id)
        if cal.primary:
            raise _bad("Cannot delete the primary calendar.", "cannotDeletePrimaryCalendar")
        if cal.access_role != "owner":
            raise ApiError(403, "forbidden", "Forbidden")
        del self.calendars[cal.id]

    # -- event validation and storage ------------------------------------------------------------

    def _norm_time(self, cal: _Calendar, value: Any, which: str) -> tuple[dict[str, Any], Any]:
        if not isinstance(value, dict):
            raise _bad(f"Missing {which} time.", "required", which)
        has_dt = value.get("dateTime") is not None
        has_date = value.get("date") is not None
        if has_dt and has_date:
            raise _bad(f"Invalid {which} time: both date and dateTime.", "invalid", which)
        tz_name = value.get("timeZone")
        if has_date:
            try:
                day = date.fromisoformat(str(value["date"]))
                if len(str(value["date"])) != 10:
                    raise ValueError
            except ValueError:
                raise _bad(f"Invalid {which} time.", "invalid", which) from None
            out: dict[str, Any] = {"date": day.isoformat()}
            if tz_name:
                _zone(tz_name, f"{which} time")
                out["timeZone"] = tz_name
            return out, day
        if not has_dt:
            raise _bad(f"Missing {which} time.", "required", which)
        text = str(value["dateTime"])
        try:
            if "T" not in text.upper():
                raise ValueError
            moment = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise _bad(f"Invalid {which} time.", "invalid", which) from None
        zone = _zone(tz_name, f"{which} time") if tz_name else None
        if moment.tzinfo is None:
            if zone is None:
                raise _bad(f"Missing time zone definition for {which} time.", "required", which)
            moment = moment.replace(tzinfo=zone)
        out = {"dateTime": _fmt_dt(moment, zone or cal.tz)}
        if tz_name:
            out["timeZone"] = tz_name
        return out, moment

    @staticmethod
    def _norm_reminders(value: Any) -> dict[str, Any]:
        if value is None:
            return {"useDefault": True}
        if not isinstance(value, dict):
            raise _bad("Invalid reminders.", "invalid", "reminders")
        overrides = value.get("overrides") or []
        use_default = bool(value.get("useDefault", False))
        if use_default and overrides:
            raise ApiError(400, "cannotUseDefaultRemindersAndSpecifyOverride",
                           "Cannot specify both default reminders and overrides at the same "
                           "time.", domain="calendar")
        if len(overrides) > MAX_OVERRIDES:
            raise ApiError(400, "cannotUseMoreThan5Reminders",
                           f"Cannot specify more than {MAX_OVERRIDES} reminder overrides.",
                           domain="calendar")
        clean = []
        for item in overrides:
            if not isinstance(item, dict) or "method" not in item or "minutes" not in item:
                raise _bad("Missing reminder method or minutes.", "required", "reminders")
            if item["method"] not in ("popup", "email"):
                raise ApiError(400, "invalidReminderMethod",
                               f"Invalid reminder method: {item['method']}", domain="calendar")
            minutes = item["minutes"]
            if (isinstance(minutes, bool) or not isinstance(minutes, int)
                    or not 0 <= minutes <= MAX_REMINDER_MINUTES):
                raise ApiError(400, "invalidReminderMinutes",
                               f"Invalid value for reminder minutes: {minutes} (0 to "
                               f"{MAX_REMINDER_MINUTES}).", domain="calendar")
            clean.append({"method": item["method"], "minutes": minutes})
        out: dict[str, Any] = {"useDefault": use_default}
        if clean:
            out["overrides"] = clean
        return out

    @staticmethod
    def _norm_extended(value: Any) -> dict[str, Any] | None:
        """Keys over 44 characters are dropped, values cut at 1024 — silently, like Google."""
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _bad("Invalid extendedProperties.", "invalid", "extendedProperties")
        out: dict[str, Any] = {}
        for scope in ("private", "shared"):
            props = value.get(scope)
            if props is None:
                continue
            if not isinstance(props, dict):
                raise _bad(f"Invalid extendedProperties.{scope}.", "invalid")
            kept = {str(k): str(v)[:EXT_VALUE_LIMIT] for k, v in props.items()
                    if v is not None and len(str(k)) <= EXT_KEY_LIMIT}
            if kept:
                out[scope] = kept
        return out or None

    def _build(self, cal: _Calendar, src: dict[str, Any], existing: _Stored | None,
               event_id: str) -> dict[str, Any]:
        """Validate a full event body and return it as Google would store it."""
        start, start_at = self._norm_time(cal, src.get("start"), "start")
        end, end_at = self._norm_time(cal, src.get("end"), "end")
        if ("date" in start) != ("date" in end):
            raise _bad("The start and end times must either both be date or both be dateTime.",
                       "invalid", "end")
        if end_at < start_at or ("date" in start and end_at == start_at):
            raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.",
                           domain="calendar", location="end", location_type="parameter")
        status = src.get("status") or "confirmed"
        if status not in ("confirmed", "tentative", "cancelled"):
            raise _bad(f"Invalid status: {status}", "invalid", "status")
        transparency = src.get("transparency")
        if transparency is not None and transparency not in ("opaque", "transparent"):
            raise _bad(f"Invalid transparency: {transparency}", "invalid", "transparency")
        visibility = src.get("visibility")
        if visibility is not None and visibility not in ("default", "public", "private",
                                                         "confidential"):
            raise _bad(f"Invalid visibility: {visibility}", "invalid", "visibility")
        event_type = src.get("eventType") or "default"
        if event_type not in EVENT_TYPES:
            raise _bad(f"Invalid eventType: {event_type}", "invalid", "eventType")
        recurrence = src.get("recurrence")
        if recurrence is not None:
            if not isinstance(recurrence, list) or not all(isinstance(r, str)
                                                           for r in recurrence):
                raise _bad("Invalid recurrence rule.", "invalid", "recurrence")
            if not recurrence:
                recurrence = None
        now = self._now()
        old = existing.body if existing else {}
        sequence = old.get("sequence", 0)
        if "sequence" in src and src["sequence"] is not None:
            given = src["sequence"]
            if not isinstance(given, int) or given < sequence:
                raise _bad("Invalid sequence value. The specified sequence number is below the "
                           "current sequence number of the resource.", "invalidSequenceValue",
                           "sequence")
            sequence = given
        if existing and sequence == old.get("sequence", 0) and (
                start != old.get("start") or end != old.get("end")
                or recurrence != old.get("recurrence")):
            sequence += 1
        organizer: dict[str, Any] = {"email": cal.id, "self": True}
        if not cal.primary:
            organizer["displayName"] = cal.summary
        html = base64.urlsafe_b64encode(f"{event_id} {cal.id}".encode()).decode().rstrip("=")
        body: dict[str, Any] = {
            "kind": "calendar#event", "etag": old.get("etag", ""), "id": event_id,
            "status": status,
            "htmlLink": f"https://www.google.com/calendar/event?eid={html}",
            "created": old.get("created", _stamp(now)), "updated": _stamp(now),
        }
        for key in ("summary", "description"):
            if src.get(key) is not None:
                body[key] = str(src[key])
        if src.get("location") is not None:
            body["location"] = src["location"]
        if src.get("colorId") is not None:
            body["colorId"] = src["colorId"]
        body["creator"] = old.get("creator", {"email": self.user, "self": True})
        body["organizer"] = old.get("organizer", organizer)
        body["start"], body["end"] = start, end
        if recurrence:
            body["recurrence"] = list(recurrence)
        for key in ("recurringEventId", "originalStartTime"):
            if key in old:
                body[key] = old[key]
        if transparency:
            body["transparency"] = transparency
        if visibility:
            body["visibility"] = visibility
        body["iCalUID"] = old.get("iCalUID") or src.get("iCalUID") or f"{event_id}@google.com"
        body["sequence"] = sequence
        attendees = src.get("attendees")
        if attendees:
            if not isinstance(attendees, list) or not all(
                    isinstance(a, dict) and a.get("email") for a in attendees):
                raise _bad("Missing attendee email.", "required", "attendees")
            body["attendees"] = [{**a, "responseStatus": a.get("responseStatus",
                                                                "needsAction")}
                                 for a in attendees]
        ext = self._norm_extended(src.get("extendedProperties"))
        if ext:
            body["extendedProperties"] = ext
        body["reminders"] = self._norm_reminders(src.get("reminders"))
        for key in PASSTHROUGH:
            if key not in body and src.get(key) is not None:
                body[key] = copy.deepcopy(src[key])
        body["eventType"] = event_type
        if recurrence:
            try:
                next(iter(self._occurrences(cal, body, None, None)), None)
            except Exception:
                raise _bad("Invalid recurrence rule.", "invalid", "recurrence") from None
        return body

    def _write(self, cal: _Calendar, event_id: str, body: dict[str, Any],
               existing: _Stored | None) -> dict[str, Any]:
        """Store a new version: fresh etag and updated, change logged for sync tokens."""
        seq = self._next_seq()
        body["etag"] = f'"{self._etag_base + seq}"'
        if existing is None:
            cal.events[event_id] = _Stored(body, seq, seq)
        else:
            existing.body = body
            existing.updated_seq = seq
        cal.log.append((seq, event_id))
        return body

    def _insert(self, cal: _Calendar, src: dict[str, Any]) -> dict[str, Any]:
        event_id = src.get("id")
        if event_id is None:
            event_id = _random_id("0123456789abcdefghijklmnopqrstuv", 26)
            while event_id in cal.events:
                event_id = _random_id("0123456789abcdefghijklmnopqrstuv", 26)
        elif not isinstance(event_id, str) or not ID_RE.fullmatch(event_id):
            raise _bad("Invalid resource id value.", "invalid", "id")
        if event_id in cal.events:  # also a deleted one: Google keeps its id forever
            raise ApiError(409, "duplicate", "The requested identifier already exists.")
        body = self._build(cal, src, None, event_id)
        return self._write(cal, event_id, body, None)

    def _existing(self, cal: _Calendar, event_id: str) -> _Stored:
        stored = cal.events.get(event_id)
        if stored is None:
            raise _not_found()
        return stored

    @staticmethod
    def _check_if_match(stored: _Stored, headers: dict[str, str]) -> None:
        wanted = headers.get("if-match")
        if wanted is None or wanted.strip() == "*":
            return
        tags = [t.strip().removeprefix("W/") for t in wanted.split(",")]
        if stored.body["etag"] not in tags:
            raise ApiError(412, "conditionNotMet", "Precondition Failed",
                           location="If-Match", location_type="header")

    def _update(self, cal: _Calendar, event_id: str, src: dict[str, Any],
                headers: dict[str, str], *, patch: bool) -> dict[str, Any]:
        stored = self._existing(cal, event_id)
        self._check_if_match(stored, headers)
        if stored.body["status"] == "cancelled":
            raise ApiError(403, "forbidden", "Forbidden")
        if "id" in src and src["id"] != event_id:
            raise _bad("The event id in the body does not match the path.", "invalid", "id")
        if patch:
            merged = _deep_merge(stored.body, src)
            wanted = src.get("reminders")
            if isinstance(wanted, dict) and wanted.get("useDefault") and "overrides" not in wanted:
                merged["reminders"].pop("overrides", None)  # useDefault alone clears overrides
            if "sequence" not in src:
                merged.pop("sequence", None)
        else:
            merged = copy.deepcopy(src)
        body = self._build(cal, merged, stored, event_id)
        return self._write(cal, event_id, body, stored)

    def _delete(self, cal: _Calendar, event_id: str, headers: dict[str, str]) -> None:
        stored = self._existing(cal, event_id)
        self._check_if_match(stored, headers)
        if stored.body["status"] == "cancelled":
            raise ApiError(410, "deleted", "Resource has been deleted")
        body = copy.deepcopy(stored.body)
        body["status"] = "cancelled"
        body["updated"] = _stamp(self._now())
        self._write(cal, event_id, body, stored)

    def _events_get(self, cal: _Calendar, event_id: str, headers: dict[str, str]) -> Response:
        stored = cal.events.get(event_id)
        event = stored.body if stored is not None else self._instance_by_id(cal, event_id)
        if headers.get("if-none-match") == event["etag"]:
            return Response(304, {"ETag": event["etag"]})
        return _json_response(200, event, {"ETag": event["etag"]})

    def _instance_by_id(self, cal: _Calendar, event_id: str) -> dict[str, Any]:
        master_id, _, stamp = event_id.rpartition("_")
        master = cal.events.get(master_id)
        if master is None or not stamp or "recurrence" not in master.body:
            raise _not_found()
        for inst in self._occurrences(cal, master.body, None, None):
            if inst["id"] == event_id:
                return inst
        raise _not_found()

    # -- recurrence -------------------------------------------------------------------------------

    def _instant(self, cal: _Calendar, when: dict[str, Any]) -> datetime:
        if "date" in when:
            return datetime.combine(date.fromisoformat(when["date"]), dtime(0), tzinfo=cal.tz)
        return datetime.fromisoformat(when["dateTime"])

    def _occurrences(self, cal: _Calendar, master: dict[str, Any], window_start: datetime | None,
                     window_end: datetime | None) -> Iterator[dict[str, Any]]:
        """Instances of an RRULE master that overlap the window (a simple expansion)."""
        start, end = master["start"], master["end"]
        all_day = "date" in start
        if all_day:
            first = datetime.combine(date.fromisoformat(start["date"]), dtime(0))
            length = date.fromisoformat(end["date"]) - date.fromisoformat(start["date"])
            zone = cal.tz
        else:
            zone = ZoneInfo(start["timeZone"]) if start.get("timeZone") else cal.tz
            first = datetime.fromisoformat(start["dateTime"]).astimezone(zone)
            length = datetime.fromisoformat(end["dateTime"]) - datetime.fromisoformat(
                start["dateTime"])
        lines = [_fix_until(line, all_day, zone) for line in master.get("recurrence", [])]
        rules = rrulestr("\n".join(lines), dtstart=first, forceset=True)
        produced = 0
        for occ in rules:
            if produced >= MAX_INSTANCES:
                return
            occ_start = occ.replace(tzinfo=zone) if all_day else occ
            occ_end = occ_start + length
            if window_end is not None and occ_start >= window_end:
                return
            if window_start is not None and occ_end <= window_start:
                continue
            produced += 1
            inst = copy.deepcopy(master)
            inst.pop("recurrence", None)
            if all_day:
                suffix = occ.strftime("%Y%m%d")
                inst["start"] = {"date": occ.date().isoformat()}
                inst["end"] = {"date": (occ.date() + length).isoformat()}
            else:
                suffix = occ.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
                inst["start"] = {"dateTime": _fmt_dt(occ, zone)}
                inst["end"] = {"dateTime": _fmt_dt(occ_end, zone)}
                if start.get("timeZone"):
                    inst["start"]["timeZone"] = start["timeZone"]
                    inst["end"]["timeZone"] = end.get("timeZone", start["timeZone"])
            inst["id"] = f"{master['id']}_{suffix}"
            inst["recurringEventId"] = master["id"]
            inst["originalStartTime"] = copy.deepcopy(inst["start"])
            yield inst

    # -- events.list ------------------------------------------------------------------------------

    def _sync_token(self, cal: _Calendar, position: int) -> str:
        return "CP" + _b64({"c": cal.id, "p": position, "g": self._sync_gen.get(cal.id, 0)})

    def _decode_sync(self, cal: _Calendar, token: str) -> int:
        gone = ApiError(410, "fullSyncRequired",
                        "Sync token is no longer valid, a full sync is required.")
        try:
            data = _unb64(token.removeprefix("CP"))
            position, cal_id, gen = int(data["p"]), data["c"], int(data["g"])
        except (ValueError, KeyError, TypeError):
            raise gone from None
        if cal_id != cal.id or gen != self._sync_gen.get(cal.id, 0) or position > self._seq:
            raise gone
        return position

    def _events_list(self, cal: _Calendar, params: _Params) -> dict[str, Any]:
        size = params.integer("maxResults", MAX_RESULTS_DEFAULT, 1, MAX_RESULTS_LIMIT)
        single = params.boolean("singleEvents")
        show_deleted = params.boolean("showDeleted")
        order_by = params.get("orderBy")
        if order_by not in (None, "startTime", "updated"):
            raise _bad(f"Invalid value for orderBy: {order_by}", "invalidParameter", "orderBy")
        if order_by == "startTime" and not single:
            raise _bad("The requested ordering is not available for the particular query.",
                       "badRequest", "orderBy")
        sync = params.get("syncToken")
        position: int | None = None
        if sync is not None:
            for name in SYNC_FORBIDDEN:
                if name in params:
                    raise _bad(f"The parameter {name} cannot be combined with syncToken.",
                               "invalid", name)
            if "showDeleted" in params and not show_deleted:
                raise _bad("showDeleted cannot be false with syncToken.", "invalid",
                           "showDeleted")
            position = self._decode_sync(cal, sync)
        time_min = _parse_rfc3339(params.get("timeMin") or "", "timeMin") \
            if "timeMin" in params else None
        time_max = _parse_rfc3339(params.get("timeMax") or "", "timeMax") \
            if "timeMax" in params else None
        if time_min and time_max and time_max <= time_min:
            raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.",
                           domain="calendar", location="timeMax", location_type="parameter")
        updated_min = _parse_rfc3339(params.get("updatedMin") or "", "updatedMin") \
            if "updatedMin" in params else None
        event_types = params.all("eventTypes")
        for kind in event_types:
            if kind not in EVENT_TYPES:
                raise _bad(f"Invalid value for eventTypes: {kind}", "invalidParameter",
                           "eventTypes")
        private = _property_filters(params.all("privateExtendedProperty"),
                                    "privateExtendedProperty")
        shared = _property_filters(params.all("sharedExtendedProperty"),
                                   "sharedExtendedProperty")
        text = (params.get("q") or "").lower()
        ical_uid = params.get("iCalUID")

        fingerprint = hashlib.sha1(json.dumps(sorted(
            (k, v) for k, v in params.query.items() if k not in NEUTRAL_PARAMS)).encode()
        ).hexdigest()[:16]
        after: list[Any] | None = None
        snapshot = self._seq
        page_token = params.get("pageToken")
        if page_token:
            try:
                data = _unb64(page_token)
                after, snapshot = data["k"], int(data["s"])
                token_cal, token_fp, token_pos = data["c"], data["f"], data["t"]
            except (ValueError, KeyError, TypeError):
                raise _bad("Invalid page token value.", "invalid", "pageToken") from None
            if token_cal != cal.id or token_fp != fingerprint or (
                    position is not None and position != token_pos):
                raise _bad("The page token does not belong to this query.", "invalid",
                           "pageToken")
            if token_pos is not None:
                gen = data.get("g", 0)
                if gen != self._sync_gen.get(cal.id, 0):
                    raise ApiError(410, "fullSyncRequired",
                                   "Sync token is no longer valid, a full sync is required.")
                position = int(token_pos)

        if position is not None:
            changed = {eid for seq, eid in cal.log if seq > position}
            stored = [cal.events[eid] for eid in changed]
        else:
            stored = list(cal.events.values())
        items: list[tuple[list[Any], dict[str, Any]]] = []
        for entry in stored:
            event = entry.body
            cancelled = event["status"] == "cancelled"
            if position is None and cancelled and not show_deleted and not (
                    updated_min and datetime.fromisoformat(event["updated"]) >= updated_min):
                continue
            if updated_min and datetime.fromisoformat(event["updated"]) < updated_min:
                continue
            if event_types and event.get("eventType", "default") not in event_types:
                continue
            if ical_uid is not None and event.get("iCalUID") != ical_uid:
                continue
            if text and not any(text in str(event.get(k, "")).lower()
                                for k in ("summary", "description", "location")):
                continue
            if not _props_match(event, "private", private) or not _props_match(
                    event, "shared", shared):
                continue
            recurring = "recurrence" in event and not cancelled
            if recurring and single:
                for inst in self._occurrences(cal, event, time_min, time_max):
                    items.append((self._sort_key(cal, entry, inst, order_by), inst))
                continue
            if recurring and (time_min or time_max):
                if next(iter(self._occurrences(cal, event, time_min, time_max)), None) is None:
                    continue
            elif not self._overlaps(cal, event, time_min, time_max):
                continue
            items.append((self._sort_key(cal, entry, event, order_by), event))
        items.sort(key=lambda pair: pair[0])
        if after is not None:
            items = [pair for pair in items if pair[0] > after]

        limit = 1 if self.short_pages else size
        if self.empty_first_page and not page_token and items:
            page: list[tuple[list[Any], dict[str, Any]]] = []
            more = True
        else:
            page, more = items[:limit], len(items) > limit
        out: dict[str, Any] = {
            "kind": "calendar#events", "etag": f'"p{snapshot:020d}"', "summary": cal.summary,
            "description": cal.description or "",
            "updated": self._calendar_updated(cal), "timeZone": cal.time_zone,
            "accessRole": cal.access_role, "defaultReminders": cal.default_reminders,
        }
        if more:
            key = page[-1][0] if page else after
            out["nextPageToken"] = _b64({"c": cal.id, "f": fingerprint, "k": key,
                                         "s": snapshot, "t": position,
                                         "g": self._sync_gen.get(cal.id, 0)})
        else:
            out["nextSyncToken"] = self._sync_token(cal, snapshot)
        out["items"] = [_minimal(event) if event["status"] == "cancelled" else event
                        for _, event in page]
        return out

    def _calendar_updated(self, cal: _Calendar) -> str:
        stamps = [s.body["updated"] for s in cal.events.values()]
        return max(stamps) if stamps else _stamp(self.clock())

    def _overlaps(self, cal: _Calendar, event: dict[str, Any], time_min: datetime | None,
                  time_max: datetime | None) -> bool:
        """timeMin bounds the event's end, timeMax its start, both exclusive."""
        if time_min and self._instant(cal, event["end"]) <= time_min:
            return False
        return not (time_max and self._instant(cal, event["start"]) >= time_max)

    def _sort_key(self, cal: _Calendar, entry: _Stored, event: dict[str, Any],
                  order_by: str | None) -> list[Any]:
        start = self._instant(cal, event["start"]).timestamp()
        if order_by == "startTime":
            return [start, event["id"]]
        if order_by == "updated":
            return [entry.updated_seq, event["id"]]
        return [entry.created_seq, start, event["id"]]


# -- module helpers --------------------------------------------------------------------------------

def _minimal(event: dict[str, Any]) -> dict[str, Any]:
    out = {k: event[k] for k in ("kind", "etag", "id", "status") if k in event}
    for key in ("recurringEventId", "originalStartTime"):
        if key in event:
            out[key] = event[key]
    return out


def _property_filters(values: list[str], name: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        key, sep, wanted = value.partition("=")
        if not sep or not key:
            raise _bad(f"Invalid value for {name}: {value} (propertyName=value)",
                       "invalidParameter", name)
        out.append((key, wanted))
    return out


def _props_match(event: dict[str, Any], scope: str, wanted: list[tuple[str, str]]) -> bool:
    props = event.get("extendedProperties", {}).get(scope, {})
    return all(props.get(key) == value for key, value in wanted)


def _fix_until(line: str, all_day: bool, zone: ZoneInfo) -> str:
    """Make UNTIL agree with DTSTART for dateutil (Google accepts both forms)."""
    match = re.search(r"UNTIL=([0-9TZ]+)", line)
    if not line.upper().startswith("RRULE") or not match:
        return line
    value = match.group(1)
    if all_day:
        fixed = value[:8]
    elif value.endswith("Z"):
        return line
    else:
        local = datetime.strptime(value, "%Y%m%dT%H%M%S") if "T" in value else (
            datetime.strptime(value, "%Y%m%d") + timedelta(days=1, seconds=-1))
        fixed = local.replace(tzinfo=zone).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return line[:match.start(1)] + fixed + line[match.end(1):]


def _parse_inner_request(raw: bytes) -> tuple[str, str, dict[str, str], bytes]:
    """One ``application/http`` batch part: request line, headers, body."""
    raw = raw.lstrip(b"\r\n")
    line, _, rest = raw.partition(b"\n")
    pieces = line.decode("latin-1").strip().split(" ")
    if len(pieces) < 2:
        raise ValueError("bad request line")
    method, target = pieces[0].upper(), pieces[1]
    sep = re.search(rb"\r?\n\r?\n", rest)
    if rest.startswith((b"\r\n", b"\n")):
        head, body = b"", rest.lstrip(b"\r\n")
    elif sep:
        head, body = rest[:sep.start()], rest[sep.end():]
    else:
        head, body = rest, b""
    headers: dict[str, str] = {}
    for header_line in head.decode("latin-1").splitlines():
        name, colon, value = header_line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[:int(headers["content-length"])]
    else:
        body = body.rstrip(b"\r\n")
    return method, target, headers, body


def _serialize_part(boundary: str, content_id: str, reply: Response) -> bytes:
    try:
        phrase = http.HTTPStatus(reply.status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"--{boundary}", "Content-Type: application/http",
             f"Content-ID: <response-{content_id}>", "", f"HTTP/1.1 {reply.status} {phrase}"]
    headers = dict(reply.headers)
    headers["Content-Length"] = str(len(reply.body))
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + reply.body + b"\r\n"


class _Handler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 without Nagle (otherwise ~40 ms per request)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        with self.server.fake._lock:  # type: ignore[attr-defined]
            self.server.fake._conns.add(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.fake._lock:  # type: ignore[attr-defined]
                self.server.fake._conns.discard(self.connection)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        fake: FakeGoogleCalendar = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            reply = fake.handle_http(self.command, self.path, headers, body)
        except Exception:
            fake.internal_errors.append(traceback.format_exc())
            reply = _error_response(ApiError(500, "backendError", "Backend Error"))
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.status not in (204, 304):
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.body and self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


# -- client helpers -------------------------------------------------------------------------------

def google_service(base_url: str, token: str | None = "t", **kw: Any) -> Any:
    """A real ``googleapiclient`` Calendar v3 service aimed at the fake (no network).

    ``credentials=`` in ``kw`` replaces the default ``Credentials(token=token)``; other
    keywords go to ``build``.
    """
    import google.oauth2.credentials
    import googleapiclient.discovery

    credentials = kw.pop("credentials", None) or google.oauth2.credentials.Credentials(
        token=token)
    return googleapiclient.discovery.build(
        "calendar", "v3", credentials=credentials, static_discovery=True,
        client_options={"api_endpoint": base_url + "/calendar/v3/"}, **kw)


def batch_request(service: Any, base_url: str, callback: Callable[..., Any] | None) -> Any:
    """A batch aimed at the fake: ``new_batch_http_request()`` ignores ``api_endpoint``."""
    import googleapiclient.http

    del service  # the parts carry their own http; kept for a production-like signature
    return googleapiclient.http.BatchHttpRequest(callback=callback,
                                                 batch_uri=base_url + BATCH_PATH)
