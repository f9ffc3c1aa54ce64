"""The SQLite state (docs/design.md section 8): cursors, cached events, our reminders, tombstones.

One transaction per write, so a crash never loses a mapping. Nothing secret is stored
here: cursors, etags, keys and the events' own text only. The state belongs to one target:
it records which (kind and place, never a credential), so a config naming another target
is told so instead of acting on reminders that live elsewhere.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

from daemon.attribution import kept_description
from daemon.identity import make_key, parse_key
from daemon.model import Attendee, ChangeSet, Event, PartStat, StoredReminder

SCHEMA_VERSION = 1
#: Events written per statement by ``apply_changes`` (what is held of a streamed read).
BATCH = 500
#: The meta row naming the target this state describes (absent in files of older versions).
TARGET_META = "target"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY, cursor TEXT, events INTEGER NOT NULL DEFAULT 0,
    read_at TEXT
);
CREATE TABLE IF NOT EXISTS events (
    source TEXT NOT NULL, ident TEXT NOT NULL, uid TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (source, ident)
);
CREATE INDEX IF NOT EXISTS events_uid ON events (source, uid);
CREATE TABLE IF NOT EXISTS reminders (
    key TEXT PRIMARY KEY, client TEXT NOT NULL, ref TEXT NOT NULL, day TEXT NOT NULL,
    etag TEXT, hash TEXT
);
CREATE TABLE IF NOT EXISTS tombstones (
    key TEXT PRIMARY KEY, client TEXT NOT NULL, day TEXT NOT NULL
);
-- the highest generation used per client slug
CREATE TABLE IF NOT EXISTS generations (client TEXT PRIMARY KEY, last INTEGER NOT NULL);
"""


class StateError(Exception):
    """The state file cannot be used (newer schema, not a database, not writable)."""


def recorded_target(path: Path) -> str | None:
    """The target a state file records, read without creating or changing anything.

    ``None`` when the file is missing, unreadable or records none (an older version's).
    """
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            row = db.execute("SELECT value FROM meta WHERE name=?", (TARGET_META,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


#: The meta row saying cached events record their CLASS and a cut description (format 2).
EVENTS_META = "event_format"
EVENTS_FORMAT = "2"
#: The CLASS of an event cached before it was recorded: unknown, so never quoted.
UNKNOWN_CLASS = "?"


def _event_to_json(event: Event) -> str:
    return json.dumps(
        [
            event.uid, event.start.isoformat(), isinstance(event.start, datetime),
            event.summary, kept_description(event.description, event.private),
            list(event.categories), event.cancelled,
            event.organizer, [[a.email, a.partstat.value, a.is_me] for a in event.attendees],
            event.occurrence, event.clientlove_key, event.classification,
        ],
        ensure_ascii=False,
    )


def _event_from_json(source: str, text: str) -> Event:
    row = json.loads(text)
    (uid, start, timed, summary, description, categories, cancelled, organizer, attendees,
     occurrence, key) = row[:11]
    return Event(
        source=source,
        uid=uid,
        start=datetime.fromisoformat(start) if timed else date.fromisoformat(start),
        summary=summary,
        description=description,
        categories=tuple(categories),
        cancelled=cancelled,
        organizer=organizer,
        attendees=tuple(Attendee(a[0], PartStat.parse(a[1]), bool(a[2:3] and a[2]))
                        for a in attendees),
        occurrence=occurrence,
        clientlove_key=key,
        classification=row[11] if len(row) > 11 else UNKNOWN_CLASS,
    )


def _create_private(path: Path) -> None:
    """Make the state file (and so its ``-wal``/``-shm``, which SQLite creates with the
    database's mode) readable by its owner only, whatever the umask; an existing one of
    ours with a wider mode is narrowed."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if not os.path.lexists(path):
            raise StateError(f"cannot create the state file {path}: "
                             f"{exc.strerror or type(exc).__name__}") from None
    else:
        os.close(fd)
    _narrow(path)


def _narrow(path: Path) -> None:
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            info = os.lstat(name)
            if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() \
                    and info.st_mode & 0o077:
                os.chmod(name, stat.S_IMODE(info.st_mode) & 0o600)
        except OSError:
            continue


class State:
    """The service's memory between cycles, in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path) if str(path) != ":memory:" else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _create_private(self.path)
        try:
            # the service's cycles run in the scheduler's thread, one at a time (a lock)
            self.db = sqlite3.connect(str(path), isolation_level=None, timeout=30,
                                      check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot use the state file {path}: {exc}") from None
        if self.path is not None:
            _narrow(self.path)  # a -wal/-shm an older version left with a wider mode
        self._check_version()

    def _check_version(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
        if row is None:
            with self.transaction():
                self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                                (str(SCHEMA_VERSION),))
        elif int(row[0]) > SCHEMA_VERSION:
            raise StateError(
                f"the state file {self.path} has schema {row[0]}, newer than this version "
                f"understands ({SCHEMA_VERSION}); upgrade clientlove"
            )
        self._check_event_format()

    def _check_event_format(self) -> None:
        """Events cached before their CLASS was recorded read as of unknown class (never
        quoted) until read again: their sources' cursors are dropped, so the next read of
        each is a full one. Their rows stay meanwhile (a failed read keeps the history)."""
        row = self.db.execute("SELECT value FROM meta WHERE name=?", (EVENTS_META,)).fetchone()
        if row is not None and row[0] == EVENTS_FORMAT:
            return
        try:
            with self.transaction() as db:
                if db.execute("SELECT 1 FROM events LIMIT 1").fetchone():
                    db.execute("UPDATE sources SET cursor=NULL")
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                           (EVENTS_META, EVENTS_FORMAT))
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot use the state file {self.path}: {exc}") from None

    @classmethod
    def copy_of(cls, path: Path | str) -> State:
        """An in-memory copy of the state at ``path`` (empty when there is none yet).

        For a dry run: it may read sources into the copy, advance cursors and forget
        reminders, and nothing on disk is written or created. SQLite opens even a read-only
        connection to a WAL database by making its ``-shm`` file, so the file and its
        write-ahead log are copied to a private temporary folder and opened there.
        """
        copy = cls(":memory:")
        source = Path(path)
        if not source.exists():
            return copy
        try:
            with tempfile.TemporaryDirectory(prefix="clientlove-dry-") as scratch:
                for suffix in ("", "-wal"):
                    original = Path(f"{source}{suffix}")
                    if original.exists():
                        shutil.copyfile(original, Path(scratch) / f"state.sqlite{suffix}")
                opened = sqlite3.connect(str(Path(scratch) / "state.sqlite"))
                try:
                    opened.backup(copy.db)
                finally:
                    opened.close()
        except (sqlite3.DatabaseError, OSError) as exc:
            copy.close()
            raise StateError(f"cannot use the state file {path}: {exc}") from None
        copy._check_version()
        return copy

    @property
    def schema_version(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
        return int(row[0])

    def close(self) -> None:
        self.db.close()

    # -- the target it belongs to ----------------------------------------------------------
    @property
    def target(self) -> str | None:
        """The target this state describes; ``None`` when new or written by an older version."""
        row = self.db.execute("SELECT value FROM meta WHERE name=?", (TARGET_META,)).fetchone()
        return row[0] if row else None

    def claim_target(self, identity: str) -> None:
        """Record the target this state describes from now on."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (TARGET_META, identity))

    def holds_target_data(self) -> bool:
        """True when the state knows reminders or skips on its target (something to lose)."""
        return any(self.db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
                   for table in ("reminders", "tombstones"))

    def start_fresh_for(self, identity: str) -> None:
        """Forget the previous target's reminders and skips, and belong to ``identity``.

        The source cache stays (it describes the sources, not the target), and so do the
        generations used: a key is never taken twice, whichever calendar it went to.
        """
        with self.transaction() as db:
            db.execute("DELETE FROM reminders")
            db.execute("DELETE FROM tombstones")
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (TARGET_META, identity))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- sources ---------------------------------------------------------------------------
    def cursor(self, source: str) -> str | None:
        row = self.db.execute("SELECT cursor FROM sources WHERE source=?", (source,)).fetchone()
        return row[0] if row else None

    def event_count(self, source: str) -> int | None:
        """How many events the source had at its last read (``None``: never read)."""
        row = self.db.execute("SELECT events FROM sources WHERE source=?", (source,)).fetchone()
        return row[0] if row else None

    def apply_changes(self, source: str, changes: ChangeSet, read_at: datetime) -> int:
        """Store what a source reported, and its new cursor, in one transaction.

        ``changes.upserted`` is consumed once, :data:`BATCH` events at a time, so a source
        that streams its events never has them in memory all at once.
        """
        with self.transaction() as db:
            if changes.full:
                db.execute("DELETE FROM events WHERE source=?", (source,))
            for ident in changes.deleted:
                db.execute("DELETE FROM events WHERE source=? AND (ident=? OR uid=?)",
                           (source, ident, ident))
            upserted = iter(changes.upserted)
            while batch := list(itertools.islice(upserted, BATCH)):
                db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)",
                               [(source, e.ident, e.uid, _event_to_json(e)) for e in batch])
            count = db.execute("SELECT COUNT(*) FROM events WHERE source=?",
                               (source,)).fetchone()[0]
            db.execute(
                "INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?)",
                (source, changes.cursor, count, read_at.isoformat()),
            )
        return count

    def count_after(self, source: str, changes: ChangeSet) -> int:
        """How many events the source would hold once ``changes`` were applied."""
        if changes.full:
            return len({e.ident for e in changes.upserted})
        gone = set(changes.deleted)
        rows = self.db.execute("SELECT ident, uid FROM events WHERE source=?", (source,))
        kept = {ident for ident, uid in rows if ident not in gone and uid not in gone}
        return len(kept | {e.ident for e in changes.upserted})

    def reset_source(self, source: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM events WHERE source=?", (source,))
            db.execute("DELETE FROM sources WHERE source=?", (source,))

    def events(self, sources: Iterable[str]) -> list[Event]:
        out: list[Event] = []
        for source in sources:
            rows = self.db.execute("SELECT data FROM events WHERE source=?", (source,))
            out.extend(_event_from_json(source, data) for (data,) in rows)
        return out

    def forget_sources_except(self, keep: Iterable[str]) -> None:
        """Drop cached events of sources no longer configured."""
        names = list(keep)
        marks = ",".join("?" * len(names)) or "''"
        with self.transaction() as db:
            db.execute(f"DELETE FROM events WHERE source NOT IN ({marks})", names)
            db.execute(f"DELETE FROM sources WHERE source NOT IN ({marks})", names)

    # -- reminders -------------------------------------------------------------------------
    def reminders(self) -> list[StoredReminder]:
        rows = self.db.execute("SELECT key, client, ref, day, etag, hash FROM reminders")
        return [
            StoredReminder(key, client, ref, date.fromisoformat(day), etag, digest)
            for key, client, ref, day, etag, digest in rows
        ]

    def save_reminder(self, item: StoredReminder) -> None:
        parsed = parse_key(item.key)
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO reminders VALUES (?, ?, ?, ?, ?, ?)",
                (item.key, item.client, item.ref, item.day.isoformat(), item.etag,
                 item.content_hash),
            )
            if parsed is not None:
                db.execute(
                    "INSERT INTO generations VALUES (?, ?) ON CONFLICT(client) "
                    "DO UPDATE SET last=MAX(last, excluded.last)",
                    parsed,
                )

    def note_keys(self, keys: Iterable[str]) -> None:
        """Remember the generation of keys seen on the target (or refused as existing), so
        no later reminder of that client ever takes one again, whoever wrote it."""
        parsed = [p for p in (parse_key(k) for k in keys) if p is not None]
        if not parsed:
            return
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO generations VALUES (?, ?) ON CONFLICT(client) "
                "DO UPDATE SET last=MAX(last, excluded.last)", parsed)

    def drop_reminder(self, key: str, *, tombstone: StoredReminder | None = None) -> None:
        """Forget a reminder; with ``tombstone``, remember it as skipped by the user."""
        with self.transaction() as db:
            db.execute("DELETE FROM reminders WHERE key=?", (key,))
            if tombstone is not None:
                db.execute(
                    "INSERT OR REPLACE INTO tombstones VALUES (?, ?, ?)",
                    (tombstone.key, tombstone.client, tombstone.day.isoformat()),
                )

    def tombstones(self) -> list[tuple[str, str, date]]:
        rows = self.db.execute("SELECT key, client, day FROM tombstones")
        return [(key, client, date.fromisoformat(day)) for key, client, day in rows]

    def known_keys(self) -> set[str]:
        """Every key we ever used, so none is reused (Google keeps deleted ids forever)."""
        keys = {r[0] for r in self.db.execute("SELECT key FROM reminders")}
        keys |= {r[0] for r in self.db.execute("SELECT key FROM tombstones")}
        keys |= {make_key(s, n) for s, n in self.db.execute("SELECT client, last FROM generations")}
        return keys
