"""HTTP statuses and ``Retry-After`` as typed provider errors: the one mapping every provider
uses, so a 401 from CalDAV, an ICS feed or Google means the same thing to the engine.

Only the status decides the class (the caller may override a status where its protocol
gives it another meaning, e.g. CalDAV's 409 on a conditional PUT); the message names what
was attempted, what the status means and the status itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from providers.base import (
    AlreadyExists,
    AuthError,
    BadData,
    NotFound,
    PreconditionFailed,
    ProviderError,
    Transient,
)

#: The longest wait a ``Retry-After`` may ask for: beyond it a cycle would sleep through the
#: next ones; the retry policy caps its own waits lower still.
MAX_RETRY_AFTER = 3600.0

#: Statuses worth another try besides every 5xx: timeout, too early, too many requests.
TRANSIENT_STATUSES = frozenset({408, 425, 429})

_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)

_CLASSES: dict[int, type[ProviderError]] = {
    401: AuthError, 403: AuthError,
    404: NotFound, 410: NotFound,
    409: AlreadyExists,
    412: PreconditionFailed,
}

_MEANINGS: dict[int, str] = {
    401: "the server refused the login", 403: "access forbidden",
    404: "not found", 410: "gone",
    408: "request timeout", 409: "conflict", 412: "precondition failed (changed meanwhile)",
    425: "too early", 429: "too many requests",
}


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 10.2.3): delta-seconds or an
    HTTP-date; None when absent or unreadable. A date in the past is 0; anything over
    :data:`MAX_RETRY_AFTER` is cut to it (a server cannot park the daemon for a day)."""
    text = (value or "").strip()
    if not text:
        return None
    if _SECONDS.fullmatch(text):
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": UTC by RFC 5322
            when = when.replace(tzinfo=UTC)
        seconds = max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    return min(seconds, MAX_RETRY_AFTER)


def is_transient(status: int) -> bool:
    """Whether a status is worth another try (408, 425, 429, any 5xx)."""
    return status in TRANSIENT_STATUSES or status >= 500


def error_for_status(status: int, what: str, *, provider: str,
                     retry_after: float | None = None, detail: str = "",
                     hints: Mapping[int, str] | None = None,
                     overrides: Mapping[int, type[ProviderError]] | None = None
                     ) -> ProviderError:
    """The typed error for an answer with HTTP ``status`` to the request ``what``.

    401/403 :class:`AuthError`, 404/410 :class:`NotFound`, 409 :class:`AlreadyExists`,
    412 :class:`PreconditionFailed`, 408/425/429/5xx :class:`Transient` (carrying
    ``retry_after``), anything else (also a 2xx or 3xx the caller did not expect)
    :class:`BadData`. ``overrides`` maps a status to another class where the caller's
    protocol says so (a 410 for an expired sync token is :class:`CursorExpired`); ``detail``
    is the remote's own word for it (Google's reason), ``hints`` a next step per status for
    the user. Every error carries ``status`` and ``provider``.
    """
    cls = (overrides or {}).get(status) or _CLASSES.get(status)
    if cls is None:
        cls = Transient if is_transient(status) else BadData
    meaning = _MEANINGS.get(status) or ("server error" if status >= 500 else
                                        "unexpected answer")
    said = f"HTTP {status} {detail}" if detail else f"HTTP {status}"
    message = f"{what}: {meaning} ({said})"
    hint = (hints or {}).get(status)
    if hint:
        message = f"{message}; {hint}"
    return cls(message, provider=provider, status=status,
               retry_after=retry_after if issubclass(cls, Transient) else None)
