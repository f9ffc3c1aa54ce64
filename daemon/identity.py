"""Our marks on the events we own: keys, UIDs, content hashes, Google ids.

A key is ``<client slug>.<generation>``. The generation counts the reminders ever planned
for the client, so the key is known before the write: a crash between a write and the
state update finds the same key on the target next time and cannot make a second event.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import UTC, date, datetime, timedelta

from daemon.model import UID_DOMAIN, Reminder

_SLUG_JUNK = re.compile(r"[^a-z0-9]+")
#: The longest slug. A key (``<slug>.<generation>``) becomes a CalDAV file name
#: (``<key>.ics``: at most 255 bytes on every file system, 255 in Sabre's database), a UID,
#: an ``X-CLIENTLOVE-KEY`` and a Google private property value (at most 1,024): 64 keeps
#: every one of them far inside its limit and every name a person uses unchanged.
SLUG_MAX = 64
#: hex digits of the name's digest at the end of a slug that was cut short
_CUT_DIGEST = 12
_KEY = re.compile(r"^([a-z0-9][a-z0-9-]*)\.([0-9]+)$")


def slug(name: str) -> str:
    """A client's name as a key part: ASCII lower-case letters, digits and dashes.

    Accents are folded (``Müller`` -> ``muller``); a name with no ASCII letters at all gets a
    digest instead, so every name has a slug that fits UIDs and Google ids. A slug longer
    than :data:`SLUG_MAX` is cut short and ends in a digest of the whole name, so a name of
    any length gives a key every server accepts and two long names stay apart. Two clients
    whose names give the same slug would share reminders: the config refuses that.
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = _SLUG_JUNK.sub("-", folded.lower()).strip("-")
    if len(text) > SLUG_MAX:
        head = text[:SLUG_MAX - _CUT_DIGEST - 1].rstrip("-")
        return f"{head}-{_name_digest(name, _CUT_DIGEST)}"
    if text:
        return text
    if not any(ch.isalnum() for ch in name):
        return ""  # no letter or digit in any script: not a usable name
    return "c-" + hashlib.sha256(name.strip().encode()).hexdigest()[:10]


def _name_digest(name: str, length: int) -> str:
    """A digest of a name as a person means it: case, spacing and Unicode form aside, so
    correcting a long name's capitals keeps its key, as it does for a short one."""
    canonical = " ".join(unicodedata.normalize("NFKC", name).casefold().split())
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


def make_key(client_slug: str, generation: int) -> str:
    return f"{client_slug}.{generation}"


def parse_key(key: str) -> tuple[str, int] | None:
    """``(slug, generation)`` of one of our keys, or ``None`` for anything else."""
    match = _KEY.match(key or "")
    if not match:
        return None
    return match.group(1), int(match.group(2))


def key_from_uid(uid: str) -> str | None:
    """The key inside a UID of ours (``<key>@clientlove``), else ``None``."""
    head, sep, domain = (uid or "").rpartition("@")
    if not sep or domain != UID_DOMAIN or parse_key(head) is None:
        return None
    return head


def _utc(value: datetime | date) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat()
        return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return value.isoformat()


def content_hash(
    summary: str,
    start: datetime | date,
    end: datetime | date | None,
    description: str,
    alarm_before: timedelta | None,
) -> str:
    """A hash of what a user can see and change in our event.

    Computed from parsed fields (never bytes: servers reorder properties and add
    VTIMEZONEs), so the same event read back from any target hashes the same.
    """
    alarm = None if alarm_before is None else int(alarm_before.total_seconds())
    text = (description or "").replace("\r\n", "\n").strip()
    payload = json.dumps(
        [(summary or "").strip(), _utc(start), _utc(end) if end is not None else None, text,
         alarm],
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def reminder_hash(reminder: Reminder) -> str:
    return content_hash(
        reminder.summary, reminder.start, reminder.end, reminder.description,
        reminder.alarm_before,
    )
