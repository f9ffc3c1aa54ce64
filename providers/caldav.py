"""CalDAV calendars (Nextcloud, Fastmail, iCloud, Radicale, Xandikos...) on the ``caldav`` library.

Source: RFC 6578 sync-collection for hrefs and etags (one request when nothing changed),
then one ``calendar-multiget`` for what changed. An expired token (403/409/412, depending on
the server) means a full read. A server without sync support is read with a time-range
``calendar-query`` over the window, its ctag deciding whether anything changed.

Target: our reminders are listed with one ``calendar-query`` filtering on our UID namespace
(``…@clientlove``; the marks are checked again on our side); creates are ``PUT`` with
``If-None-Match: *``, updates and deletes carry ``If-Match``. An update reads the object
(a one-href multiget) and merges our fields into it (``reminder_ical.merge_calendar_text``),
so what the user added to our event (location, categories, colour, alarms, X- properties)
stays. The href of every object comes from the server, never from the UID. We send no
ORGANIZER or ATTENDEE, so no scheduling server ever invites anyone.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import quote, unquote, urljoin, urlsplit
from xml.sax.saxutils import escape as xml_escape

import caldav
import icalendar
import niquests
import requests
from caldav.elements import cdav, dav
from caldav.lib import error as dav_error
from lxml import etree
from pydantic import Field, model_validator

from daemon.config.fields import (
    ConfigModel,
    CredentialName,
    HttpUrl,
    OptionalText,
    SourceSettings,
    TargetSettings,
    derived_source_name,
)
from daemon.icsread import ReadBudget, read_calendar
from daemon.identity import reminder_hash
from daemon.model import UID_DOMAIN, ChangeSet, Event, ReadScope, Reminder, RemoteReminder
from daemon.redact import redact_url
from daemon.reminder_ical import (
    from_vevent,
    merge_calendar_text,
    owned_key,
    to_calendar_text,
)
from providers.base import (
    AlreadyExists,
    BadData,
    CursorExpired,
    NotFound,
    PreconditionFailed,
    ProviderError,
    SequentialWrites,
    TargetLimits,
    Transient,
)
from providers.fetch import DEFAULT_DEADLINE, Deadline, capped, watched, watched_session
from providers.httpstatus import error_for_status, parse_retry_after
from providers.multistatus import Answer, Multistatus, read_multistatus
from providers.registry import ProviderSpec, TargetContext

if TYPE_CHECKING:
    import click

log = logging.getLogger("clientlove.caldav")

#: hrefs fetched per calendar-multiget REPORT
MULTIGET_CHUNK = 250
#: An answer of the source's (a sync listing, a multiget of MULTIGET_CHUNK objects) over this
#: many bytes is refused while it streams: a runaway server must not fill the memory.
MAX_ANSWER = 64 << 20
#: A calendar listing more objects than this is refused (a consultant's twenty years of
#: meetings are some 50,000; a runaway server's listing never ends).
MAX_OBJECTS = 100_000
#: The events of one read stay in memory up to this size, then spill to a temporary file.
SPOOL_IN_MEMORY = 8 << 20

USER_AGENT = "clientlove/0.1 (+https://github.com/clientlove/clientlove)"

_OURS_QUERY = f"""<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:prop-filter name="UID">
      <C:text-match collation="i;octet">@{UID_DOMAIN}</C:text-match>
    </C:prop-filter>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""

#: CalendarServer's collection tag: changes whenever anything in the calendar does.
_CTAG = "{http://calendarserver.org/ns/}getctag"


#: What the network and the library raise for a remote's trouble (never our own bugs).
FAULTS: tuple[type[BaseException], ...] = (
    dav_error.DAVError, niquests.exceptions.RequestException, OSError, etree.LxmlError,
)


def _href(url: Any) -> str:
    """A server path, unquoted, as the one key for an object (servers quote ``@`` or not)."""
    return unquote(urlsplit(str(url)).path)


#: CalDAV's 409 answers a PUT whose precondition fails (RFC 4791 5.3.2.1: a UID taken, a
#: calendar that refuses the object): the engine reads it as "changed meanwhile", a create
#: as "exists" (see :meth:`CalDavTarget.create`).
_DAV_OVERRIDES: dict[int, type[ProviderError]] = {409: PreconditionFailed}
_DAV_HINTS = {401: "check the username and the credential"}


def _status_error(status: int, what: str, provider: str,
                  retry_after: str | None = None) -> ProviderError | None:
    """A typed error for an HTTP status (:func:`error_for_status`); ``None`` for success."""
    if status < 300:
        return None
    return error_for_status(status, what, provider=provider,
                            retry_after=parse_retry_after(retry_after),
                            hints=_DAV_HINTS, overrides=_DAV_OVERRIDES)


def _translate(exc: BaseException, what: str, provider: str) -> ProviderError:
    """The caldav library's and the network's exceptions as our typed errors.

    The library's messages carry the server's reply, never our password; we keep only
    the class and the status anyway.
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, dav_error.RateLimitError):
        status = exc.status or 429
        return Transient(f"{what}: HTTP {status} (rate limited)", provider=provider,
                         status=status, retry_after=exc.retry_after_seconds)
    if isinstance(exc, dav_error.DAVError):
        status = exc.status
        if status is None and isinstance(exc, dav_error.NotFoundError):
            status = 404
        err = _status_error(status, what, provider) if status else None
        return err or BadData(f"{what}: {type(exc).__name__}", provider=provider,
                              status=status)
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


class _Spool:
    """The events of a read, pickled to a temporary file as each answer is parsed, and
    handed to the state from there: a big calendar never sits in memory whole."""

    def __init__(self) -> None:
        # closed by events() once read, else when the read is dropped
        self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
        self.count = 0
        #: one budget of work for the whole read: objects must not add up their budgets
        self.budget = ReadBudget()

    def add(self, events: Iterable[Event]) -> None:
        for event in events:
            pickle.dump(event, self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self.count += 1

    def events(self) -> Iterator[Event]:
        """Each event once, in the order added; the file is closed at the end."""
        with self._file as handle:
            handle.seek(0)
            for _ in range(self.count):
                yield pickle.load(handle)  # our own file, written just above


def _parse_into(spool: _Spool, href: str, data: str, source: str, scope: ReadScope) -> list[str]:
    """Read one object's calendar-data into ``spool``; the UIDs it holds."""
    before = len(scope.warnings)
    found = read_calendar(data, source, scope, budget=spool.budget)
    for i in range(before, len(scope.warnings)):
        scope.warnings[i] = f"{scope.warnings[i]} (at {href})"
    spool.add(found)
    return sorted({e.uid for e in found})


def _uid_in(text: str) -> str:
    """The UID an object's text names, for a warning about the object (``?`` if none)."""
    match = _UID_LINE.search(text.replace("\r\n ", "").replace("\n ", ""))
    return match.group(1).strip() if match else "?"


_UID_LINE = re.compile(r"^UID[;:](?:[^:\r\n]*:)?([^\r\n]*)", re.MULTILINE | re.IGNORECASE)

_SYNC = """<?xml version="1.0" encoding="utf-8"?>
<D:sync-collection xmlns:D="DAV:">
  <D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>
  <D:prop><D:getetag/></D:prop>
</D:sync-collection>"""

_MULTIGET = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  {hrefs}
</C:calendar-multiget>"""

_RANGE_QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="{start}" end="{end}"/>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""

_CTAG_PROPFIND = """<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">
  <D:prop><CS:getctag/></D:prop>
</D:propfind>"""

_DATA = "{urn:ietf:params:xml:ns:caldav}calendar-data"
#: sync-collection pages followed for one read (RFC 6578 3.6: a truncated answer, 507)
MAX_SYNC_PAGES = 100


class _SourceHttp:
    """The source's own requests: streamed, capped, under the read's deadline, and every
    answer a server can send turned into a typed error (never a library's TypeError)."""

    def __init__(self, name: str, url: str, username: str | None,
                 secret: Callable[[], str] | None, verify_tls: bool, timeout: float,
                 max_answer: int) -> None:
        self.name = name
        self.url = url
        self.username = username
        self._secret = secret
        self.verify_tls = verify_tls
        self.timeout = timeout
        self.max_answer = max_answer
        self._session: requests.Session | None = None
        self._auth: tuple[str, str] | None = None

    def _ready(self) -> requests.Session:
        if self._session is None:
            if self.username is not None:
                self._auth = (self.username, self._secret() if self._secret else "")
            self._session = watched_session()
        return self._session

    def multistatus(self, method: str, url: str, body: str, depth: str, what: str,
                    deadline: Deadline, each: Callable[[Answer], None],
                    top: Multistatus | None = None) -> None:
        """Call ``each`` with every response of one request answered with a DAV
        multistatus (207), as it arrives; ``top`` receives the answer's sync token.

        Any other answer raises: a status by its meaning (:func:`_status_error`; for a
        REPORT 403/409/412 the caller may see :class:`PreconditionFailed`), a 2xx that is
        not DAV XML (an HTML page, text) :class:`BadData`, an answer over the cap
        :class:`BadData`, a server too slow :class:`TooSlow`, the network :class:`Transient`.
        """
        session = self._ready()
        headers = {"Content-Type": "application/xml; charset=utf-8", "Depth": depth,
                   "User-Agent": USER_AGENT}
        try:
            with watched(deadline, what, self.name), session.request(
                    method, url, data=body.encode(), headers=headers, auth=self._auth,
                    timeout=self.timeout, verify=self.verify_tls, stream=True,
                    allow_redirects=False) as response:
                self._check(response, what)
                pieces = capped(response, self.max_answer, what, self.name)
                for answer in read_multistatus(pieces, what, self.name, top):
                    each(answer)
        except requests.RequestException as exc:
            raise Transient(f"{what}: {type(exc).__name__}", provider=self.name) from None

    def _check(self, response: requests.Response, what: str) -> None:
        status = response.status_code
        if status != 207:
            if status in (200, 204) or 300 <= status < 400:
                kind = _content_kind(response.headers.get("Content-Type"))
                raise BadData(f"{what}: HTTP {status} with {kind}, not a DAV multistatus "
                              "(a login page or a captive portal?)", provider=self.name,
                              status=status)
            error = _status_error(status, what, self.name, response.headers.get("Retry-After"))
            error = error or BadData(f"{what}: HTTP {status}", provider=self.name,
                                     status=status)
            error.expired_token = (  # type: ignore[attr-defined]
                status in (403, 409, 412) and _mentions_sync_token(response))
            raise error
        kind = response.headers.get("Content-Type", "")
        if kind and "xml" not in kind.lower():
            raise BadData(f"{what}: HTTP 207 with {_content_kind(kind)}, not DAV XML",
                          provider=self.name, status=status)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _content_kind(value: str | None) -> str:
    """What an answer's Content-Type says it is, for a message."""
    kind = (value or "").split(";")[0].strip().lower()
    if not kind:
        return "no content type"
    return "an HTML page" if kind == "text/html" else re.sub(r"[^\w./+-]", "", kind)[:60]


def _mentions_sync_token(response: requests.Response) -> bool:
    """Whether an error answer names DAV:valid-sync-token (read at most 64 KB of it)."""
    try:
        head = response.raw.read(1 << 16, decode_content=True) or b""
    except Exception:  # a cut connection: the status alone decides
        return False
    return b"valid-sync-token" in head


class CalDavSource:
    """History read from one calendar collection.

    Every request is streamed and parsed as it arrives, capped at ``max_answer`` bytes and
    bounded, with all the others of one read, by ``deadline`` seconds; the events go to a
    spool as each answer is parsed and reach the state from there.
    """

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
        deadline: float = DEFAULT_DEADLINE,
        max_answer: int = MAX_ANSWER,
    ) -> None:
        self.name = name
        self.url = url if url.endswith("/") else url + "/"
        self.shown = redact_url(self.url)
        self.use_sync = use_sync
        self.deadline = deadline
        self._http = _SourceHttp(name, self.url, username, secret, verify_tls, timeout,
                                 max_answer)

    def changes(self, cursor: str | None, scope: ReadScope) -> ChangeSet:
        previous: dict[str, Any] = {}
        if cursor:
            try:
                previous = json.loads(cursor)
            except ValueError:
                previous = {}
        if not isinstance(previous, dict):
            previous = {}
        reusable = bool(previous) and scope.served_by(previous)
        deadline = Deadline(self.deadline)
        if reusable and previous.get("mode") == "sync" and previous.get("token"):
            try:
                return self._delta(previous, scope, deadline)
            except CursorExpired:
                log.info("%s: sync token expired, reading in full", self.name)
        return self._full(previous if reusable else {}, scope, deadline)

    # -- sync-collection -------------------------------------------------------------------
    def _sync(self, token: str | None, deadline: Deadline) -> tuple[str, set[str], set[str]]:
        """``(new token, changed hrefs, deleted hrefs)`` from sync-collection REPORTs (a
        truncated answer is followed with its new token)."""
        own = _href(self.url).rstrip("/")
        changed: set[str] = set()
        deleted: set[str] = set()
        current = token
        truncated = [False]
        listed = [0]

        def note(answer: Answer) -> None:
            listed[0] += 1
            if listed[0] > MAX_OBJECTS:
                raise BadData(f"sync {self.shown}: the calendar lists more than "
                              f"{MAX_OBJECTS:,} objects; refused", provider=self.name)
            href = unquote(urlsplit(answer.href).path)
            if href.rstrip("/") == own:
                truncated[0] = truncated[0] or answer.status == 507
            elif answer.status == 404:
                deleted.add(href)
                changed.discard(href)
            elif answer.status is not None and answer.status < 300:
                changed.add(href)
                deleted.discard(href)

        for _page in range(MAX_SYNC_PAGES):
            top = Multistatus()
            truncated[0] = False
            self._sync_page(current, token, deadline, note, top)
            if not top.sync_token:
                raise BadData(f"sync {self.shown}: the answer carries no sync token",
                              provider=self.name)
            current = top.sync_token
            if not truncated[0]:
                break
        return current, changed, deleted

    def _sync_page(self, token: str | None, first: str | None, deadline: Deadline,
                   each: Callable[[Answer], None], top: Multistatus) -> None:
        body = _SYNC.format(token=xml_escape(token or ""))
        try:
            self._http.multistatus("REPORT", self.url, body, "1", f"sync {self.shown}",
                                   deadline, each, top)
        except ProviderError as exc:
            status = exc.status
            if first and (getattr(exc, "expired_token", False) or status in (403, 409, 412)):
                # Radicale 403, Xandikos 412, others 409: all mean "read in full"
                raise CursorExpired("sync token no longer valid", provider=self.name,
                                    status=status) from None
            if not first and status in (400, 403, 405, 415, 501):
                raise _Unsupported(str(status)) from None
            raise

    def _multiget(self, hrefs: Iterable[str], scope: ReadScope, deadline: Deadline,
                  spool: _Spool) -> dict[str, list[str]]:
        """Read the objects at ``hrefs`` into ``spool``, a REPORT per chunk; the UIDs each
        href holds."""
        wanted = sorted(hrefs)
        uids: dict[str, list[str]] = {}
        for start in range(0, len(wanted), MULTIGET_CHUNK):
            chunk = wanted[start:start + MULTIGET_CHUNK]
            body = _MULTIGET.format(hrefs="\n  ".join(
                f"<D:href>{xml_escape(quote(h))}</D:href>" for h in chunk))
            self._http.multistatus("REPORT", self.url, body, "1", f"multiget {self.shown}",
                                   deadline, self._reader(scope, spool, uids))
        return uids

    def _reader(self, scope: ReadScope, spool: _Spool, uids: dict[str, list[str]]
                ) -> Callable[[Answer], None]:
        """What reads each answer's calendar-data into ``spool`` (and its UIDs into
        ``uids``); one holding an XML entity is skipped with a warning naming its UID (an
        entity is never resolved)."""

        def read(answer: Answer) -> None:
            href = unquote(urlsplit(answer.href).path)
            data = answer.props.get(_DATA)
            if answer.status is None or answer.status >= 300 or not data:
                return
            if _DATA in answer.entities:
                names = ", ".join(f"&{n};" for n in sorted(set(answer.entities[_DATA])))
                scope.warnings.append(
                    f"{self.name}: skipped event {_uid_in(data)}: its calendar-data holds the "
                    f"XML entity {names}, which is never resolved (at {href})")
                return
            uids[href] = _parse_into(spool, href, data, self.name, scope)

        return read

    def _cursor(self, scope: ReadScope, **fields: Any) -> str:
        return json.dumps({**scope.fingerprint(), **fields}, sort_keys=True)

    def _delta(self, previous: dict[str, Any], scope: ReadScope, deadline: Deadline
               ) -> ChangeSet:
        token, changed, deleted = self._sync(previous["token"], deadline)
        hrefs: dict[str, list[str]] = dict(previous.get("hrefs", {}))
        if not changed and not deleted:
            return ChangeSet(cursor=self._cursor(scope, mode="sync", token=token, hrefs=hrefs))
        gone: list[str] = []
        for href in changed | deleted:
            gone.extend(hrefs.pop(href, []))
        spool = _Spool()
        hrefs.update(self._multiget(changed, scope, deadline, spool))
        return ChangeSet(upserted=spool.events(), deleted=tuple(gone),
                         cursor=self._cursor(scope, mode="sync", token=token, hrefs=hrefs))

    def _full(self, previous: dict[str, Any], scope: ReadScope, deadline: Deadline
              ) -> ChangeSet:
        if self.use_sync:
            try:
                token, changed, _ = self._sync(None, deadline)
            except _Unsupported:
                log.info("%s: no sync-collection support, using calendar-query", self.name)
                self.use_sync = False
            else:
                spool = _Spool()
                uids = self._multiget(changed, scope, deadline, spool)
                return ChangeSet(upserted=spool.events(), full=True,
                                 cursor=self._cursor(scope, mode="sync", token=token,
                                                     hrefs=uids))
        return self._query(previous, scope, deadline)

    def _query(self, previous: dict[str, Any], scope: ReadScope, deadline: Deadline
               ) -> ChangeSet:
        """A server without sync: the ctag says whether to run a time-range query."""
        tags: list[str] = []
        self._http.multistatus("PROPFIND", self.url, _CTAG_PROPFIND, "0", f"ctag {self.shown}",
                               deadline, lambda a: tags.extend(filter(None, [a.props.get(_CTAG)])))
        ctag = tags[0] if tags else None
        if ctag and previous.get("mode") == "query" and previous.get("ctag") == ctag:
            return ChangeSet(cursor=self._cursor(scope, mode="query", ctag=ctag))
        body = _RANGE_QUERY.format(start=_utc(scope.start), end=_utc(scope.end))
        spool = _Spool()
        self._http.multistatus("REPORT", self.url, body, "1", f"query {self.shown}", deadline,
                               self._reader(scope, spool, {}))
        return ChangeSet(upserted=spool.events(), full=True,
                         cursor=self._cursor(scope, mode="query", ctag=ctag))


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


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
                # the server matched our UID namespace only: ours needs all our marks
                if owned_key(component) is None or component.get("recurrence-id") is not None:
                    continue
                remote = from_vevent(component, ref=_href(href), etag=etag)
                if remote is not None:
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
        except PreconditionFailed as exc:
            raise AlreadyExists(f"{reminder.key} exists", provider=self.name,
                                status=exc.status) from None
        return self._remote(reminder, href, etag)

    def _get(self, href: str, what: str) -> tuple[str, str | None]:
        """The object at ``href`` as the server holds it now, and its ETag.

        A one-href ``calendar-multiget`` rather than a GET: the library would try to read a
        GET's iCalendar body as XML and log the failure with a traceback.
        """
        collection = self.collection
        body = _MULTIGET.format(hrefs=f"<D:href>{xml_escape(quote(href))}</D:href>")
        response = self._dav.call(what, lambda: self._dav.client.report(collection, body,
                                                                        depth=1))
        error = _status_error(response.status, what, self.name,
                              response.headers.get("Retry-After"))
        if error:
            raise error
        try:
            found = response.expand_simple_props(props=[dav.GetEtag(), cdav.CalendarData()])
        except Exception as exc:
            raise BadData(f"{what}: unreadable answer ({type(exc).__name__})",
                          provider=self.name) from None
        for got, props in found.items():
            data = props.get(cdav.CalendarData.tag)
            if _href(got) == href and data:
                return data, props.get(dav.GetEtag.tag)
        raise NotFound(f"{what}: not found", provider=self.name)

    def update(self, current: RemoteReminder, reminder: Reminder) -> RemoteReminder:
        """Merge the move into the object as the server holds it (GET), then PUT it back
        with ``If-Match``: the user's LOCATION, CATEGORIES, alarms and X- properties stay."""
        what = f"update {current.key}"
        held, held_etag = self._get(current.ref, what)
        # If-Match the version the engine decided on: should the object have changed since
        # (then the GET read a newer one), the server answers 412 and the user wins.
        try:
            body = merge_calendar_text(held, reminder, self._stamp())
        except LookupError:
            raise PreconditionFailed(f"{what}: the object no longer holds it",
                                     provider=self.name) from None
        except ValueError as exc:
            raise BadData(f"{what}: the server's object is not iCalendar ({exc})",
                          provider=self.name) from None
        tag = current.etag or held_etag
        etag = self._put(current.ref, body, {"If-Match": tag} if tag else {}, what)
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


# -- its config entries, its auth command and its place in the registry -----------------------


class _DavLogin(ConfigModel):
    """Where a CalDAV server is and how to log in (the password stays in a credential)."""

    url: HttpUrl = Field(description="The calendar collection's address (for the target "
                         "also the server's, with calendar naming one).")
    username: OptionalText = Field(default=None, description="The login.")
    credential: CredentialName | None = Field(
        default=None, description="The name of the credential holding the password "
        "(`clientlove auth caldav NAME` stores it), never the password itself.")
    timeout: float = Field(default=30.0, gt=0,
                           description="Seconds each wait for the server's bytes may take.")
    deadline: float = Field(default=300.0, gt=0,
                            description="Seconds a whole read may take.")
    verify_tls: bool = Field(default=True,
                             description="Check the server's certificate (keep it true).")

    @model_validator(mode="after")
    def _login_pair(self) -> _DavLogin:
        if self.credential and not self.username:
            raise ValueError("a credential needs a username")
        return self


class CalDavSourceConfig(_DavLogin, SourceSettings):
    """A CalDAV calendar collection to read the history from."""

    role: ClassVar[str] = "a CalDAV calendar collection to read"

    type: Literal["caldav"] = Field(default="caldav", description="caldav")

    @classmethod
    def default_name(cls, data: Any) -> str | None:
        return derived_source_name(None, data.get("url"))


class CalDavTargetConfig(_DavLogin, TargetSettings):
    """The CalDAV calendar our reminders go to: a collection URL, or a server URL and the
    display name of a calendar (made when missing)."""

    role: ClassVar[str] = "the CalDAV calendar our reminders go to"

    type: Literal["caldav"] = Field(default="caldav", description="caldav")
    calendar: str | None = Field(
        default=None, description="The display name of the calendar on the server at url "
        "(made when missing); leave out when url is the collection itself.")

    def identity(self) -> str:
        parts = urlsplit(self.url)
        url = f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}"
        url += f":{parts.port}" if parts.port else ""
        text = f"caldav {url}{parts.path.rstrip('/')}/"  # a collection, with or without /
        return text + (f" calendar {self.calendar!r}" if self.calendar else "")


def _source(cfg: CalDavSourceConfig) -> CalDavSource:
    from providers import secret_getter

    assert cfg.name is not None  # every validated source entry is named
    return CalDavSource(cfg.name, cfg.url, username=cfg.username,
                        secret=secret_getter(cfg.credential), verify_tls=cfg.verify_tls,
                        timeout=cfg.timeout, deadline=cfg.deadline)


def _target(cfg: CalDavTargetConfig, context: TargetContext) -> CalDavTarget:
    from providers import secret_getter

    return CalDavTarget(cfg.url, calendar=cfg.calendar, username=cfg.username,
                        secret=secret_getter(cfg.credential), verify_tls=cfg.verify_tls,
                        timeout=cfg.timeout, stamp=context.stamp, name="caldav-target",
                        read_only=context.read_only)


def _auth_command() -> click.Command:
    """``clientlove auth caldav CREDENTIAL``: store a password, then try the logins."""
    import sys

    import click

    from daemon import cli

    @click.command("caldav")
    @click.argument("credential")
    @click.option("--password-stdin", is_flag=True,
                  help="Read the password from standard input.")
    @cli.common_options
    @click.pass_context
    def auth_caldav(ctx: click.Context, credential: str, password_stdin: bool) -> None:
        """Ask for a CalDAV password (no echo) and store it as CREDENTIAL in the keyring.

        When the config can be read, every CalDAV source or target naming CREDENTIAL is
        then tried with it.
        """
        from daemon.credentials import CredentialError, is_plain_name, store_secret

        if not is_plain_name(credential):
            raise click.BadParameter("a plain name, like work-dav", param_hint="CREDENTIAL")
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = click.prompt(f"Password for {credential}", hide_input=True,
                                    confirmation_prompt=True)
        if not password:
            raise click.UsageError("an empty password was not stored")
        try:
            store_secret(credential, password)
        except CredentialError as exc:
            cli.fail(ctx, str(exc))
        click.echo(f"stored credential {credential!r} in the system keyring")
        cli.check_logins(ctx, "caldav", credential)

    return auth_caldav


SPEC = ProviderSpec(
    type="caldav",
    summary="CalDAV calendars (Nextcloud, Fastmail, iCloud, Radicale, Xandikos...)",
    source_config=CalDavSourceConfig,
    target_config=CalDavTargetConfig,
    build_source=_source,
    build_target=_target,
    capabilities=frozenset({"incremental", "reports_deletions", "cursor_can_expire"}),
    limits=CalDavTarget.limits,
    auth=_auth_command,
    loggers=("caldav",),
)
