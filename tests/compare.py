"""Comparing events read twice (two paths, two reads) for equality."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from daemon.model import Event


def event_key(event: Event) -> tuple:
    """Every field, and the start as instant, wall time and offset.

    Not ``event`` itself: two reads build two tzinfo objects for one VTIMEZONE, and Python
    calls times in a DST fold unequal across tzinfo objects even when they are the same.
    """
    start = event.start
    if isinstance(start, datetime):
        return (replace(event, start=date.min), start.astimezone(UTC), start.isoformat())
    return (event,)
