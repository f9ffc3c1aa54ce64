"""ICS files and URLs: a source read whole (but only when it changed), and a file target.

The source's cursor remembers what it last read (file size and mtime, or the URL's ETag and
Last-Modified, plus a digest of the content) and the read scope it was read for, so an
unchanged calendar is neither downloaded nor parsed again. A source is streamed: a local file
is read in pieces, a download spools to a temporary file, and neither the bytes nor the text
are held whole, so a 100 MB export is read in bounded memory.

The target keeps everything already in its file untouched and writes the file atomically
(temporary file, fsync, rename) in ``flush``, and only when something changed: a cycle
with nothing to do leaves it byte-identical. It reads the file again when it changed and
just before it writes, so what another program added between (or during) cycles stays.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Literal

import icalendar
from pydantic import Field, model_validator

from daemon.config.fields import (
    ConfigPath,
    CredentialName,
    HttpUrl,
    OptionalText,
    SourceSettings,
    TargetSettings,
    Text,
    derived_source_name,
)
from daemon.icsread import NotACalendar, read_calendar_stream
from daemon.model import ChangeSet, Event, ReadScope, Reminder, RemoteReminder
from daemon.redact import redact_url
from daemon.reminder_ical import (
    add_timezones,
    from_vevent,
    merge_vevent,
    new_calendar,
    owned_key,
    to_vevent,
)
from providers.base import (
    AlreadyExists,
    BadData,
    NotFound,
    PreconditionFailed,
    ProviderError,
    SequentialWrites,
    TargetLimits,
    Transient,
)
from providers.fetch import DEFAULT_DEADLINE, Deadline, capped, watched, watched_session
from providers.httpstatus import error_for_status, parse_retry_after
from providers.registry import ProviderSpec, TargetContext

if TYPE_CHECKING:  # a file source never loads requests (it is 20 MB of the idle daemon)
    import requests

#: A downloaded calendar stays in memory up to this size, then spills to a temporary file.
SPOOL_IN_MEMORY = 8 << 20
#: A calendar URL answering more than this is refused (a runaway server must not fill the disk).
MAX_DOWNLOAD = 1 << 30

USER_AGENT = "clientlove/0.1 (+https://github.com/clientlove/clientlove)"
#: What the user can do about a feed that refuses us.
_FEED_HINTS = {401: "check the username and credential", 403: "check the username and credential"}
#: A feed is only read: a conflict or a failed precondition on a GET is an answer we cannot use.
_FEED_OVERRIDES: dict[int, type[ProviderError]] = {409: BadData, 412: BadData}


class IcsSource:
    """A calendar read from a local ``.ics`` file or an http(s) URL."""

    def __init__(
        self,
        name: str,
        *,
        path: Path | None = None,
        url: str | None = None,
        username: str | None = None,
        secret: Callable[[], str] | None = None,
        timeout: float = 30.0,
        verify_tls: bool = True,
        session: requests.Session | None = None,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        if (path is None) == (url is None):
            raise ValueError("give exactly one of path or url")
        self.name = name
        self.path = path
        self.url = url
        #: the URL as messages show it: its path or query may be the feed's password
        self.shown = redact_url(url) if url is not None else ""
        #: seconds the download may take in all (``timeout`` bounds each wait for bytes)
        self.deadline = deadline
        self.username = username
        self._secret = secret
        self.timeout = timeout
        self.verify_tls = verify_tls
        self._session = session

    def changes(self, cursor: str | None, scope: ReadScope) -> ChangeSet:
        previous: dict[str, object] = {}
        if cursor:
            with contextlib.suppress(ValueError):
                previous = json.loads(cursor)
            if not isinstance(previous, dict):  # a damaged state row: read in full
                previous = {}
        reusable = bool(previous) and scope.served_by(previous)
        if self.path is not None:
            return self._file_changes(previous if reusable else {}, scope)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as body:
            meta, fresh = self._fetch(previous if reusable else {}, body)
            if not fresh:  # 304 Not Modified
                return ChangeSet(cursor=json.dumps({**previous, **meta}, sort_keys=True))
            if reusable and previous.get("sha256") == meta["sha256"]:
                return ChangeSet(cursor=json.dumps({**previous, **meta}, sort_keys=True))
            body.seek(0)
            events = self._read(body, self.shown, scope)
        return ChangeSet(upserted=tuple(events), full=True,
                         cursor=json.dumps({**scope.fingerprint(), **meta}, sort_keys=True))

    def _file_changes(self, previous: dict[str, object], scope: ReadScope) -> ChangeSet:
        """A local file: unchanged (same size and mtime, or same digest), or read again.

        The digest and the read stream the file from one open handle, so they see the same
        file even if it is replaced meanwhile (the next cycle sees the new mtime).
        """
        assert self.path is not None
        try:
            stat = self.path.stat()
            meta: dict[str, object] = {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size}
            if previous and all(previous.get(k) == v for k, v in meta.items()):
                return ChangeSet(cursor=json.dumps({**previous, **meta}, sort_keys=True))
            with self.path.open("rb") as handle:
                meta["sha256"] = hashlib.file_digest(handle, "sha256").hexdigest()
                if previous and previous.get("sha256") == meta["sha256"]:
                    return ChangeSet(cursor=json.dumps({**previous, **meta}, sort_keys=True))
                handle.seek(0)
                events = self._read(handle, str(self.path), scope)
        except FileNotFoundError as exc:
            raise NotFound(f"no such file: {self.path}", provider=self.name) from exc
        except OSError as exc:
            raise ProviderError(f"cannot read {self.path}: {exc.strerror}",
                                provider=self.name) from exc
        return ChangeSet(upserted=tuple(events), full=True,
                         cursor=json.dumps({**scope.fingerprint(), **meta}, sort_keys=True))

    def _read(self, handle: BinaryIO, where: str, scope: ReadScope) -> list[Event]:
        """The events of the calendar in ``handle``; a body that is no calendar at all (a
        login page, a proxy's error) fails the source instead of reading as empty."""
        try:
            return read_calendar_stream(handle, self.name, scope, strict=True)
        except NotACalendar as exc:
            raise BadData(f"{where} is not a calendar ({exc.reason}); nothing was read from "
                          "it this cycle", provider=self.name) from None

    def _fetch(self, previous: dict[str, object], body: BinaryIO
               ) -> tuple[dict[str, object], bool]:
        """Download the calendar into ``body``: its validators and digest, and False when the
        server says it is unchanged (304, nothing written). The body is streamed (a big feed
        spills to a temporary file) and refused beyond ``MAX_DOWNLOAD`` bytes, or when it
        takes longer than the deadline."""
        assert self.url is not None
        headers = {"User-Agent": USER_AGENT, "Accept": "text/calendar, */*;q=0.5"}
        if previous.get("etag"):
            headers["If-None-Match"] = str(previous["etag"])
        if previous.get("last_modified"):
            headers["If-Modified-Since"] = str(previous["last_modified"])
        auth = None
        if self.username is not None and self._secret is not None:
            auth = (self.username, self._secret())
        import requests

        session = watched_session(self._session)
        what = f"fetch {self.shown}"
        try:
            with watched(Deadline(self.deadline), what, self.name), \
                    session.get(self.url, headers=headers, auth=auth, timeout=self.timeout,
                                verify=self.verify_tls, stream=True) as response:
                meta = self._check_status(response)
                if response.status_code == 304:
                    return {**{k: previous[k] for k in ("etag", "last_modified")
                               if k in previous}, **meta}, False
                digest = hashlib.sha256()
                for chunk in capped(response, MAX_DOWNLOAD, what, self.name):
                    digest.update(chunk)
                    body.write(chunk)
        except requests.RequestException as exc:
            raise Transient(f"cannot fetch {self.shown}: {type(exc).__name__}",
                            provider=self.name) from None
        finally:
            if self._session is None:
                session.close()
        meta["sha256"] = digest.hexdigest()
        return meta, True

    def _check_status(self, response: requests.Response) -> dict[str, object]:
        """The validators of a 200 or 304 answer; any other status raises."""
        status = response.status_code
        meta: dict[str, object] = {
            k: v for k, v in (("etag", response.headers.get("ETag")),
                              ("last_modified", response.headers.get("Last-Modified"))) if v}
        if status == 304:
            return meta
        if status != 200:
            raise error_for_status(
                status, f"fetch {self.shown}", provider=self.name,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                hints=_FEED_HINTS, overrides=_FEED_OVERRIDES)
        return meta


#: Calendar properties the target writes itself; any other one in the file is kept.
_OWN_CALENDAR_PROPS = frozenset({"PRODID", "VERSION", "CALSCALE", "METHOD", "X-WR-CALNAME",
                                 "REFRESH-INTERVAL", "X-PUBLISHED-TTL"})


@dataclass
class _FileView:
    """The file as read once: what identifies that version, and its parts."""

    digest: str
    signature: tuple[int, int, int] | None
    props: dict[str, object] = field(default_factory=dict)
    timezones: list[icalendar.cal.Component] = field(default_factory=list)
    ours: dict[str, icalendar.cal.Component] = field(default_factory=dict)
    foreign: list[icalendar.cal.Component] = field(default_factory=list)


def _normal(component: icalendar.cal.Component) -> icalendar.cal.Component:
    """The component as it reads back from the file, so its etag is the one read later."""
    return icalendar.Event.from_ical(component.to_ical())


class IcsTarget(SequentialWrites):
    """Our reminders in an ``.ics`` file, beside whatever else the file holds.

    One instance may live as long as the service: ``list_ours`` reads the file again whenever
    it changed (inode, size, mtime), and the writes are kept as changes against the version
    read. ``render`` reads the file once more and applies those changes to what is on disk
    then, so an event another program added meanwhile is written back as it is; if one of
    our reminders itself changed on disk meanwhile, nothing is written (PreconditionFailed)
    and the next cycle reads it again. Writes not flushed are forgotten by the next
    ``list_ours``: the target holds what the file holds.
    """

    limits = TargetLimits(max_alarms=99, batch_size=1)

    def __init__(
        self,
        path: Path,
        *,
        calendar_name: str = "Client love",
        stamp: Callable[[], datetime],
        refresh: timedelta = timedelta(hours=1),
        name: str = "ics-target",
    ) -> None:
        self.name = name
        self.path = path
        self.calendar_name = calendar_name
        self.refresh = refresh
        self._stamp = stamp
        self._loaded = False
        self._dirty = False
        self._file = _FileView(digest=hashlib.sha256(b"").hexdigest(), signature=None)
        #: key -> (etag on disk before our first change of it, the component now or None)
        self._changes: dict[str, tuple[str | None, icalendar.cal.Component | None]] = {}
        #: key -> etag of the version the last render wrote (None: deleted)
        self._written: dict[str, str | None] = {}

    # -- reading -----------------------------------------------------------------------
    def _signature(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ProviderError(f"cannot read {self.path}: {exc.strerror}",
                                provider=self.name) from exc
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def _read(self) -> _FileView:
        """The file as it is now (an empty view when there is none)."""
        signature = self._signature()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        except IsADirectoryError:
            raise ProviderError(f"{self.path} is a folder; the target needs a file name "
                                f"(like {self.path / 'reminders.ics'})", provider=self.name
                                ) from None
        except NotADirectoryError:
            raise ProviderError(f"cannot use {self.path}: {_first_file(self.path)} is a file, "
                                "not a folder", provider=self.name) from None
        except OSError as exc:
            raise ProviderError(f"cannot read {self.path}: {_reason(exc)}",
                                provider=self.name) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._file.digest:
            return replace(self._file, signature=signature)
        return self._parse(data, digest, signature)

    def _parse(self, data: bytes, digest: str,
               signature: tuple[int, int, int] | None) -> _FileView:
        view = _FileView(digest=digest, signature=signature)
        if not data.strip():
            return view
        try:
            cal = icalendar.Calendar.from_ical(data)
        except (ValueError, IndexError, KeyError) as exc:
            raise BadData(
                f"{self.path} is not a readable calendar ({exc}); refusing to overwrite it",
                provider=self.name,
            ) from None
        view.props = {name: value for name, value in cal.items()
                      if name.upper() not in _OWN_CALENDAR_PROPS}
        for component in cal.subcomponents:
            if component.name == "VTIMEZONE":
                view.timezones.append(component)
                continue
            key = owned_key(component) if component.name == "VEVENT" else None
            if key is None or key in view.ours:
                view.foreign.append(component)
            else:
                view.ours[key] = component
        return view

    def _load(self, force: bool = False) -> None:
        """Read the file (again when ``force``), forgetting writes not flushed."""
        if self._loaded and not force:
            return
        self._file = self._read()
        self._changes.clear()
        self._written.clear()
        self._dirty = False
        self._loaded = True

    @staticmethod
    def _etag(component: icalendar.cal.Component) -> str:
        return hashlib.sha256(component.to_ical()).hexdigest()[:24]

    def _held(self, key: str) -> icalendar.cal.Component | None:
        """Our reminder as this instance holds it: the file's, or our change not yet written."""
        if key in self._changes:
            return self._changes[key][1]
        return self._file.ours.get(key)

    def _remote(self, key: str) -> RemoteReminder:
        component = self._held(key)
        assert component is not None
        remote = from_vevent(component, ref=str(component.get("uid", key)),
                             etag=self._etag(component))
        assert remote is not None
        return remote

    def list_ours(self) -> list[RemoteReminder]:
        if not self._loaded or self._changes or self._signature() != self._file.signature:
            self._load(force=True)
        out = []
        for key, component in self._file.ours.items():
            remote = from_vevent(component, ref=str(component.get("uid", key)),
                                 etag=self._etag(component))
            if remote is not None:
                out.append(remote)
        return out

    # -- writing -----------------------------------------------------------------------
    def _change(self, key: str, component: icalendar.cal.Component | None) -> None:
        if key in self._changes:
            base = self._changes[key][0]
        else:
            held = self._file.ours.get(key)
            base = None if held is None else self._etag(held)
        self._changes[key] = (base, None if component is None else _normal(component))
        self._dirty = True

    def create(self, reminder: Reminder) -> RemoteReminder:
        self._load()
        if self._held(reminder.key) is not None:
            raise AlreadyExists(f"reminder {reminder.key} exists", provider=self.name)
        self._change(reminder.key, to_vevent(reminder, self._stamp()))
        return self._remote(reminder.key)

    def _current(self, current: RemoteReminder) -> icalendar.cal.Component:
        self._load()
        component = self._held(current.key)
        if component is None:
            raise NotFound(f"reminder {current.key} is gone", provider=self.name)
        if current.etag is not None and self._etag(component) != current.etag:
            raise PreconditionFailed(f"reminder {current.key} changed", provider=self.name)
        return component

    def update(self, current: RemoteReminder, reminder: Reminder) -> RemoteReminder:
        component = self._current(current)
        self._change(reminder.key, merge_vevent(component, reminder, self._stamp()))
        return self._remote(reminder.key)

    def delete(self, current: RemoteReminder) -> None:
        self._current(current)
        self._change(current.key, None)

    def _merged(self) -> _FileView:
        """The file as it is on disk now, with our changes applied to it.

        A reminder of ours that changed on disk since we read it (not by our own last write)
        is the user's or another instance's: refuse rather than overwrite it.
        """
        fresh = self._read()
        ours = dict(fresh.ours)
        for key, (base, component) in self._changes.items():
            now = ours.get(key)
            tag = None if now is None else self._etag(now)
            if tag != base and (key not in self._written or tag != self._written[key]):
                raise PreconditionFailed(
                    f"reminder {key} changed in {self.path} while we wrote; nothing written, "
                    "the next cycle reads it again", provider=self.name)
            if component is None:
                ours.pop(key, None)
            else:
                ours[key] = component
        self._written = {key: None if c is None else self._etag(c)
                         for key, (_base, c) in self._changes.items()}
        return replace(fresh, ours=ours)

    def render(self) -> bytes:
        """The whole file as it would be written now: what is on disk, our changes applied."""
        self._load()
        view = self._merged()
        cal = new_calendar(self.calendar_name)
        cal.add("method", "PUBLISH")
        cal.add("refresh-interval", self.refresh, parameters={"VALUE": "DURATION"})
        cal.add("x-published-ttl", icalendar.vDuration(self.refresh).to_ical().decode())
        for name, value in view.props.items():
            cal[name] = value
        for component in view.timezones:
            cal.add_component(component)
        for key in sorted(view.ours):
            cal.add_component(view.ours[key])
        for component in view.foreign:
            cal.add_component(component)
        with contextlib.suppress(Exception):  # a zone icalendar cannot describe stays a TZID
            add_timezones(cal)
        return cal.to_ical()

    def flush(self) -> None:
        """Write the file if anything changed. A file that cannot be written raises
        :class:`ProviderError` naming the path; the writes stay pending (dirty)."""
        if not self._dirty:
            return
        write_atomically(self.path, self.render(), provider=self.name)
        self._dirty = False


def write_atomically(path: Path, data: bytes, *, provider: str = "") -> None:
    """Replace ``path`` with ``data`` so a reader sees the old file or the new, never half.

    Its folder is made when missing. Any failure (a read-only or pseudo file system, a
    folder that cannot be made or written, a full disk) raises :class:`ProviderError`, one
    line naming the path; the old file is then untouched and no temporary file is left.
    """
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ProviderError(f"cannot write {path}: {_first_file(path)} is a file, not a folder",
                            provider=provider) from None
    except OSError as exc:
        raise ProviderError(f"cannot write {path}: cannot create its folder {folder}: "
                            f"{_reason(exc)}", provider=provider) from None
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    except NotADirectoryError:
        raise ProviderError(f"cannot write {path}: {_first_file(path)} is a file, not a folder",
                            provider=provider) from None
    except OSError as exc:
        raise ProviderError(f"cannot write {path}: {_reason(exc)}", provider=provider) from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ProviderError(f"cannot write {path}: cannot create a file in {folder}: "
                            f"{_reason(exc)}", provider=provider) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, IsADirectoryError):
            raise ProviderError(f"cannot write {path}: it is a folder; the target needs a file "
                                "name", provider=provider) from None
        if isinstance(exc, OSError):
            raise ProviderError(f"cannot write {path}: {_reason(exc)}",
                                provider=provider) from None
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _reason(exc: OSError) -> str:
    """An OSError as a person reads it: ``Permission denied``, ``Read-only file system``."""
    return exc.strerror or type(exc).__name__


def _first_file(path: Path) -> Path:
    """The first ancestor of ``path`` that exists and is not a folder (``path`` when none)."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return path


# -- its config entries and its place in the registry ---------------------------------------


class IcsSourceConfig(SourceSettings):
    """An ICS calendar to read: a local file or an http(s) address (with optional login)."""

    role: ClassVar[str] = "an ICS calendar to read: a local file or an http(s) address"

    type: Literal["ics"] = Field(default="ics", description="ics")
    path: ConfigPath | None = Field(
        default=None, description="A local .ics file (relative to the config file's "
        "folder); give path or url.")
    url: HttpUrl | None = Field(
        default=None, description="An http(s) address of the calendar (write webcal:// as "
        "https://); give path or url.")
    username: OptionalText = Field(default=None, description="The login for the url.")
    credential: CredentialName | None = Field(
        default=None, description="The name of the credential holding the url's password "
        "($CREDENTIALS_DIRECTORY or the keyring), never the password itself.")
    timeout: float = Field(default=30.0, gt=0,
                           description="Seconds each wait for the server's bytes may take.")
    deadline: float = Field(default=300.0, gt=0,
                            description="Seconds a whole download may take.")
    verify_tls: bool = Field(default=True,
                             description="Check the server's certificate (keep it true).")

    @classmethod
    def default_name(cls, data: Any) -> str | None:
        return derived_source_name(data.get("path"), data.get("url"))

    @model_validator(mode="after")
    def _one_location(self) -> IcsSourceConfig:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of path or url")
        if self.path is not None and (self.username or self.credential):
            raise ValueError("username and credential only apply to a url")
        return self


class IcsTargetConfig(TargetSettings):
    """The ICS file our reminders are written to (and served from)."""

    role: ClassVar[str] = "the ICS file our reminders are written to (and served from)"

    type: Literal["ics"] = Field(default="ics", description="ics")
    path: ConfigPath = Field(description="The file (relative to the config file's folder); "
                             "made when missing, and what else it holds is kept.")
    name: Text = Field(default="Client love",
                       description="The calendar's name (X-WR-CALNAME) in the file.")

    def identity(self) -> str:
        return f"ics file {os.path.normpath(self.path)}"


def _source(cfg: IcsSourceConfig) -> IcsSource:
    from providers import secret_getter

    assert cfg.name is not None  # every validated source entry is named
    return IcsSource(cfg.name, path=cfg.path, url=cfg.url, username=cfg.username,
                     secret=secret_getter(cfg.credential), timeout=cfg.timeout,
                     deadline=cfg.deadline, verify_tls=cfg.verify_tls)


def _target(cfg: IcsTargetConfig, context: TargetContext) -> IcsTarget:
    return IcsTarget(cfg.path, calendar_name=cfg.name, stamp=context.stamp)


SPEC = ProviderSpec(
    type="ics",
    summary="ICS files and http(s) URLs (read whole, only when changed); an ICS file target",
    source_config=IcsSourceConfig,
    target_config=IcsTargetConfig,
    build_source=_source,
    build_target=_target,
    capabilities=frozenset({"written_at_flush"}),
    limits=IcsTarget.limits,
)
