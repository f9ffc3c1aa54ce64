"""The two small interfaces every calendar system implements, and the errors they raise.

Storage contract (in the spirit of vdirsyncer): a provider reports and performs, the engine
decides. A provider never retries on its own beyond one request, never swallows an error
into a default, and never touches an event that does not carry our marks.

Source
    ``changes(cursor, scope) -> ChangeSet``. ``cursor`` is the opaque string the previous
    call returned (``None`` for a first read). A source that cannot go incremental returns
    ``full=True`` with every event; one with nothing new returns an empty, non-full
    ``ChangeSet`` with the same or a new cursor. Recurring events arrive expanded within
    ``scope.start .. scope.end``. A broken event is skipped with a warning appended to
    ``scope.warnings`` naming the source and the UID; it never fails the read.

Target
    ``list_ours()`` returns our reminders (``X-CLIENTLOVE-KEY`` / UID ``…@clientlove``),
    past and pending, with the ref and etag for conditional writes. ``create`` must fail
    with :class:`AlreadyExists` when the key or ref exists (never overwrite);
    ``update``/``delete`` must fail with :class:`PreconditionFailed` when the etag is stale
    and :class:`NotFound` when the event is gone. ``apply`` performs a list of such writes
    and reports one result or error for each (Google sends them in batches).
    ``flush`` makes the writes durable (the ICS target writes its file atomically there)
    and is a no-op when nothing changed.

    One instance may serve many cycles (``clientlove run`` keeps it): ``list_ours`` shows
    the calendar as it is at that call, also what others wrote since the last one, and a
    write never loses an event someone else added or changed meanwhile (the ICS target
    re-reads its file when it changed and once more when it writes, and merges our writes
    into what it finds). ``update`` merges into the event as the target holds it: it changes
    only our fields (DTSTART, DTEND, SUMMARY, DESCRIPTION, our VALARM, our X-CLIENTLOVE
    marks, SEQUENCE, DTSTAMP, LAST-MODIFIED; on Google summary, description, start, end,
    our private properties and our popup) and keeps whatever the user added: location,
    categories (a ``#need`` or ``#skip``), colour, their own alarms, X- properties. Our
    alarm is told apart by ``X-CLIENTLOVE-ALARM`` (Google: the minutes in our private
    properties), for older events by being the first display alarm. Such additions are not
    an edit of our event: the content hash covers only our fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Protocol, runtime_checkable

from daemon.model import ChangeSet, ReadScope, Reminder, RemoteReminder
from daemon.redact import redact_urls


class ProviderError(Exception):
    """Base of every error a provider reports, typed so the engine, the report, metrics and
    the CLI never parse a message: ``kind`` (one string per class), ``provider`` (the
    provider's name), ``status`` (the HTTP status behind it, None when there was none) and
    ``retry_after`` (seconds the remote asked us to wait, None when it did not say).

    The message never carries a secret: a URL in it is cut to its scheme and host (a feed's
    path or query may be its password).
    """

    #: what went wrong, for records and metrics; each subclass names its own
    kind: ClassVar[str] = "error"

    def __init__(self, message: str, *, provider: str = "", status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(redact_urls(message))
        self.provider = provider
        self.status = status
        self.retry_after = retry_after

    @property
    def message(self) -> str:
        """The (redacted) message without the provider's name in front."""
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        text = self.message
        return f"{self.provider}: {text}" if self.provider else text


class AuthError(ProviderError):
    """Credentials missing, wrong or revoked: retrying will not help until the user acts."""

    kind = "auth"


class CursorExpired(ProviderError):
    """The stored sync token is no longer valid: drop it and read in full."""

    kind = "cursor-expired"


class PreconditionFailed(ProviderError):
    """The etag we hold is stale: someone else wrote first."""

    kind = "precondition-failed"


class AlreadyExists(ProviderError):
    """A conditional create found the key (or ref) already taken.

    ``gone`` means the key is taken by an event the user deleted (Google keeps deleted ids):
    the engine must treat it as skipped and never try that key again.
    """

    kind = "already-exists"

    def __init__(self, message: str, *, provider: str = "", status: int | None = None,
                 retry_after: float | None = None, gone: bool = False) -> None:
        super().__init__(message, provider=provider, status=status, retry_after=retry_after)
        self.gone = gone


class NotFound(ProviderError):
    """The event (or calendar, or file) is not there."""

    kind = "not-found"


class Transient(ProviderError):
    """A network fault, timeout or 408/425/429/5xx: worth another try, after
    ``retry_after`` seconds when the remote said so."""

    kind = "transient"


class BadData(ProviderError):
    """The remote answered with something we cannot read (not a calendar, broken XML, an
    unexpected status, an answer over its cap, ...)."""

    kind = "bad-data"


class TooSlow(ProviderError):
    """A read went past its deadline (a server sending a byte now and then). Not retried
    within the cycle: the next cycle tries again."""

    kind = "too-slow"


#: Every kind an error can have, for whoever counts them (metrics, /healthz).
ERROR_KINDS: tuple[str, ...] = tuple(cls.kind for cls in (
    ProviderError, AuthError, CursorExpired, PreconditionFailed, AlreadyExists, NotFound,
    Transient, BadData, TooSlow))


@dataclass(frozen=True, slots=True)
class TargetLimits:
    """What a target can hold; the planner checks a reminder against it before writing."""

    max_alarms: int = 5
    max_alarm_before: timedelta = timedelta(days=28)
    batch_size: int = 1


@dataclass(frozen=True, slots=True)
class Write:
    """One write of a cycle: ``create`` needs ``reminder``, ``update`` both, ``delete``
    ``current``."""

    kind: str
    reminder: Reminder | None = None
    current: RemoteReminder | None = None


#: What ``apply`` reports for one write: the event as written, None for a delete, or the error.
WriteResult = RemoteReminder | ProviderError | None


class SequentialWrites:
    """``apply`` for targets without batches: one write after the other."""

    def apply(self, writes: list[Write]) -> list[WriteResult]:
        results: list[WriteResult] = []
        for write in writes:
            try:
                if write.kind == "create":
                    assert write.reminder is not None
                    results.append(self.create(write.reminder))  # type: ignore[attr-defined]
                elif write.kind == "update":
                    assert write.reminder is not None and write.current is not None
                    results.append(
                        self.update(write.current, write.reminder))  # type: ignore[attr-defined]
                else:
                    assert write.current is not None
                    self.delete(write.current)  # type: ignore[attr-defined]
                    results.append(None)
            except ProviderError as exc:
                results.append(exc)
        return results


@runtime_checkable
class Source(Protocol):
    """A calendar the history is read from (see the module docstring)."""

    name: str

    def changes(self, cursor: str | None, scope: ReadScope) -> ChangeSet: ...


@runtime_checkable
class Target(Protocol):
    """A calendar our reminders are written to (see the module docstring)."""

    name: str
    limits: TargetLimits

    def list_ours(self) -> list[RemoteReminder]: ...

    def create(self, reminder: Reminder) -> RemoteReminder: ...

    def update(self, current: RemoteReminder, reminder: Reminder) -> RemoteReminder: ...

    def delete(self, current: RemoteReminder) -> None: ...

    def apply(self, writes: list[Write]) -> list[WriteResult]:
        """Perform several writes (in batches where the calendar has them); one result each,
        in order. Errors are returned, not raised, so one failed part never hides the rest."""
        ...

    def flush(self) -> None: ...
