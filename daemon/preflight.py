"""What ``check-config`` checks beyond the file itself, without writing or contacting anything.

A config can be valid and still not work: a source file that is not there, a target folder
that cannot be written, a credential that was never stored, a feed token too short to be a
secret. Each finding is one line with its YAML path (``sources[0].path: no such file: ...``);
problems make ``check-config`` exit 78, hints only inform. Nothing here writes a file,
prints a secret, or talks to a CalDAV or Google server.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.credentials import CREDENTIALS_ENV, CredentialError, resolve_secret

__all__ = ["BROKEN", "MISSING", "NO_KEYRING", "Finding", "credential_problem", "preflight",
           "token_advice"]

#: How much of a source file is looked at for ``BEGIN:VCALENDAR``.
SNIFF_BYTES = 64 << 10

#: File systems that hold no files of ours (writing there fails even for root).
PSEUDO_FILE_SYSTEMS = frozenset({
    "proc", "sysfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs",
    "pstore", "configfs", "fusectl", "bpf", "efivarfs", "binfmt_misc", "mqueue", "hugetlbfs",
    "autofs", "rpc_pipefs", "nsfs",
})


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing ``check-config`` found: ``where`` is the YAML path, ``problem`` False for a
    hint (worth knowing, not a failure)."""

    where: str
    message: str
    problem: bool = True

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def preflight(config: Any, *, resolve: Callable[[str], Any] = resolve_secret) -> list[Finding]:
    """Everything that can be checked without writing: sources, target, credentials, feed."""
    findings: list[Finding] = []
    secrets = _Secrets(resolve)
    for index, source in enumerate(config.sources):
        where = f"sources[{index}]"
        if getattr(source, "path", None) is not None:
            findings += _source_file(f"{where}.path", source.path)
        if getattr(source, "credential", None):
            findings += secrets.check(f"{where}.credential", source.credential)
    target = config.target
    if target.type == "ics":
        findings += _target_file("target.path", target.path)
    if getattr(target, "credential", None):
        findings += secrets.check("target.credential", target.credential)
    if config.feed.enabled:
        findings += _feed_token(config.feed.token_credential, secrets)
        exposure = config.feed.exposure_warning()
        if exposure:
            findings.append(Finding("feed.listen", exposure, problem=False))
    if secrets.missing and not os.environ.get(CREDENTIALS_ENV):
        findings.append(Finding(
            "credentials",
            f"to check a systemd service's LoadCredential= files, run this with "
            f"{CREDENTIALS_ENV}=<the folder holding them> (e.g. /etc/clientlove/credentials)",
            problem=False))
    return findings


# -- sources --------------------------------------------------------------------------------


def _source_file(where: str, path: Path) -> Iterator[Finding]:
    if not path.exists():
        missing = _first_missing(path)
        if missing != path:
            yield Finding(where, f"no such file: {path} (the folder {missing} does not exist)")
        else:
            yield Finding(where, f"no such file: {path}")
        return
    if path.is_dir():
        yield Finding(where, f"{path} is a folder, not a calendar file")
        return
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as exc:
        yield Finding(where, f"cannot read {path}: {exc.strerror or type(exc).__name__}")
        return
    if head.strip() and b"BEGIN:VCALENDAR" not in head.upper():
        yield Finding(where, f"{path} is not an iCalendar file (no BEGIN:VCALENDAR at its start)")


# -- the target -----------------------------------------------------------------------------


def _target_file(where: str, path: Path) -> Iterator[Finding]:
    if path.is_dir():
        yield Finding(where, f"{path} is a folder; give a file name, like "
                             f"{path / 'reminders.ics'}")
        return
    if path.exists() and not os.access(path, os.R_OK):
        yield Finding(where, f"cannot read {path}: permission denied")
        return
    folder = path.parent
    if folder.is_dir():
        why = _unwritable(folder)
        if why:
            yield Finding(where, f"folder {folder} is not writable ({why})")
        return
    blocker = _first_file(path)
    if blocker is not None:
        yield Finding(where, f"folder {folder} cannot exist: {blocker} is a file")
        return
    ancestor = _existing_ancestor(folder)
    why = _unwritable(ancestor)
    if why:
        yield Finding(where, f"folder {folder} does not exist and cannot be made "
                             f"({ancestor} is not writable: {why})")
    else:
        yield Finding(where, f"folder {folder} does not exist yet; sync will make it",
                      problem=False)


def _unwritable(folder: Path) -> str | None:
    """Why nothing can be written in ``folder``, or None when it looks writable."""
    try:
        flags = os.statvfs(folder).f_flag
    except OSError:
        flags = 0
    if flags & getattr(os, "ST_RDONLY", 1):
        return "read-only file system"
    kind = _file_system(folder)
    if kind in PSEUDO_FILE_SYSTEMS:
        return f"a {kind} pseudo file system"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied"
    return None


def _file_system(path: Path) -> str | None:
    """The type of the file system ``path`` is on (Linux ``/proc/self/mountinfo``), if known."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    target = str(path.resolve())
    best, kind = "", None
    for line in lines:
        fields = line.split()
        try:
            mount = fields[4].replace("\\040", " ")
            fstype = fields[fields.index("-") + 1]
        except (IndexError, ValueError):
            continue
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, fstype
    return kind


def _first_file(path: Path) -> Path | None:
    """The first ancestor of ``path`` that exists and is not a folder."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path(path.anchor or "/")


def _first_missing(path: Path) -> Path:
    """The outermost part of ``path`` that does not exist (``path`` itself when only it)."""
    for parent in reversed(path.parents):
        if not parent.exists():
            return parent
    return path


# -- credentials ----------------------------------------------------------------------------


#: What a credential that did not resolve means for the one who named it.
MISSING, NO_KEYRING, BROKEN = "missing", "no keyring", "broken"


def credential_problem(name: str, exc: CredentialError) -> tuple[str, str]:
    """(kind, one line) for a credential that did not resolve: ``MISSING`` (stored nowhere
    looked at), ``NO_KEYRING`` (not in $CREDENTIALS_DIRECTORY and the keyring cannot be
    read), or ``BROKEN`` (a file there that cannot be used). Never holds the secret."""
    text = str(exc)
    directory = os.environ.get(CREDENTIALS_ENV)
    where = f"${CREDENTIALS_ENV} ({directory})" if directory else f"${CREDENTIALS_ENV} (not set)"
    if " not found; " in text:
        return MISSING, f"{name!r} not found in {where} or the keyring"
    if " in the system keyring " in text:
        cause = exc.__context__
        reason = (str(cause) or type(cause).__name__) if cause is not None else "unavailable"
        reason = reason.split(". ")[0].rstrip(".")
        return NO_KEYRING, (f"{name!r} not found in {where}, and the system keyring cannot "
                            f"be read ({reason})")
    return BROKEN, text


def token_advice(kind: str) -> str:
    """How to make the missing feed token, where it can be kept."""
    if kind == NO_KEYRING:
        return ("make one with `clientlove feed token --output FILE` and load it with "
                "systemd LoadCredential=")
    return "make one with `clientlove feed token`"


class _Secrets:
    """Each credential resolved once, however many entries name it."""

    def __init__(self, resolve: Callable[[str], Any]) -> None:
        self._resolve = resolve
        self._seen: dict[str, tuple[Any, CredentialError | None]] = {}
        self.missing = False

    def get(self, name: str) -> tuple[Any, CredentialError | None]:
        if name not in self._seen:
            try:
                self._seen[name] = (self._resolve(name), None)
            except CredentialError as exc:
                self._seen[name] = (None, exc)
        return self._seen[name]

    def check(self, where: str, name: str) -> Iterator[Finding]:
        _, error = self.get(name)
        if error is not None:
            kind, message = credential_problem(name, error)
            self.missing = self.missing or kind != BROKEN
            yield Finding(where, message)


def _feed_token(name: str, secrets: _Secrets) -> Iterator[Finding]:
    """A feed token that resolves must be usable; one not made yet is a hint, unless this
    runs with a service's credentials (then its feed would not start)."""
    from daemon.feed import check_token

    secret, error = secrets.get(name)
    where = "feed.token_credential"
    if error is not None:
        kind, message = credential_problem(name, error)
        if kind == BROKEN:
            yield Finding(where, message)
            return
        secrets.missing = True
        under_service = bool(os.environ.get(CREDENTIALS_ENV))
        yield Finding(where, f"no feed token yet: {message}; `clientlove run` serves no feed "
                             f"without one (sync and status need none): {token_advice(kind)}",
                      problem=under_service)
        return
    try:
        check_token(secret.reveal())
    except ValueError as exc:
        yield Finding(where, f"the token in {name!r} is not usable ({exc}); make a new one with "
                             "`clientlove feed token --force`")
