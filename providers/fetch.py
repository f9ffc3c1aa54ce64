"""HTTP plumbing shared by the ICS and CalDAV sources: a deadline for the whole read, and
answers read in pieces under a size cap.

``timeout`` bounds each wait for bytes, so a server sending one byte every few seconds never
trips it and keeps a read going for as long as it likes. A :class:`Deadline` bounds the
whole read of a source, and so every request in it: while a request runs under
:func:`watched`, a timer stands by to shut the sockets that request uses when the deadline
passes, which wakes a read blocked anywhere (status line, headers, body). The request then
fails with :class:`TooSlow`, whatever the library made of the cut connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # requests is imported by the first fetch: an ICS file needs none of it
    import requests

from providers.base import BadData, TooSlow

#: How long a source read may take in all, unless its config says otherwise (seconds).
DEFAULT_DEADLINE = 300.0
#: Bytes read from the network at a time.
PIECE = 1 << 16
#: While a connection is still being made when the deadline passes (no socket yet), the
#: timer looks again this often.
_RECHECK = 0.5


class Deadline:
    """A moment after which a read is abandoned, ``seconds`` from now."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())


class _Watch:
    """The connections one thread uses under one deadline, shut when it passes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: list[Any] = []
        self.fired = False
        self.done = False

    def add(self, conn: Any) -> None:
        with self._lock:
            self._conns.append(conn)
            if self.fired:
                _shut(conn)

    def fire(self) -> None:
        """Shut every socket in use; look again shortly for one not made yet."""
        with self._lock:
            if self.done:
                return
            self.fired = True
            unborn = [conn for conn in self._conns if not _shut(conn)]
        if unborn:
            timer = threading.Timer(_RECHECK, self.fire)
            timer.daemon = True
            timer.start()


def _shut(conn: Any) -> bool:
    """Shut a connection's socket both ways (a blocked read returns at once); False when it
    has no socket yet."""
    sock = getattr(conn, "sock", None)
    if sock is None:
        return False
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    return True


_local = threading.local()


class _WatchedPool:
    """Mixed into urllib3's pools: each connection handed out joins the thread's watch."""

    def _get_conn(self, *args: Any, **kwargs: Any) -> Any:
        conn = super()._get_conn(*args, **kwargs)  # type: ignore[misc]
        watch = getattr(_local, "watch", None)
        if watch is not None:
            watch.add(conn)
        return conn


def watched_session(session: requests.Session | None = None) -> requests.Session:
    """A session (``session`` itself, or a new one) whose requests :func:`watched` can cut.

    Call before the session's first request: pools made earlier are not watched.
    """
    import requests

    session = session or requests.Session()
    for adapter in session.adapters.values():
        manager = getattr(adapter, "poolmanager", None)
        if manager is None:
            continue
        manager.pool_classes_by_scheme = {
            scheme: _watched_class(cls) for scheme, cls in manager.pool_classes_by_scheme.items()
        }
    return session


_CLASSES: dict[type, type] = {}


def _watched_class(cls: type) -> type:
    if issubclass(cls, _WatchedPool):
        return cls
    if cls not in _CLASSES:
        _CLASSES[cls] = type(f"Watched{cls.__name__}", (_WatchedPool, cls), {})
    return _CLASSES[cls]


@contextlib.contextmanager
def watched(deadline: Deadline, what: str, provider: str) -> Iterator[None]:
    """Run the block's requests (on a :func:`watched_session`) under ``deadline``.

    Past it, the sockets are shut and the block ends in :class:`TooSlow`, also when the cut
    made the answer look complete (a body without a length ends where it was cut).
    """
    left = deadline.remaining()
    if left <= 0:
        raise _too_slow(deadline, what, provider)
    watch = _Watch()
    outer = getattr(_local, "watch", None)
    _local.watch = watch
    timer = threading.Timer(left, watch.fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    except Exception:
        if watch.fired:
            raise _too_slow(deadline, what, provider) from None
        raise
    finally:
        timer.cancel()
        with watch._lock:
            watch.done = True
        _local.watch = outer
    if watch.fired:
        raise _too_slow(deadline, what, provider)


def _too_slow(deadline: Deadline, what: str, provider: str) -> TooSlow:
    return TooSlow(f"{what}: no complete answer within {deadline.seconds:g} s (the source's "
                   "deadline); stopped, the next cycle tries again", provider=provider)


def capped(response: requests.Response, cap: int, what: str, provider: str
           ) -> Iterator[bytes]:
    """The body of ``response`` in pieces as they arrive; past ``cap`` bytes (or a declared
    length over it) :class:`BadData`, before more is read."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > cap:
        raise _too_big(cap, what, provider)
    size = 0
    for piece in response.iter_content(chunk_size=PIECE):
        size += len(piece)
        if size > cap:
            raise _too_big(cap, what, provider)
        yield piece


def _too_big(cap: int, what: str, provider: str) -> BadData:
    return BadData(f"{what}: the answer is over {_size(cap)}; refused", provider=provider)


def _size(n: int) -> str:
    return f"{n >> 20} MB" if n >= 1 << 20 else f"{n >> 10} KB" if n >= 1 << 10 else f"{n} bytes"
