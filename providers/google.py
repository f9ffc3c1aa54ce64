"""Google Calendar through the REST API v3 (``google-api-python-client``), not Google's CalDAV.

Source: ``events.list`` with ``singleEvents`` and explicit ``eventTypes``; the first read is a
full sync bounded by ``timeMin`` (as Google's sync guide shows), then incremental with the
stored ``nextSyncToken``; 410 means drop the token and the cached events and sync in full.

Target: our events carry a client-chosen ``id`` (base32hex of the key) and
``extendedProperties.private`` (a marker, the key and the content hash), one popup reminder,
``transparency: transparent``, no attendees, and every write says ``sendUpdates=none``. They
are listed with the ``privateExtendedProperty`` filter; writes go in batches of up to 50,
updates and deletes carry ``If-Match``. An update is an ``events.patch`` of our fields only
(summary, description, start, end, our private keys, the reminders with the user's own popups
kept), so a location, colour or popup the user added stays. A 409 on insert means the id
exists: if the user deleted that event, the deletion is respected and the id never used again.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import re
import socket
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from daemon.config.fields import (
    ConfigModel,
    CredentialName,
    SourceSettings,
    TargetSettings,
    Text,
    http_url,
)
from daemon.identity import content_hash, parse_key, reminder_hash
from daemon.model import (
    Attendee,
    ChangeSet,
    Event,
    NeedleKinds,
    PartStat,
    ReadScope,
    Reminder,
    RemoteReminder,
)
from providers.base import (
    AlreadyExists,
    AuthError,
    BadData,
    CursorExpired,
    NotFound,
    PreconditionFailed,
    ProviderError,
    TargetLimits,
    Transient,
    Write,
    WriteResult,
)
from providers.httpstatus import error_for_status, parse_retry_after
from providers.registry import ProviderSpec, TargetContext

if TYPE_CHECKING:
    import click

log = logging.getLogger("clientlove.google")


def google_id(key: str) -> str:
    """A Google event id for a key: base32hex (``a-v0-9``) of a digest, stable and valid."""
    digest = hashlib.sha256(f"clientlove:{key}".encode()).digest()[:20]
    return base64.b32hexencode(digest).decode().lower().rstrip("=")

#: Least privilege: events (read the history, write ours), the calendar list (find a calendar
#: by name), and calendars this app creates (the "Client love" calendar).
SCOPES = [
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.calendarlist.readonly",
    "https://www.googleapis.com/auth/calendar.app.created",
]
DEFAULT_API_BASE = "https://www.googleapis.com"
BATCH_SIZE = 50
PAGE_SIZE = 2500
EVENT_TYPES = ["default"]
MARKER = "clientlove"
KEY_FIELD = "clientloveKey"
HASH_FIELD = "clientloveHash"
#: the minutes of our popup, so a popup the user added beside it is never taken for ours
ALARM_FIELD = "clientloveAlarm"
#: Google's limit of reminder overrides per event
MAX_OVERRIDES = 5
RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"}
#: Google answers a rate limit with 403 and one of RATE_REASONS: worth another try.
_RATE_LIMITED: dict[int, type[ProviderError]] = {403: Transient}
_HINTS = {401: "sign in again with `clientlove auth google`"}
_WORDS = re.compile(r"\w+")
_PARTSTAT = {"accepted": PartStat.ACCEPTED, "declined": PartStat.DECLINED,
             "tentative": PartStat.TENTATIVE, "needsAction": PartStat.NEEDS_ACTION}


def _reason(exc: Any) -> str:
    try:
        body = json.loads(exc.content.decode("utf-8", "replace"))
        errors = body.get("error", {}).get("errors") or [{}]
        return str(errors[0].get("reason") or body.get("error", {}).get("status") or "")
    except (ValueError, AttributeError, TypeError):
        return ""


def translate(exc: BaseException, what: str, provider: str) -> ProviderError:
    """googleapiclient's, google-auth's and the network's exceptions as our typed errors."""
    from google.auth.exceptions import RefreshError, TransportError
    from googleapiclient.errors import HttpError

    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, RefreshError):
        return AuthError(f"{what}: Google refused the stored sign-in (revoked or expired); run "
                         "`clientlove auth google` again", provider=provider)
    if isinstance(exc, HttpError):
        status = int(exc.resp.status)
        reason = _reason(exc)
        retry_after = parse_retry_after(exc.resp.get("retry-after"))
        if reason == "quotaExceeded" and retry_after is None:
            retry_after = 60.0
        return error_for_status(status, what, provider=provider, retry_after=retry_after,
                                detail=reason, hints=_HINTS,
                                overrides=_RATE_LIMITED if reason in RATE_REASONS else None)
    # a connection cut mid-answer (IncompleteRead), a half JSON body: the network's doing
    network = isinstance(exc, (TransportError, OSError, socket.timeout,
                               http.client.HTTPException, json.JSONDecodeError))
    if network or type(exc).__module__.startswith("httplib2"):
        return Transient(f"{what}: {type(exc).__name__}", provider=provider)
    raise exc


def credentials_from_json(text: str) -> Any:
    """google-auth credentials from the authorized-user JSON of ``Credentials.to_json()``.

    Not ``Credentials.from_authorized_user_info``: it always replaces the ``token_uri`` with
    Google's own, and the token endpoint must come from the credential.
    """
    from google.oauth2.credentials import Credentials

    info = json.loads(text)
    expiry = info.get("expiry")
    scopes = info.get("scopes")
    return Credentials(
        token=info.get("token"),
        refresh_token=info["refresh_token"],
        token_uri=info.get("token_uri") or "https://oauth2.googleapis.com/token",
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        scopes=scopes.split() if isinstance(scopes, str) else scopes,
        expiry=datetime.strptime(expiry.rstrip("Z").split(".")[0], "%Y-%m-%dT%H:%M:%S")
        if expiry else None,
    )


class GoogleApi:
    """One signed-in API client, made on first use; refreshed tokens are stored back."""

    def __init__(
        self,
        name: str,
        *,
        credentials_json: Callable[[], str],
        save: Callable[[str], None] | None = None,
        api_base: str = DEFAULT_API_BASE,
        timeout: float = 30.0,
    ) -> None:
        self.name = name
        self._load = credentials_json
        self._save = save
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self._service: Any = None
        self._creds: Any = None
        self._token: str | None = None

    @property
    def service(self) -> Any:
        if self._service is None:
            import google_auth_httplib2
            import httplib2
            from googleapiclient.discovery import build

            try:
                creds = credentials_from_json(self._load())
            except (ValueError, KeyError, TypeError) as exc:
                raise AuthError(f"the stored Google sign-in is not readable ({type(exc).__name__});"
                                " run `clientlove auth google` again", provider=self.name) from None
            self._creds, self._token = creds, creds.token
            http = google_auth_httplib2.AuthorizedHttp(
                creds, http=httplib2.Http(timeout=self.timeout))
            self._service = build(
                "calendar", "v3", http=http, static_discovery=True, cache_discovery=False,
                client_options={"api_endpoint": f"{self.api_base}/calendar/v3/"})
        return self._service

    def execute(self, request: Any, what: str) -> Any:
        try:
            result = request.execute(num_retries=0)
        except Exception as exc:
            raise translate(exc, what, self.name) from None
        self.store_refreshed()
        return result

    def batch(self, callback: Callable[[str, Any, Any], None]) -> Any:
        from googleapiclient.http import BatchHttpRequest

        return BatchHttpRequest(callback=callback,
                                batch_uri=f"{self.api_base}/batch/calendar/v3")

    def run_batch(self, batch: Any, what: str) -> None:
        try:
            batch.execute(http=self.service._http)
        except Exception as exc:
            raise translate(exc, what, self.name) from None
        self.store_refreshed()

    def store_refreshed(self) -> None:
        """Keep a refreshed access token for the next run (best effort)."""
        creds = self._creds
        if creds is None or self._save is None or creds.token == self._token:
            return
        self._token = creds.token
        try:
            self._save(creds.to_json())
        except Exception as exc:
            log.warning("%s: could not store the refreshed sign-in: %s", self.name,
                        type(exc).__name__)


def _when(value: dict[str, Any] | None, tz: Any) -> date | datetime | None:
    if not value:
        return None
    if "dateTime" in value:
        moment = datetime.fromisoformat(value["dateTime"].replace("Z", "+00:00"))
        if moment.tzinfo is None:
            zone = value.get("timeZone")
            moment = moment.replace(tzinfo=ZoneInfo(zone) if zone else tz)
        return moment
    if "date" in value:
        return date.fromisoformat(value["date"])
    return None


def event_from_google(item: dict[str, Any], source: str, tz: Any) -> Event | None:
    """Our plain event for one Google event resource (``None`` when it has no start)."""
    start = _when(item.get("start"), tz)
    if start is None:
        return None
    organizer = item.get("organizer") or {}
    attendees = tuple(
        Attendee(str(a.get("email", "")).lower(),
                 _PARTSTAT.get(a.get("responseStatus", ""), PartStat.OTHER),
                 bool(a.get("self")))
        for a in item.get("attendees") or () if a.get("email"))
    private = (item.get("extendedProperties") or {}).get("private") or {}
    # our marks never hide a meeting with guests (we write none; see GoogleTarget._remote)
    ours = private.get(KEY_FIELD) if not _has_guests(item) else None
    return Event(
        source=source,
        uid=str(item["id"]),
        start=start,
        summary=str(item.get("summary") or ""),
        description=str(item.get("description") or "")[:2000],
        cancelled=item.get("status") == "cancelled",
        organizer=None if organizer.get("self") or not organizer.get("email")
        else str(organizer["email"]).lower(),
        attendees=attendees,
        clientlove_key=ours,
        classification=_VISIBILITY.get(str(item.get("visibility") or "default"), "PRIVATE"),
    )


#: Google's ``visibility`` as iCalendar's CLASS ("default": the calendar's, public to its
#: readers); a value we do not know is treated as private (RFC 5545 says so for CLASS).
_VISIBILITY = {"default": "", "public": "PUBLIC", "private": "PRIVATE",
               "confidential": "CONFIDENTIAL"}


def _has_guests(item: dict[str, Any]) -> bool:
    """Whether an event has attendees, or an organizer other than this calendar: then it
    is a meeting, never one of our reminders, whatever its private properties say."""
    organizer = item.get("organizer") or {}
    return bool(item.get("attendees")) or (bool(organizer) and not organizer.get("self"))


def could_name_client(event: Event, kinds: NeedleKinds | None) -> bool:
    """A cheap superset of attribution: does anything in the event touch a needle?"""
    if kinds is None or event.clientlove_key:
        return True
    for email in [a.email for a in event.attendees] + [event.organizer or ""]:
        if email in kinds.emails:
            return True
        labels = email.rpartition("@")[2].split(".")
        if any(".".join(labels[i:]) in kinds.domains for i in range(len(labels) - 1)):
            return True
    title = event.summary.lower()
    if kinds.words and not kinds.words.isdisjoint(_WORDS.findall(title)):
        return True
    if any(phrase in title for phrase in kinds.phrases):
        return True
    # beyond ASCII, case rules differ (the Turkish dotted I): keep it, attribution decides
    return bool(kinds.phrases) and not title.isascii()


class GoogleSource:
    """History read from one Google calendar."""

    def __init__(self, name: str, calendar: str, api: GoogleApi) -> None:
        self.name = name
        self.calendar = calendar
        self.api = api

    def _list(self, **params: Any) -> tuple[list[dict[str, Any]], str | None]:
        events = self.api.service.events()
        items: list[dict[str, Any]] = []
        page: str | None = None
        while True:
            request = events.list(calendarId=self.calendar, maxResults=PAGE_SIZE,
                                  singleEvents=True, eventTypes=EVENT_TYPES, pageToken=page,
                                  **params)
            try:
                reply = self.api.execute(request, f"list {self.calendar}")
            except NotFound as exc:
                if params.get("syncToken") and exc.status == 410:
                    raise CursorExpired("sync token expired", provider=self.name,
                                        status=410) from None
                raise
            items.extend(reply.get("items") or ())
            page = reply.get("nextPageToken")
            if not page:
                return items, reply.get("nextSyncToken")

    def changes(self, cursor: str | None, scope: ReadScope) -> ChangeSet:
        previous: dict[str, Any] = {}
        if cursor:
            try:
                previous = json.loads(cursor)
            except ValueError:
                previous = {}
        if previous.get("token") and scope.served_by(previous):
            try:
                items, token = self._list(syncToken=previous["token"])
            except CursorExpired:
                log.info("%s: sync token expired, syncing in full", self.name)
            else:
                changed = [str(i["id"]) for i in items]
                events = self._events(items, scope, skip_cancelled=True)
                return ChangeSet(upserted=tuple(events), deleted=tuple(changed),
                                 cursor=self._cursor(scope, token))
        items, token = self._list(timeMin=scope.start.isoformat())
        events = self._events(items, scope, skip_cancelled=True)
        return ChangeSet(upserted=tuple(events), full=True, cursor=self._cursor(scope, token))

    def _events(self, items: Iterable[dict[str, Any]], scope: ReadScope,
                skip_cancelled: bool) -> list[Event]:
        out = []
        for item in items:
            if skip_cancelled and item.get("status") == "cancelled":
                continue
            try:
                event = event_from_google(item, self.name, scope.tz)
            except (ValueError, KeyError, TypeError) as exc:
                scope.warnings.append(f"{self.name}: skipped event {item.get('id', '?')}: "
                                      f"{type(exc).__name__}")
                continue
            if event is None:
                scope.warnings.append(f"{self.name}: skipped event {item.get('id', '?')}: "
                                      "no start")
                continue
            # Google expands a series beyond the window (a sync token allows no timeMin or
            # timeMax): only the occurrences inside it, as every source gives them
            timed = isinstance(event.start, datetime)
            low: date = scope.start if timed else scope.start.date()
            high: date = scope.end if timed else scope.end.date()
            if item.get("recurringEventId") and not low <= event.start < high:
                continue
            if scope.prefilter and not could_name_client(event, scope.kinds):
                continue
            out.append(event)
        return out

    def _cursor(self, scope: ReadScope, token: str | None) -> str:
        return json.dumps({**scope.fingerprint(), "token": token}, sort_keys=True)


def _minutes(reminder: Reminder) -> int:
    return int(reminder.alarm_before.total_seconds() // 60)


def our_popup(item: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """Our popup among an event's reminder overrides, with its index: the one with the
    minutes we recorded, else (an event written before that) the first popup."""
    overrides = (item.get("reminders") or {}).get("overrides") or []
    popups = [(i, o) for i, o in enumerate(overrides) if o.get("method") == "popup"]
    recorded = ((item.get("extendedProperties") or {}).get("private") or {}).get(ALARM_FIELD)
    for index, override in popups:
        if recorded is not None and str(override.get("minutes")) == str(recorded):
            return index, override
    return popups[0] if popups and recorded is None else None


def merged_overrides(held: dict[str, Any], minutes: int) -> list[dict[str, Any]]:
    """The held event's reminder overrides with ours set to ``minutes``: ours first, the
    user's own after it as they are, at most ``MAX_OVERRIDES`` in all."""
    overrides = (held.get("reminders") or {}).get("overrides") or []
    ours = our_popup(held)
    mine = {"method": "popup", "minutes": minutes}
    theirs = [dict(o) for i, o in enumerate(overrides)
              if (ours is None or i != ours[0]) and o != mine]
    return [mine, *theirs][:MAX_OVERRIDES]


class GoogleTarget:
    """Our reminders in a Google calendar (made when a name is given and missing)."""

    limits = TargetLimits(max_alarms=5, max_alarm_before=timedelta(minutes=40320),
                          batch_size=BATCH_SIZE)

    def __init__(self, calendar: str, api: GoogleApi, *, tz: Any,
                 name: str = "google-target", read_only: bool = False) -> None:
        self.name = name
        #: a dry run: a missing calendar is not made, it simply holds nothing of ours
        self.read_only = read_only
        self.calendar = calendar
        self.api = api
        self.tz = tz
        self._id: str | None = None
        #: event id -> the event as last listed or written (its etag says which version)
        self._held: dict[str, dict[str, Any]] = {}

    @property
    def calendar_id(self) -> str:
        if self._id is None:
            self._id = self._find()
        return self._id

    def _find(self) -> str:
        wanted = self.calendar
        if wanted == "primary" or "@" in wanted:
            return wanted
        service = self.api.service
        page = None
        while True:
            reply = self.api.execute(service.calendarList().list(pageToken=page),
                                     "calendar list")
            for entry in reply.get("items") or ():
                if entry.get("summary") == wanted:
                    return str(entry["id"])
            page = reply.get("nextPageToken")
            if not page:
                break
        if self.read_only:
            return ""
        log.info("%s: making calendar %r", self.name, wanted)
        made = self.api.execute(service.calendars().insert(
            body={"summary": wanted, "timeZone": getattr(self.tz, "key", "UTC")}),
            f"make calendar {wanted}")
        return str(made["id"])

    # -- reading ------------------------------------------------------------------------------
    def list_ours(self) -> list[RemoteReminder]:
        if not self.calendar_id:  # not made yet (a dry run)
            return []
        events = self.api.service.events()
        out: list[RemoteReminder] = []
        self._held.clear()
        page = None
        while True:
            request = events.list(calendarId=self.calendar_id, maxResults=PAGE_SIZE,
                                  privateExtendedProperty=f"{MARKER}=1", pageToken=page)
            reply = self.api.execute(request, f"list ours in {self.calendar}")
            for item in reply.get("items") or ():
                remote = self._remote(item)
                if remote is not None:
                    self._held[remote.ref] = item
                    out.append(remote)
            page = reply.get("nextPageToken")
            if not page:
                return out

    def _remote(self, item: dict[str, Any]) -> RemoteReminder | None:
        private = (item.get("extendedProperties") or {}).get("private") or {}
        key = private.get(KEY_FIELD)
        if item.get("status") == "cancelled" or not key or parse_key(key) is None:
            return None
        if _has_guests(item):  # someone added guests: a meeting now, not ours to change
            return None
        start = _when(item.get("start"), self.tz)
        if start is None:
            return None
        end = _when(item.get("end"), self.tz)
        ours = our_popup(item)
        alarm = None if ours is None else timedelta(minutes=int(ours[1]["minutes"]))
        summary = str(item.get("summary") or "")
        description = str(item.get("description") or "")
        return RemoteReminder(
            key=key, ref=str(item["id"]), start=start, summary=summary,
            description=description, etag=item.get("etag"),
            stored_hash=private.get(HASH_FIELD),
            content_hash=content_hash(summary, start, end, description, alarm),
            end=end, alarm_before=alarm,
        )

    # -- writing ------------------------------------------------------------------------------
    @staticmethod
    def _when(moment: datetime) -> dict[str, str]:
        zone = getattr(moment.tzinfo, "key", None)
        return {"dateTime": moment.isoformat(), **({"timeZone": zone} if zone else {})}

    @staticmethod
    def _private(reminder: Reminder) -> dict[str, str]:
        return {MARKER: "1", KEY_FIELD: reminder.key, HASH_FIELD: reminder_hash(reminder),
                ALARM_FIELD: str(_minutes(reminder))}

    def body(self, reminder: Reminder) -> dict[str, Any]:
        """A new event of ours, whole."""
        return {
            "id": google_id(reminder.key),
            "summary": reminder.summary,
            "description": reminder.description,
            "start": self._when(reminder.start),
            "end": self._when(reminder.end),
            "transparency": "transparent",
            "visibility": "private",
            "reminders": {"useDefault": False,
                          "overrides": [{"method": "popup", "minutes": _minutes(reminder)}]},
            "extendedProperties": {"private": self._private(reminder)},
        }

    def patch_body(self, reminder: Reminder, held: dict[str, Any]) -> dict[str, Any]:
        """A move or refresh as an ``events.patch``: our fields only.

        ``reminders`` is replaced as a whole by a patch, so it carries the user's own popups
        and emails as ``held`` has them, ours replaced (within Google's 5 overrides);
        ``extendedProperties.private`` merges key by key, so other apps' keys stay.
        """
        return {
            "summary": reminder.summary,
            "description": reminder.description,
            "start": self._when(reminder.start),
            "end": self._when(reminder.end),
            "reminders": {"useDefault": False,
                          "overrides": merged_overrides(held, _minutes(reminder))},
            "extendedProperties": {"private": self._private(reminder)},
        }

    def _request(self, write: Write) -> Any:
        events = self.api.service.events()
        if write.kind == "create":
            assert write.reminder is not None
            return events.insert(calendarId=self.calendar_id, body=self.body(write.reminder),
                                 sendUpdates="none")
        assert write.current is not None
        if write.kind == "update":
            assert write.reminder is not None
            held = self._held.get(write.current.ref) or {}
            request = events.patch(calendarId=self.calendar_id, eventId=write.current.ref,
                                   body=self.patch_body(write.reminder, held),
                                   sendUpdates="none")
        else:
            request = events.delete(calendarId=self.calendar_id, eventId=write.current.ref,
                                    sendUpdates="none")
        if write.current.etag:
            request.headers["If-Match"] = write.current.etag
        return request

    def _hold(self, write: Write) -> ProviderError | None:
        """Have the event an update patches, in the version the update is conditional on
        (listed this cycle, else read now); the error when it cannot be read."""
        assert write.current is not None
        held = self._held.get(write.current.ref)
        if held is not None and held.get("etag") == write.current.etag:
            return None
        try:
            self._held[write.current.ref] = self.api.execute(self.api.service.events().get(
                calendarId=self.calendar_id, eventId=write.current.ref),
                f"get {write.current.key}")
        except ProviderError as exc:
            return exc
        return None

    def apply(self, writes: list[Write]) -> list[WriteResult]:
        results: list[WriteResult] = [None] * len(writes)
        for index, write in enumerate(writes):
            if write.kind == "update":
                results[index] = self._hold(write)
        for start in range(0, len(writes), BATCH_SIZE):
            chunk = list(range(start, min(start + BATCH_SIZE, len(writes))))

            def done(request_id: str, response: Any, exception: Any) -> None:
                index = int(request_id)
                write = writes[index]
                what = f"{write.kind} {(write.reminder or write.current).key}"  # type: ignore[union-attr]
                if exception is not None:
                    try:
                        results[index] = translate(exception, what, self.name)
                    except Exception as exc:
                        results[index] = BadData(f"{what}: {type(exc).__name__}",
                                                 provider=self.name)
                elif write.kind == "delete":
                    results[index] = None
                else:
                    results[index] = self._remote(response) or BadData(
                        f"{what}: unreadable answer", provider=self.name)
                    self._held[str(response.get("id"))] = response

            chunk = [i for i in chunk if results[i] is None]
            if not chunk:
                continue
            batch = self.api.batch(done)
            for index in chunk:
                batch.add(self._request(writes[index]), request_id=str(index))
            try:
                self.api.run_batch(batch, f"batch of {len(chunk)} writes")
            except ProviderError as exc:
                for index in chunk:
                    results[index] = exc
        for index, result in enumerate(results):
            if isinstance(result, AlreadyExists) and writes[index].kind == "create":
                results[index] = self._existing(writes[index], result.status)
            elif isinstance(result, AuthError) and writes[index].kind != "create" and \
                    result.status == 403:
                # updating an event the user deleted may answer 403: it is gone
                results[index] = NotFound(result.message, provider=self.name, status=403)
            elif isinstance(result, PreconditionFailed) and self._deleted(writes[index]):
                # a stale etag because the user deleted it: gone, not merely changed
                results[index] = NotFound(f"{result.message} (deleted by the user)",
                                          provider=self.name, status=result.status)
        return results

    def _deleted(self, write: Write) -> bool:
        assert write.current is not None
        try:
            item = self.api.execute(self.api.service.events().get(
                calendarId=self.calendar_id, eventId=write.current.ref),
                f"get {write.current.key}")
        except NotFound:
            return True
        except ProviderError:
            return False
        return item.get("status") == "cancelled"

    def _existing(self, write: Write, status: int | None) -> AlreadyExists:
        """A 409 on insert: is the id held by a live event, or one the user deleted?"""
        assert write.reminder is not None
        event_id = google_id(write.reminder.key)
        try:
            item = self.api.execute(self.api.service.events().get(
                calendarId=self.calendar_id, eventId=event_id), f"get {write.reminder.key}")
        except ProviderError:
            return AlreadyExists(f"{write.reminder.key} exists", provider=self.name,
                                 status=status)
        gone = item.get("status") == "cancelled"
        note = " (deleted by the user)" if gone else ""
        return AlreadyExists(f"{write.reminder.key} exists{note}", provider=self.name,
                             status=status, gone=gone)

    def _one(self, write: Write) -> WriteResult:
        (result,) = self.apply([write])
        if isinstance(result, ProviderError):
            raise result
        return result

    def create(self, reminder: Reminder) -> RemoteReminder:
        result = self._one(Write("create", reminder))
        assert isinstance(result, RemoteReminder)
        return result

    def update(self, current: RemoteReminder, reminder: Reminder) -> RemoteReminder:
        result = self._one(Write("update", reminder, current))
        assert isinstance(result, RemoteReminder)
        return result

    def delete(self, current: RemoteReminder) -> None:
        self._one(Write("delete", None, current))

    def flush(self) -> None:
        return None


# -- its config entries, its auth command and its place in the registry -----------------------


class _GoogleAccount(ConfigModel):
    """A Google account: the credential holds the authorized-user JSON, never the config."""

    credential: CredentialName = Field(
        description="The name of the credential holding the sign-in (`clientlove auth "
        "google --credential NAME` stores it).")
    api_base: str = Field(default=DEFAULT_API_BASE,
                          description="The API's address (only tests change it).")
    timeout: float = Field(default=30.0, gt=0,
                           description="Seconds each wait for Google's answer may take.")

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, value: str) -> str:
        return http_url(value).rstrip("/")


class GoogleSourceConfig(_GoogleAccount, SourceSettings):
    """A Google calendar to read the history from (``primary`` or a calendar id)."""

    role: ClassVar[str] = "a Google calendar to read"

    type: Literal["google"] = Field(default="google", description="google")
    calendar: Text = Field(default="primary",
                           description="primary, or a calendar id (like "
                           "team@group.calendar.google.com).")

    @classmethod
    def default_name(cls, data: Any) -> str | None:
        return f"google-{data.get('calendar') or 'primary'}"


class GoogleTargetConfig(_GoogleAccount, TargetSettings):
    """The Google calendar our reminders go to: an id, ``primary``, or a name (made when
    missing)."""

    role: ClassVar[str] = "the Google calendar our reminders go to"

    type: Literal["google"] = Field(default="google", description="google")
    calendar: Text = Field(default="Client love",
                           description="A calendar id, primary, or the name of a calendar "
                           "of yours (made when missing).")

    def identity(self) -> str:
        return f"google calendar {self.calendar!r} at {self.api_base}"


def _api(cfg: _GoogleAccount, name: str) -> GoogleApi:
    """The signed-in API client for an entry; refreshed tokens go back to the keyring
    (a systemd credential is read-only, so there the token is simply refreshed each run)."""
    import os
    from pathlib import Path

    from providers import secret_getter

    def save(text: str) -> None:
        folder = os.environ.get("CREDENTIALS_DIRECTORY")
        if folder and (Path(folder) / cfg.credential).exists():
            return
        from daemon.credentials import store_secret

        store_secret(cfg.credential, text)

    load = secret_getter(cfg.credential)
    assert load is not None  # a Google entry always names its credential
    return GoogleApi(name, credentials_json=load, save=save, api_base=cfg.api_base,
                     timeout=cfg.timeout)


def _source(cfg: GoogleSourceConfig) -> GoogleSource:
    assert cfg.name is not None  # every validated source entry is named
    return GoogleSource(cfg.name, cfg.calendar, _api(cfg, cfg.name))


def _target(cfg: GoogleTargetConfig, context: TargetContext) -> GoogleTarget:
    return GoogleTarget(cfg.calendar, _api(cfg, "google-target"), tz=context.tz,
                        name="google-target", read_only=context.read_only)


def _auth_command() -> click.Command:
    """``clientlove auth google``: the installed-app sign-in, stored as a credential."""
    from pathlib import Path

    import click

    from daemon import cli

    @click.command("google")
    @click.option("--client-secrets", "secrets_file", required=True,
                  type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="The OAuth client (Desktop app) JSON from the Google Cloud console.")
    @click.option("--credential", required=True, help="The name the config gives this sign-in.")
    @click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
                  help="Write the sign-in to this file (mode 0600, for systemd "
                       "LoadCredential=) instead of the keyring.")
    @cli.common_options
    @click.pass_context
    def auth_google(ctx: click.Context, secrets_file: Path, credential: str,
                    output: Path | None) -> None:
        """Sign in to Google (installed-app flow) and store the authorized-user JSON.

        Prints a URL to open in any browser; works on a headless machine when the browser's
        machine can reach this one's loopback (an SSH tunnel), as Google's installed-app flow
        requires.
        """
        from google_auth_oauthlib.flow import InstalledAppFlow

        from daemon.credentials import CredentialError, is_plain_name, store_secret

        if not is_plain_name(credential):
            raise click.BadParameter("a plain name, like google-me", param_hint="--credential")
        try:
            flow = InstalledAppFlow.from_client_secrets_file(str(secrets_file), scopes=SCOPES)
        except ValueError as exc:
            raise click.BadParameter(f"not an OAuth client file: {exc}",
                                     param_hint="--client-secrets") from None
        try:
            creds = flow.run_local_server(
                open_browser=False, port=0,
                authorization_prompt_message="Open this URL in a browser to sign in: {url}",
                success_message="Signed in: you can close this tab and go back to clientlove.")
        except Exception as exc:  # oauthlib's errors carry no secret, only a code
            detail = str(getattr(exc, "error", "") or getattr(exc, "description", "")
                         or "see above")
            cli.fail(ctx, f"{type(exc).__name__}: {detail}", label="sign-in failed")
        text = creds.to_json()
        if output is not None:
            try:
                cli.write_private(output, text)
            except OSError as exc:
                cli.fail(ctx, f"cannot write {output}: {exc.strerror or type(exc).__name__}; "
                         "nothing was stored")
            click.echo(f"wrote the sign-in to {output} (mode 0600); point LoadCredential= at it")
            return
        try:
            store_secret(credential, text)
        except CredentialError as exc:
            cli.fail(ctx, str(exc))
        click.echo(f"stored the Google sign-in as credential {credential!r} in the system "
                   "keyring")

    return auth_google


SPEC = ProviderSpec(
    type="google",
    summary="Google Calendar (Calendar API v3; `clientlove auth google` signs in)",
    source_config=GoogleSourceConfig,
    target_config=GoogleTargetConfig,
    build_source=_source,
    build_target=_target,
    capabilities=frozenset({"incremental", "reports_deletions", "cursor_can_expire",
                            "batches"}),
    limits=GoogleTarget.limits,
    auth=_auth_command,
    loggers=("googleapiclient", "google", "google_auth_oauthlib"),
)
