"""The promises checked after every reliability scenario (docs/design.md sections 5 and 9).

Each scenario returns a :class:`ScenarioResult`; tests assert it has no violation, and
``bench/reliability.py`` runs the same scenarios, larger, and prints the table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

import icalendar

from daemon.reminder_ical import key_of


@dataclass
class ScenarioResult:
    """What one scenario did and what it found wrong (``violations`` must stay empty)."""

    name: str
    cycles: int = 0
    faults: int = 0
    crashes: int = 0
    inputs: int = 0
    violations: list[str] = field(default_factory=list)

    def add(self, problems: Iterable[str]) -> None:
        self.violations.extend(problems)

    def row(self) -> tuple[str, int, int, int, int, int]:
        return (self.name, self.cycles, self.faults, self.crashes, self.inputs,
                len(self.violations))


def _day(component: icalendar.cal.Component, tz) -> date | None:
    start = component.get("dtstart")
    if start is None:
        return None
    value = start.dt
    return value.astimezone(tz).date() if isinstance(value, datetime) else value


def check_target(
    events: Iterable[icalendar.cal.Component],
    today: date,
    tz,
    foreign_before: dict[str, str] | None = None,
    foreign_after: dict[str, str] | None = None,
) -> list[str]:
    """Violations among a target's events (as VEVENT components).

    At most one pending reminder of ours per client; no key twice; no ATTENDEE or
    ORGANIZER on ours; every event that is not ours unchanged.
    """
    problems: list[str] = []
    keys: Counter = Counter()
    pending: Counter = Counter()
    for event in events:
        key = key_of(event)
        if key is None:
            continue
        keys[key] += 1
        if "ATTENDEE" in event or "ORGANIZER" in event:
            problems.append(f"{key}: carries an ATTENDEE or ORGANIZER")
        day = _day(event, tz)
        if day is not None and day >= today and str(event.get("status", "")).upper() != \
                "CANCELLED":
            pending[key.rsplit(".", 1)[0]] += 1
    problems += [f"{key}: {n} copies" for key, n in keys.items() if n > 1]
    problems += [f"client {slug}: {n} pending reminders" for slug, n in pending.items() if n > 1]
    if foreign_before is not None and foreign_after is not None:
        for uid, fingerprint in foreign_before.items():
            if foreign_after.get(uid) != fingerprint:
                problems.append(f"foreign event {uid} changed or vanished")
    return problems


def check_state(stored_keys: set[str], listed_keys: set[str],
                pending_keys: set[str]) -> list[str]:
    """After a clean cycle the state claims nothing the target lacks, and knows every pending
    reminder (history it may not know, after a state was lost, and need not)."""
    problems = [f"state remembers {k} the target does not hold" for k in
                sorted(stored_keys - listed_keys)]
    problems += [f"pending {k} on the target is unknown to the state" for k in
                 sorted(pending_keys - stored_keys)]
    return problems


def check_no_secret(outputs: dict[str, str], secrets: Iterable[str]) -> list[str]:
    return [f"a secret ({secret[:2]}...) appears in {name}" for name, text in outputs.items()
            for secret in secrets if secret and secret in text]
