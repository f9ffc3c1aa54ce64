"""The two small interfaces every calendar system implements, and the errors they raise.

Storage contract (in the spirit of vdirsyncer's storage base class): a provider reports and
performs, the engine decides. A provider never retries on its own beyond one request, never
swallows an error into a default, and never touches an event that does not carry our marks.
Each method of :class:`Source` and :class:`Target` says below what it returns, what it
raises and what it may assume; this docstring holds what they share.

Errors
    Every failure is a :class:`ProviderError` subclass, never a library's or the network's
    own exception (a bug of ours, a ``TypeError`` say, is the one thing that passes through).
    Each carries ``kind``, ``provider`` (the provider's name), ``status`` (the HTTP status
    behind it, None for a file or a network fault) and ``retry_after`` (seconds, when the
    remote asked for a pause). HTTP answers are mapped in one place,
    :func:`providers.httpstatus.error_for_status`. What the engine does with each kind:

    ======================  =======================================================
    ``auth``                :class:`AuthError`: reported; nothing helps until the user acts
    ``transient``           :class:`Transient`: retried within the cycle (after
                            ``retry_after`` when given), then reported
    ``too-slow``            :class:`TooSlow`: reported, not retried; the next cycle tries
    ``not-found``           :class:`NotFound`: a read fails; a write's event is gone
                            (the user deleted it: the user wins)
    ``precondition-failed`` :class:`PreconditionFailed`: a write's etag is stale (the user
                            changed it: the user wins)
    ``already-exists``      :class:`AlreadyExists`: a create's key is taken (adopted, or
                            never tried again when ``gone``)
    ``cursor-expired``      :class:`CursorExpired`: the provider's own, inside ``changes``
                            (it reads in full instead); it never reaches the engine
    ``bad-data``            :class:`BadData`: reported; the remote answered nonsense
    ``error``               :class:`ProviderError` itself: anything else (a file that
                            cannot be read or written), reported
    ======================  =======================================================

    The message names what was attempted and never carries a secret (URLs are cut to
    scheme and host). A source that fails keeps its last events for the cycle.

Instances
    One instance may serve many cycles (``clientlove run`` keeps it): nothing is cached
    across calls that would hide a change made by someone else, and a secret is read on
    first use, not when the provider is built (so ``check-config`` needs none). Calls on one
    instance come from one cycle at a time, never concurrently (each cycle may run in a
    thread of its own).

Target
    Our reminders carry ``X-CLIENTLOVE-KEY`` (Google: a private property) and a UID
    ``…@clientlove``; an event without all our marks is never listed, changed or deleted.
    A write never loses an event someone else added or changed meanwhile (the ICS target
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
    """A calendar the history is read from (see the module docstring).

    ``name`` is the source's name from the config: the state keys its cursor and events by
    it, and every error and warning of the source names it.
    """

    name: str

    def changes(self, cursor: str | None, scope: ReadScope) -> ChangeSet:
        """What changed since the read that returned ``cursor``.

        Returns a :class:`~daemon.model.ChangeSet`: ``full=True`` with every event when the
        source cannot go incremental (a first read, a file that changed, an expired sync
        token, a ``scope`` the cursor was not made under); otherwise a delta of upserted
        events and deleted idents, empty when nothing changed. Its ``cursor`` is what the
        next call gets. ``upserted`` may be a one-pass iterator. Recurring events arrive
        expanded within ``scope.start .. scope.end``, each occurrence its own
        :class:`~daemon.model.Event`. Events that contain none of ``scope.needles`` may be
        left out (when ``scope.prefilter``).

        A broken event is skipped with a warning appended to ``scope.warnings`` naming the
        source and the UID; it never fails the read. A body that is no calendar at all (a
        login page) fails it: reading it as empty would look like every event deleted.

        Raises :class:`AuthError` (credentials refused or unreadable), :class:`NotFound`
        (no such file, feed or calendar), :class:`Transient` (network, 408/425/429/5xx;
        the engine retries), :class:`TooSlow` (past the read's deadline), :class:`BadData`
        (not a calendar, an answer over its cap, an unexpected status), and
        :class:`ProviderError` (a file that cannot be read). Never :class:`CursorExpired`:
        the source reads in full instead.

        May assume: ``cursor`` is None or a string this source returned (it may be from an
        older version or garbled: then it is ignored and the read is full); ``scope`` is
        the same object for the whole call; the engine applies the result before the next
        call.
        """
        ...


@runtime_checkable
class Target(Protocol):
    """A calendar our reminders are written to (see the module docstring).

    ``name`` names the target in errors and logs; ``limits`` is what the planner checks a
    reminder against before writing (alarms, how long before, batch size).
    """

    name: str
    limits: TargetLimits

    def list_ours(self) -> list[RemoteReminder]:
        """Our reminders as the target holds them at this call, past and pending.

        Returns one :class:`~daemon.model.RemoteReminder` per event carrying all our marks,
        with its ``ref`` and ``etag`` for conditional writes, ``stored_hash`` (the hash we
        wrote) and ``content_hash`` (recomputed from what is there now, so the two differ
        exactly when the user edited it), ``cancelled`` for an event the calendar keeps as
        deleted. It shows also what others wrote since the last call; an event it cannot read
        as ours is left out (and never touched). A calendar not made yet (a dry run) lists
        nothing.

        Raises :class:`AuthError`, :class:`NotFound` (the calendar or the collection is
        gone), :class:`Transient` (retried by the engine), :class:`BadData` (an answer it
        cannot read, an ICS file that is no calendar: never overwritten),
        :class:`ProviderError` (the ICS file cannot be read).
        """
        ...

    def create(self, reminder: Reminder) -> RemoteReminder:
        """Write a new reminder, conditionally: never over an existing one.

        Returns the event as written (its ``ref``, new ``etag`` and hashes). Raises
        :class:`AlreadyExists` when the key or ref is taken (``gone`` when by an event
        the user deleted), :class:`AuthError`, :class:`Transient`, :class:`BadData`,
        :class:`ProviderError`. May assume the reminder passed :attr:`limits`.
        """
        ...

    def update(self, current: RemoteReminder, reminder: Reminder) -> RemoteReminder:
        """Move our reminder ``current`` (as last listed) to ``reminder``, conditional on
        ``current.etag``; only our fields change (see the module docstring).

        Returns the event as written. Raises :class:`PreconditionFailed` when the event
        changed since it was listed (stale etag), :class:`NotFound` when it is gone (the
        user deleted it), :class:`AuthError`, :class:`Transient`, :class:`BadData`,
        :class:`ProviderError`. May assume ``current`` came from this target's
        ``list_ours`` (or a write's result) and carries our marks.
        """
        ...

    def delete(self, current: RemoteReminder) -> None:
        """Remove our reminder ``current``, conditional on ``current.etag``.

        Raises :class:`PreconditionFailed` (changed since listed), :class:`NotFound`
        (already gone), :class:`AuthError`, :class:`Transient`, :class:`BadData`,
        :class:`ProviderError`. May assume what :meth:`update` assumes.
        """
        ...

    def apply(self, writes: list[Write]) -> list[WriteResult]:
        """Perform several writes (in batches where the calendar has them); one result each,
        in order: the event as written, None for a delete, or the error :meth:`create`,
        :meth:`update` or :meth:`delete` would have raised. Errors are returned, not raised,
        so one failed part never hides the rest; a :class:`ProviderError` raised here means
        the whole call failed (the connection) and none of the writes is known done.
        """
        ...

    def flush(self) -> None:
        """Make the writes durable: the ICS target writes its file atomically here, the
        others write at once and do nothing. A no-op when nothing changed. Raises
        :class:`ProviderError` naming the path when the file cannot be written; the writes
        then stay pending for the next call."""
        ...
