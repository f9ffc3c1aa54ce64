"""Secrets by name: systemd credentials first, then the system keyring.

The config file only ever names a credential. A service reads it from
``$CREDENTIALS_DIRECTORY/<name>`` (systemd ``LoadCredential=``); a laptop user keeps it in the
keyring (``clientlove auth ...`` stores it there). The value travels wrapped in
:class:`Secret`, so a log line, a traceback or an error message shows ``Secret('***')``.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

__all__ = [
    "CREDENTIALS_ENV",
    "KEYRING_SERVICE",
    "CredentialError",
    "Secret",
    "is_plain_name",
    "resolve_secret",
    "store_secret",
]

#: The keyring "service" every clientlove secret is filed under.
KEYRING_SERVICE = "clientlove"
#: Set by systemd for a unit with ``LoadCredential=`` / ``SetCredential=``.
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"

_KEYRING_HINT = (
    "on a server without a desktop keyring, give the secret to the service with systemd "
    "LoadCredential=<name>:<file>, or choose a keyring backend with PYTHON_KEYRING_BACKEND"
)


class CredentialError(Exception):
    """A named secret could not be found or read. The message never holds a secret."""


class Secret:
    """A secret string that does not show itself: ``str``, ``repr`` and f-strings give ``***``.

    Call :meth:`reveal` exactly where the value is handed to a library (an HTTP auth header).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        """The secret itself; keep it out of anything that is printed or stored."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


def is_plain_name(name: object) -> bool:
    """True for a name that is a single file name: no folders, no ``..``, nothing hidden in it.

    Names become file names under ``$CREDENTIALS_DIRECTORY``, so ``../x`` or ``a/b`` could
    read a file outside it.
    """
    return (
        isinstance(name, str)
        and name.strip() == name
        and name not in ("", ".", "..")
        and not any(ch in name for ch in "/\\\0")
        and all(ch.isprintable() for ch in name)
    )


def _check_name(name: str) -> None:
    if not is_plain_name(name):
        raise CredentialError(
            f"credential name {name!r} is not a plain name (no '/', '\\' or '..', "
            "like 'caldav-password')"
        )


def _from_directory(name: str, directory: str) -> Secret | None:
    """The secret from a systemd credentials folder, or None when it has no such file."""
    path = Path(directory) / name
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CredentialError(
            f"cannot read credential {name!r} from ${CREDENTIALS_ENV} ({path}): {reason}"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # The exception text would quote bytes of the secret, so it is not chained.
        raise CredentialError(
            f"credential {name!r} in ${CREDENTIALS_ENV} ({path}) is not UTF-8 text"
        ) from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise CredentialError(f"credential {name!r} in ${CREDENTIALS_ENV} ({path}) is empty")
    return Secret(text)


def _keyring_failure(action: str, name: str, exc: Exception, secret: str = "") -> CredentialError:
    reason = str(exc) or type(exc).__name__
    if secret:
        reason = reason.replace(secret, "***")
    return CredentialError(
        f"cannot {action} credential {name!r} in the system keyring "
        f"(service {KEYRING_SERVICE!r}): {reason}; {_KEYRING_HINT}"
    )


def resolve_secret(name: str) -> Secret:
    """The secret called ``name``: ``$CREDENTIALS_DIRECTORY/<name>``, else the keyring."""
    _check_name(name)
    looked: list[str] = []
    directory = os.environ.get(CREDENTIALS_ENV)
    if directory:
        secret = _from_directory(name, directory)
        if secret is not None:
            return secret
        looked.append(f"${CREDENTIALS_ENV} ({directory})")
    else:
        looked.append(f"${CREDENTIALS_ENV} (not set)")

    import keyring  # only when the secret is not in $CREDENTIALS_DIRECTORY: 10 MB, D-Bus

    try:
        value = keyring.get_password(KEYRING_SERVICE, name)
    except Exception as exc:  # backends raise their own types (D-Bus, Secret Service, ...)
        raise _keyring_failure("read", name, exc) from None
    if value:
        return Secret(value)
    looked.append(f"the system keyring (service {KEYRING_SERVICE!r})")
    raise CredentialError(
        f"credential {name!r} not found; looked in {' and '.join(looked)}. Store it with "
        f"'clientlove auth', or 'keyring set {KEYRING_SERVICE} {name}', or give it to the "
        "service with systemd LoadCredential="
    )


def store_secret(name: str, secret: str | Secret) -> None:
    """Keep ``secret`` in the system keyring under ``name`` (what ``clientlove auth`` does)."""
    _check_name(name)
    value = secret.reveal() if isinstance(secret, Secret) else secret
    if not isinstance(value, str) or not value:
        raise CredentialError(f"refusing to store an empty secret as credential {name!r}")
    import keyring

    try:
        keyring.set_password(KEYRING_SERVICE, name, value)
    except Exception as exc:
        raise _keyring_failure("store", name, exc, value) from None
