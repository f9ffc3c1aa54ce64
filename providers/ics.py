"""ICS files and URLs: a source read whole (but only when it changed), and a file target.

The source's cursor remembers what it last read (file size and mtime, or the URL's ETag and
Last-Modified, plus a digest of the content) and the read scope it was read for, so an
unchanged calendar is neither downloaded nor parsed again. A source is streamed: a local file
is read in pieces, a download spools to a temporary file, and neither the bytes nor the text
are held whole, so a 100 MB export is read in bounded memory.

The target keeps everything already in its file untouched and writes the file atomically
(temporary file, fsync, rename) in ``flush``, and only when something changed: a cycle
with nothing to do leaves it byte-identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import icalendar
import requests

from daemon.icsread import NotACalendar, read_calendar_stream
from daemon.model import ChangeSet, Event, ReadScope, Reminder, RemoteReminder
from daemon.reminder_ical import add_timezones, from_vevent, new_calendar, owned_key, to_vevent
from providers.base import (
    AlreadyExists,
    AuthError,
    BadData,
    NotFound,
    PreconditionFailed,
    ProviderError,
    SequentialWrites,
    TargetLimits,
    Transient,
)

#: A downloaded calendar stays in memory up to this size, then spills to a temporary file.
SPOOL_IN_MEMORY = 8 << 20
#: A calendar URL answering more than this is refused (a runaway server must not fill the disk).
MAX_DOWNLOAD = 1 << 30

USER_AGENT = "clientlove/0.1 (+https://github.com/clientlove/clientlove)"


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
    ) -> None:
        if (path is None) == (url is None):
            raise ValueError("give exactly one of path or url")
        self.name = name
        self.path = path
        self.url = url
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
            events = self._read(body, self.url, scope)  # type: ignore[arg-type]
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
        spills to a temporary file) and refused beyond ``MAX_DOWNLOAD`` bytes."""
        assert self.url is not None
        headers = {"User-Agent": USER_AGENT, "Accept": "text/calendar, */*;q=0.5"}
        if previous.get("etag"):
            headers["If-None-Match"] = str(previous["etag"])
        if previous.get("last_modified"):
            headers["If-Modified-Since"] = str(previous["last_modified"])
        auth = None
        if self.username is not None and self._secret is not None:
            auth = (self.username, self._secret())
        session = self._session or requests.Session()
        try:
            with session.get(self.url, headers=headers, auth=auth, timeout=self.timeout,
                             verify=self.verify_tls, stream=True) as response:
                meta = self._check_status(response)
                if response.status_code == 304:
                    return {**{k: previous[k] for k in ("etag", "last_modified")
                               if k in previous}, **meta}, False
                digest = hashlib.sha256()
                size = 0
                for chunk in response.iter_content(chunk_size=1 << 16):
                    size += len(chunk)
                    if size > MAX_DOWNLOAD:
                        raise BadData(f"{self.url} is over {MAX_DOWNLOAD >> 20} MB; refused",
                                      provider=self.name)
                    digest.update(chunk)
                    body.write(chunk)
        except requests.RequestException as exc:
            raise Transient(f"cannot fetch {self.url}: {type(exc).__name__}",
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
        if status in (401, 403):
            raise AuthError(f"{self.url} refused access (HTTP {status}): check the username and "
                            "credential", provider=self.name)
        if status == 404:
            raise NotFound(f"{self.url} not found (HTTP 404)", provider=self.name)
        if status == 429 or status >= 500:
            raise Transient(f"{self.url} answered HTTP {status}", provider=self.name,
                            retry_after=_retry_after(response.headers.get("Retry-After")))
        if status != 200:
            raise BadData(f"{self.url} answered HTTP {status}", provider=self.name)
        return meta


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


class IcsTarget(SequentialWrites):
    """Our reminders in an ``.ics`` file, beside whatever else the file holds."""

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
        self._timezones: list[icalendar.cal.Component] = []
        self._foreign: list[icalendar.cal.Component] = []
        self._ours: dict[str, icalendar.cal.Component] = {}

    # -- reading -----------------------------------------------------------------------
    def _load(self) -> None:
        if self._loaded:
            return
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
        if data.strip():
            try:
                cal = icalendar.Calendar.from_ical(data)
            except (ValueError, IndexError, KeyError) as exc:
                raise BadData(
                    f"{self.path} is not a readable calendar ({exc}); refusing to overwrite it",
                    provider=self.name,
                ) from None
            for component in cal.subcomponents:
                if component.name == "VTIMEZONE":
                    self._timezones.append(component)
                    continue
                key = owned_key(component) if component.name == "VEVENT" else None
                if key is None or key in self._ours:
                    self._foreign.append(component)
                else:
                    self._ours[key] = component
        self._loaded = True

    @staticmethod
    def _etag(component: icalendar.cal.Component) -> str:
        return hashlib.sha256(component.to_ical()).hexdigest()[:24]

    def _remote(self, key: str) -> RemoteReminder:
        component = self._ours[key]
        remote = from_vevent(component, ref=str(component.get("uid", key)),
                             etag=self._etag(component))
        assert remote is not None
        return remote

    def list_ours(self) -> list[RemoteReminder]:
        self._load()
        out = []
        for key, component in self._ours.items():
            remote = from_vevent(component, ref=str(component.get("uid", key)),
                                 etag=self._etag(component))
            if remote is not None:
                out.append(remote)
        return out

    # -- writing -----------------------------------------------------------------------
    def create(self, reminder: Reminder) -> RemoteReminder:
        self._load()
        if reminder.key in self._ours:
            raise AlreadyExists(f"reminder {reminder.key} exists", provider=self.name)
        self._ours[reminder.key] = to_vevent(reminder, self._stamp())
        self._dirty = True
        return self._remote(reminder.key)

    def _current(self, current: RemoteReminder) -> icalendar.cal.Component:
        self._load()
        component = self._ours.get(current.key)
        if component is None:
            raise NotFound(f"reminder {current.key} is gone", provider=self.name)
        if current.etag is not None and self._etag(component) != current.etag:
            raise PreconditionFailed(f"reminder {current.key} changed", provider=self.name)
        return component

    def update(self, current: RemoteReminder, reminder: Reminder) -> RemoteReminder:
        component = self._current(current)
        sequence = int(component.get("sequence", 0)) + 1
        self._ours[reminder.key] = to_vevent(reminder, self._stamp(), sequence)
        self._dirty = True
        return self._remote(reminder.key)

    def delete(self, current: RemoteReminder) -> None:
        self._current(current)
        del self._ours[current.key]
        self._dirty = True

    def render(self) -> bytes:
        """The whole file as it would be written now."""
        self._load()
        cal = new_calendar(self.calendar_name)
        cal.add("method", "PUBLISH")
        cal.add("refresh-interval", self.refresh, parameters={"VALUE": "DURATION"})
        cal.add("x-published-ttl", icalendar.vDuration(self.refresh).to_ical().decode())
        for component in self._timezones:
            cal.add_component(component)
        for key in sorted(self._ours):
            cal.add_component(self._ours[key])
        for component in self._foreign:
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
