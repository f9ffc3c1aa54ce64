"""CalDAV calendars (Nextcloud, Fastmail, iCloud, Radicale, Xandikos...) on the ``caldav`` library.

Source: RFC 6578 sync-collection for hrefs and etags (one request when nothing changed),
then one ``calendar-multiget`` for what changed. An expired token (403/409/412, depending on
the server) means a full read. A server without sync support is read with a time-range
``calendar-query`` over the window, its ctag deciding whether anything changed.

Target: our reminders are listed with one ``calendar-query`` filtering on our UID namespace
(``…@clientlove``; the marks are checked again on our side); creates are ``PUT`` with
``If-None-Match: *``, updates and deletes carry ``If-Match``. The href of every object comes
from the server, never from the UID. We send no ORGANIZER or ATTENDEE, so no scheduling server
ever invites anyone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urljoin, urlsplit

import caldav
import icalendar
import niquests
from caldav.elements import cdav, dav
from caldav.elements.base import ValuedBaseElement
from caldav.lib import error as dav_error
from caldav.lib.url import URL
from lxml import etree

from daemon.icsread import ReadBudget, read_calendar
from daemon.identity import reminder_hash
from daemon.model import UID_DOMAIN, ChangeSet, Event, ReadScope, Reminder, RemoteReminder
from daemon.reminder_ical import from_vevent, key_of, to_calendar_text
from providers.base import (
    AlreadyExists,
    AuthError,
    BadData,
    CursorExpired,
    NotFound,
    PreconditionFailed,
    ProviderError,
    SequentialWrites,
    TargetLimits,
    Transient,
)

log = logging.getLogger("clientlove.caldav")

#: hrefs fetched per calendar-multiget REPORT
MULTIGET_CHUNK = 250

_OURS_QUERY = f"""<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:prop-filter name="UID">
      <C:text-match collation="i;octet">@{UID_DOMAIN}</C:text-match>
    </C:prop-filter>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""

_CTAG = "{http://calendarserver.org/ns/}getctag"


class CTag(ValuedBaseElement):
    """CalendarServer's collection tag: changes whenever anything in the calendar does."""

    tag: ClassVar[str] = _CTAG


#: What the network and the library raise for a remote's trouble (never our own bugs).
FAULTS: tuple[type[BaseException], ...] = (
    dav_error.DAVError, niquests.exceptions.RequestException, OSError, etree.LxmlError,
)


def _href(url: Any) -> str:
    """A server path, unquoted, as the one key for an object (servers quote ``@`` or not)."""
    return unquote(urlsplit(str(url)).path)


def _status_error(status: int, what: str, provider: str, retry_after: str | None = None):
    """A typed error for an HTTP status; ``None`` for success."""
    if status < 300:
        return None
    if status == 401:
        return AuthError(f"{what}: the server refused the login (HTTP 401); check the username "
                         "and the credential", provider=provider)
    if status == 403:
        return AuthError(f"{what}: access forbidden (HTTP 403)", provider=provider)
    if status == 404:
        return NotFound(f"{what}: not found (HTTP 404)", provider=provider)
    if status in (409, 412):
        return PreconditionFailed(f"{what}: HTTP {status}", provider=provider)
    if status == 429 or status >= 500:
        try:
            after = float(retry_after) if retry_after else None
        except ValueError:
            after = None
        return Transient(f"{what}: HTTP {status}", provider=provider, retry_after=after)
    return BadData(f"{what}: HTTP {status}", provider=provider)


def _translate(exc: BaseException, what: str, provider: str) -> ProviderError:
    """The caldav library's and the network's exceptions as our typed errors.

    The library's messages carry the server's reply, never our password; we keep only
    the class and the status anyway.
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, dav_error.RateLimitError):
        return Transient(f"{what}: HTTP {exc.status or 429} (rate limited)", provider=provider,
                         retry_after=exc.retry_after_seconds)
    if isinstance(exc, dav_error.DAVError):
        status = exc.status
        if status is None and isinstance(exc, dav_error.NotFoundError):
            status = 404
        err = _status_error(status, what, provider) if status else None
        return err or BadData(f"{what}: {type(exc).__name__}", provider=provider)
    return Transient(f"{what}: {type(exc).__name__}", provider=provider)


class _Unsupported(Exception):
    """The server does not do RFC 6578 sync-collection on this calendar."""


class _Dav:
    """One DAV client per provider, made on first use (the secret is read only then)."""

    def __init__(self, name: str, url: str, username: str | None,
                 secret: Callable[[], str] | None, verify_tls: bool, timeout: float) -> None:
        self.name = name
        self.url = url
        self.username = username
        self._secret = secret
        self.verify_tls = verify_tls
        self.timeout = timeout
        self._client: caldav.DAVClient | None = None

    @property
    def client(self) -> caldav.DAVClient:
        if self._client is None:
            kwargs: dict[str, Any] = {}
            if self.username is not None:
                kwargs.update(username=self.username,
                              password=self._secret() if self._secret else "",
                              auth_type="basic")
            self._client = caldav.DAVClient(
                url=self.url, timeout=int(self.timeout), ssl_verify_cert=self.verify_tls,
                enable_rfc6764=False, require_tls=False, **kwargs,
            )
        return self._client

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ProviderError:
            raise
        except FAULTS as exc:
            raise _translate(exc, what, self.name) from None

    def calendar(self, url: str) -> caldav.Calendar:
        return caldav.Calendar(client=self.client, url=url)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _parse_objects(
    objects: Iterable[tuple[str, str | None]], source: str, scope: ReadScope
) -> tuple[list[Event], dict[str, list[str]]]:
    """Events of every (href, data) pair, and the UIDs each href holds."""
    events: list[Event] = []
    uids: dict[str, list[str]] = {}
    budget = ReadBudget()  # one for the whole source: objects must not add up their budgets
    for href, data in objects:
        if not data:
            continue
        before = len(scope.warnings)
        found = read_calendar(data, source, scope, budget=budget)
        for i in range(before, len(scope.warnings)):
            scope.warnings[i] = f"{scope.warnings[i]} (at {href})"
        events.extend(found)
        uids[href] = sorted({e.uid for e in found})
    return events, uids


class CalDavSource:
    """History read from one calendar collection."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        username: str | None = None,
        secret: Callable[[], str] | None = None,
        verify_tls: bool = True,
        timeout: float = 30.0,
        use_sync: bool = True,
    ) -> None:
        self.name = name
        self.url = url if url.endswith("/") else url + "/"
        self.use_sync = use_sync
        self._dav = _Dav(name, self.url, username, secret, verify_tls, timeout)

    def changes(self, cursor: str | None, scope: ReadScope) -> ChangeSet:
        previous: dict[str, Any] = {}
        if cursor:
            try:
                previous = json.loads(cursor)
            except ValueError:
                previous = {}
        reusable = bool(previous) and scope.served_by(previous)
        if reusable and previous.get("mode") == "sync" and previous.get("token"):
            try:
                return self._delta(previous, scope)
            except CursorExpired:
                log.info("%s: sync token expired, reading in full", self.name)
        return self._full(previous if reusable else {}, scope)

    # -- sync-collection -------------------------------------------------------------------
    def _sync(self, token: str | None) -> tuple[str, set[str], set[str]]:
        """``(new token, changed hrefs, deleted hrefs)`` from one sync-collection REPORT."""
        calendar = self._dav.calendar(self.url)
        try:
            result = calendar.get_objects_by_sync_token(
                sync_token=token, load_objects=False, disable_fallback=True)
        except dav_error.RateLimitError as exc:
            raise _translate(exc, f"sync {self.url}", self.name) from None
        except dav_error.DAVError as exc:
            conditions = [str(p) for p in (exc.preconditions or [])]
            if token and (any("valid-sync-token" in c for c in conditions)
                          or exc.status in (403, 409, 412)):
                # Radicale 403, Xandikos 412, others 409: all mean "read in full"
                raise CursorExpired("sync token no longer valid", provider=self.name) from None
            if exc.status in (400, 403, 405, 415, 501) and not token:
                raise _Unsupported(str(exc.status)) from None
            raise _translate(exc, f"sync {self.url}", self.name) from None
        except FAULTS as exc:
            raise _translate(exc, f"sync {self.url}", self.name) from None
        deleted = {_href(u) for u in (getattr(result, "deleted_urls", None) or ())}
        changed = {_href(o.url) for o in result.objects} - deleted
        return str(result.sync_token), changed, deleted

    def _multiget(self, hrefs: Iterable[str]) -> list[tuple[str, str | None]]:
        calendar = self._dav.calendar(self.url)
        wanted = sorted(hrefs)
        out: list[tuple[str, str | None]] = []
        for start in range(0, len(wanted), MULTIGET_CHUNK):
            chunk = [URL.objectify(urljoin(self.url, quote(h)))
                     for h in wanted[start:start + MULTIGET_CHUNK]]
            objects = self._dav.call(f"multiget {self.url}",
                                     lambda c=chunk: calendar.calendar_multiget(c))
            out.extend((_href(o.url), o.data) for o in objects)
        return out

    def _cursor(self, scope: ReadScope, **fields: Any) -> str:
        return json.dumps({**scope.fingerprint(), **fields}, sort_keys=True)

    def _delta(self, previous: dict[str, Any], scope: ReadScope) -> ChangeSet:
        token, changed, deleted = self._sync(previous["token"])
        hrefs: dict[str, list[str]] = dict(previous.get("hrefs", {}))
        if not changed and not deleted:
            return ChangeSet(cursor=self._cursor(scope, mode="sync", token=token, hrefs=hrefs))
        gone: list[str] = []
        for href in changed | deleted:
            gone.extend(hrefs.pop(href, []))
        events, uids = _parse_objects(self._multiget(changed), self.name, scope)
        hrefs.update(uids)
        return ChangeSet(upserted=tuple(events), deleted=tuple(gone),
                         cursor=self._cursor(scope, mode="sync", token=token, hrefs=hrefs))

    def _full(self, previous: dict[str, Any], scope: ReadScope) -> ChangeSet:
        if self.use_sync:
            try:
                token, changed, _ = self._sync(None)
            except _Unsupported:
                log.info("%s: no sync-collection support, using calendar-query", self.name)
                self.use_sync = False
            else:
                events, uids = _parse_objects(self._multiget(changed), self.name, scope)
                return ChangeSet(upserted=tuple(events), full=True,
                                 cursor=self._cursor(scope, mode="sync", token=token,
                                                     hrefs=uids))
        return self._query(previous, scope)

    def _query(self, previous: dict[str, Any], scope: ReadScope) -> ChangeSet:
        """A server without sync: the ctag says whether to run a time-range query."""
        calendar = self._dav.calendar(self.url)
        props = self._dav.call(f"ctag {self.url}",
                               lambda: calendar.get_properties([CTag()]))
        ctag = props.get(_CTAG)
        if ctag and previous.get("mode") == "query" and previous.get("ctag") == ctag:
            return ChangeSet(cursor=self._cursor(scope, mode="query", ctag=ctag))
        found = self._dav.call(
            f"query {self.url}",
            lambda: calendar.search(start=scope.start, end=scope.end, event=True,
                                    expand=False))
        events, _ = _parse_objects(((_href(o.url), o.data) for o in found), self.name, scope)
        return ChangeSet(upserted=tuple(events), full=True,
                         cursor=self._cursor(scope, mode="query", ctag=ctag))


class CalDavTarget(SequentialWrites):
    """Our reminders in a calendar collection (created with MKCALENDAR when missing)."""

    limits = TargetLimits(max_alarms=99, batch_size=1)

    def __init__(
        self,
        url: str,
        *,
        calendar: str | None = None,
        username: str | None = None,
        secret: Callable[[], str] | None = None,
        verify_tls: bool = True,
        timeout: float = 30.0,
        stamp: Callable[[], datetime],
        name: str = "caldav-target",
        read_only: bool = False,
    ) -> None:
        self.name = name
        #: a dry run: a missing calendar is not made, it simply holds nothing of ours
        self.read_only = read_only
        self.url = url if url.endswith("/") else url + "/"
        self.calendar_name = calendar
        self._stamp = stamp
        self._dav = _Dav(name, self.url, username, secret, verify_tls, timeout)
        self._collection: str | None = None if calendar else self.url
        self._sequence: dict[str, int] = {}

    # -- the collection ----------------------------------------------------------------------
    @property
    def collection(self) -> str:
        """The calendar's URL: given, found by display name, or made."""
        if self._collection is None:
            self._collection = self._dav.call(f"find calendar at {self.url}", self._find)
        return self._collection

    def _find(self) -> str:
        wanted = self.calendar_name or ""
        if wanted.startswith(("http://", "https://", "/")):
            return urljoin(self.url, wanted if wanted.endswith("/") else wanted + "/")
        principal = self._dav.client.get_principal()
        for calendar in principal.get_calendars():
            if calendar.get_display_name() == wanted:
                return str(calendar.url)
        if self.read_only:
            return ""
        log.info("%s: making calendar %r", self.name, wanted)
        return str(principal.make_calendar(name=wanted).url)

    # -- reading ----------------------------------------------------------------------------
    def list_ours(self) -> list[RemoteReminder]:
        collection = self.collection
        if not collection:  # not made yet (a dry run)
            return []
        response = self._dav.call(
            f"list {collection}",
            lambda: self._dav.client.report(collection, _OURS_QUERY, depth=1))
        error = _status_error(response.status, f"list {collection}", self.name)
        if error:
            raise error
        try:
            found = response.expand_simple_props(props=[dav.GetEtag(), cdav.CalendarData()])
        except Exception as exc:
            raise BadData(f"list {collection}: unreadable answer ({type(exc).__name__})",
                          provider=self.name) from None
        out: list[RemoteReminder] = []
        for href, props in found.items():
            data = props.get(cdav.CalendarData.tag)
            if not data:
                continue
            etag = props.get(dav.GetEtag.tag)
            try:
                cal = icalendar.Calendar.from_ical(data)
            except Exception:
                log.warning("%s: unreadable object at %s skipped", self.name, href)
                continue
            for component in cal.walk("VEVENT"):
                if key_of(component) is None or component.get("recurrence-id") is not None:
                    continue
                remote = from_vevent(component, ref=_href(href), etag=etag)
                if remote is not None:
                    self._sequence[remote.key] = int(component.get("sequence", 0) or 0)
                    out.append(remote)
                break
        return out

    # -- writing ----------------------------------------------------------------------------
    def _put(self, href: str, body: bytes, headers: dict[str, str], what: str) -> str | None:
        url = urljoin(self.collection, quote(href))
        headers = {"Content-Type": "text/calendar; charset=utf-8", **headers}
        response = self._dav.call(what, lambda: self._dav.client.put(url, body, headers))
        error = _status_error(response.status, what, self.name,
                              response.headers.get("Retry-After"))
        if error:
            raise error
        return response.headers.get("ETag")

    def create(self, reminder: Reminder) -> RemoteReminder:
        href = _href(urljoin(self.collection, quote(f"{reminder.key}.ics")))
        body = to_calendar_text(reminder, self._stamp())
        try:
            etag = self._put(href, body, {"If-None-Match": "*"}, f"create {reminder.key}")
        except PreconditionFailed:
            raise AlreadyExists(f"{reminder.key} exists", provider=self.name) from None
        self._sequence[reminder.key] = 0
        return self._remote(reminder, href, etag)

    def update(self, current: RemoteReminder, reminder: Reminder) -> RemoteReminder:
        sequence = self._sequence.get(current.key, 0) + 1
        body = to_calendar_text(reminder, self._stamp(), sequence)
        headers = {"If-Match": current.etag} if current.etag else {}
        etag = self._put(current.ref, body, headers, f"update {current.key}")
        self._sequence[current.key] = sequence
        return self._remote(reminder, current.ref, etag)

    def delete(self, current: RemoteReminder) -> None:
        url = urljoin(self.collection, quote(current.ref))
        headers = {"If-Match": current.etag} if current.etag else {}
        what = f"delete {current.key}"
        response = self._dav.call(what, lambda: self._dav.client.delete(url, headers))
        error = _status_error(response.status, what, self.name)
        if error:
            raise error

    def flush(self) -> None:
        return None

    @staticmethod
    def _remote(reminder: Reminder, href: str, etag: str | None) -> RemoteReminder:
        digest = reminder_hash(reminder)
        return RemoteReminder(key=reminder.key, ref=href, start=reminder.start,
                              summary=reminder.summary, description=reminder.description,
                              etag=etag, stored_hash=digest, content_hash=digest,
                              end=reminder.end, alarm_before=reminder.alarm_before)
