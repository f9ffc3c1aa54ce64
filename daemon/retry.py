"""Retrying transient provider errors with exponential backoff and full jitter."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from providers.base import Transient

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """``attempts`` tries in all; waits grow from ``base`` seconds, at most ``cap``."""

    attempts: int = 6
    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """The wait before try ``attempt + 1``: the server's Retry-After wins when given."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.cap)
        return rng.uniform(0, min(self.cap, self.base * (2**attempt)))


DEFAULT_BACKOFF = Backoff()


def with_retry(
    call: Callable[[], T],
    backoff: Backoff = DEFAULT_BACKOFF,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run ``call``; on :class:`Transient` wait and try again, up to ``backoff.attempts``."""
    rng = rng or random.Random()
    for attempt in range(backoff.attempts):
        try:
            return call()
        except Transient as exc:
            if attempt + 1 >= backoff.attempts:
                raise
            sleep(backoff.delay(attempt, exc.retry_after, rng))
    raise AssertionError("unreachable")
