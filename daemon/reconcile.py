"""The sync decision table: desired reminders against what the target holds of ours.

Pure: in go the desired reminder per client (or ``None`` when none is needed), our events
as the target lists them and today; out comes a list of actions. The rules (docs/design.md
section 5):

==============================  ===============  ===========================================
pending of ours on the target   desired          action
==============================  ===============  ===========================================
none                            none             nothing
none                            reminder R       create R
P, unchanged, same content      R                keep
P, unchanged, other content     R                update P to R (move or refresh)
P, unchanged                    none (booked)    delete P
E, edited by the user           anything         leave E as the user left it
several unchanged               R                keep or update the one with R's key,
                                                 delete the others
==============================  ===============  ===========================================

Past reminders are history and never appear in an action.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from enum import StrEnum

from daemon.identity import make_key, parse_key, reminder_hash
from daemon.model import Reminder, RemoteReminder, StoredReminder


class Kind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    KEEP = "keep"
    LEAVE = "leave"


@dataclass(frozen=True, slots=True)
class Action:
    kind: Kind
    client: str
    key: str
    reminder: Reminder | None = None
    current: RemoteReminder | None = None
    why: str = ""

    @property
    def writes(self) -> bool:
        return self.kind in (Kind.CREATE, Kind.UPDATE, Kind.DELETE)


def day_of(value: datetime | date, tz: tzinfo) -> date:
    return value.astimezone(tz).date() if isinstance(value, datetime) else value


def is_pending(remote: RemoteReminder, today: date, tz: tzinfo) -> bool:
    """A reminder is pending from its creation through its own day; history after."""
    return not remote.cancelled and day_of(remote.start, tz) >= today


def next_key(
    client_slug: str,
    pending: Iterable[RemoteReminder],
    known_keys: Iterable[str],
) -> str:
    """The key for a client's next reminder.

    An existing pending reminder keeps its key (a move, not a new event). Otherwise one
    generation past every key ever seen for the client, on the target or in the state, so
    a key is never reused (Google keeps deleted ids forever).
    """
    pending_gens = [g for g in (_gen(r.key, client_slug) for r in pending) if g is not None]
    if pending_gens:
        return make_key(client_slug, max(pending_gens))
    seen = [g for g in (_gen(k, client_slug) for k in known_keys) if g is not None]
    return make_key(client_slug, max(seen, default=0) + 1)


def _gen(key: str, client_slug: str) -> int | None:
    parsed = parse_key(key)
    if parsed is None or parsed[0] != client_slug:
        return None
    return parsed[1]


def reconcile(
    desired: Mapping[str, Reminder | None],
    pending: Mapping[str, list[RemoteReminder]],
) -> list[Action]:
    """Decide, client by client, what to write (see the table in the module docstring).

    ``pending`` holds each client's pending reminders of ours on the target.
    """
    actions: list[Action] = []
    for client, want in desired.items():
        mine = pending.get(client, [])
        edited = [r for r in mine if r.user_edited]
        untouched = [r for r in mine if not r.user_edited]
        for remote in edited:
            actions.append(Action(Kind.LEAVE, client, remote.key, current=remote,
                                  why="edited by the user"))
        if edited:
            actions.extend(
                Action(Kind.DELETE, client, r.key, current=r, why="duplicate of an edited one")
                for r in untouched
            )
            continue
        if want is None:
            actions.extend(
                Action(Kind.DELETE, client, r.key, current=r, why="no longer needed")
                for r in untouched
            )
            continue
        same = [r for r in untouched if r.key == want.key]
        keeper = same[0] if same else None
        for remote in untouched:
            if remote is not keeper:
                actions.append(Action(Kind.DELETE, client, remote.key, current=remote,
                                      why="duplicate"))
        if keeper is None:
            actions.append(Action(Kind.CREATE, client, want.key, reminder=want))
        elif keeper.content_hash == reminder_hash(want):
            actions.append(Action(Kind.KEEP, client, want.key, reminder=want, current=keeper))
        else:
            why = "moved" if keeper.start != want.start else "refreshed"
            actions.append(Action(Kind.UPDATE, client, want.key, reminder=want,
                                  current=keeper, why=why))
    return actions


def detect_skips(
    stored: Iterable[StoredReminder],
    listed_keys: set[str],
    today: date,
) -> tuple[list[StoredReminder], list[StoredReminder]]:
    """Compare what we wrote with what the target lists.

    Returns ``(skipped, forgotten)``: a pending reminder of ours that vanished was deleted
    by the user before its day (a skip); a past one that vanished was history the user
    erased (the call did not happen): forget it, it is simply no contact.
    """
    skipped: list[StoredReminder] = []
    forgotten: list[StoredReminder] = []
    for item in stored:
        if item.key in listed_keys:
            continue
        (skipped if item.day >= today else forgotten).append(item)
    return skipped, forgotten
