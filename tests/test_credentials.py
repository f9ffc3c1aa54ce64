"""Secrets by name: systemd credentials first, then the keyring, and never shown."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.errors
import pytest
from keyring.backend import KeyringBackend

from daemon.credentials import (
    KEYRING_SERVICE,
    CredentialError,
    Secret,
    is_plain_name,
    resolve_secret,
    store_secret,
)
from tests.keyrings import MemoryKeyring

SECRET = "s3cr3t-Pa55word"


class NoKeyring(KeyringBackend):
    """What a headless server has: every call fails as keyring's fail backend does."""

    priority = 0  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.NoKeyringError("No recommended backend was available.")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.NoKeyringError("No recommended backend was available.")

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.NoKeyringError("No recommended backend was available.")


class ChattyKeyring(MemoryKeyring):
    """A badly behaved backend whose error message quotes the password it was given."""

    def set_password(self, service: str, username: str, password: str) -> None:
        raise RuntimeError(f"D-Bus said no to {password}")


@pytest.fixture
def no_keyring() -> Iterator[NoKeyring]:
    """A keyring that is not there, as on a server without a desktop session."""
    previous = keyring.get_keyring()
    backend = NoKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def credentials_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder standing in for systemd's $CREDENTIALS_DIRECTORY."""
    folder = tmp_path / "credentials"
    folder.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(folder))
    return folder


@pytest.fixture
def no_credentials_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not running under systemd credentials."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


# -- the Secret wrapper -------------------------------------------------------------------


def test_secret_never_shows_itself(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret(SECRET)
    assert secret.reveal() == SECRET
    assert repr(secret) == "Secret('***')"
    assert str(secret) == "Secret('***')"
    assert f"{secret}" == "Secret('***')"
    assert f"{secret!r:>20}".strip() == "Secret('***')"
    assert "%s" % secret == "Secret('***')"  # noqa: UP031 - the old style is what logging uses
    assert "{} {}".format(secret, 1) == "Secret('***') 1"  # noqa: UP032 - str.format itself
    assert SECRET not in repr([secret, {"password": secret}])
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("logging in with %s", secret)
    assert SECRET not in caplog.text
    assert "Secret('***')" in caplog.text


def test_secret_compares_by_value_and_is_not_a_str() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert not isinstance(Secret("a"), str)
    assert len({Secret("a"), Secret("a")}) == 1
    assert Secret("a")
    assert not Secret("")
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        Secret("a").__dict__  # noqa: B018 - slots only, nothing for vars() to print


# -- names --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["caldav-password", "google.token", "work_calendar", "a"])
def test_plain_names(name: str) -> None:
    assert is_plain_name(name)


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "a/b", "/etc/shadow", "a\\b", "x\0y", " pad", "tab\t", 5, None]
)
def test_names_that_are_not_plain(
    name: object, credentials_dir: Path, memory_keyring: MemoryKeyring
) -> None:
    assert not is_plain_name(name)
    with pytest.raises(CredentialError, match="is not a plain name"):
        resolve_secret(name)  # type: ignore[arg-type]
    with pytest.raises(CredentialError, match="is not a plain name"):
        store_secret(name, "x")  # type: ignore[arg-type]
    assert memory_keyring.passwords == {}


def test_traversal_never_reads_outside_the_folder(
    credentials_dir: Path, memory_keyring: MemoryKeyring
) -> None:
    (credentials_dir.parent / "outside").write_text(SECRET)
    with pytest.raises(CredentialError) as caught:
        resolve_secret("../outside")
    assert SECRET not in str(caught.value)


# -- resolving ------------------------------------------------------------------------------


def test_credentials_directory_comes_first(
    credentials_dir: Path, memory_keyring: MemoryKeyring
) -> None:
    (credentials_dir / "caldav").write_text(SECRET + "\n")
    memory_keyring.passwords[(KEYRING_SERVICE, "caldav")] = "from-the-keyring"
    secret = resolve_secret("caldav")
    assert isinstance(secret, Secret)
    assert secret.reveal() == SECRET


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"abc", "abc"),
        (b"abc\n", "abc"),
        (b"abc\r\n", "abc"),
        (b"abc\n\n", "abc\n"),
        (b" abc \n", " abc "),
        (b"line1\nline2\n", "line1\nline2"),
        ("caf\u00e9\n".encode(), "caf\u00e9"),
    ],
)
def test_one_trailing_newline_is_stripped(
    credentials_dir: Path, memory_keyring: MemoryKeyring, content: bytes, expected: str
) -> None:
    (credentials_dir / "token").write_bytes(content)
    assert resolve_secret("token").reveal() == expected


def test_keyring_when_the_folder_has_no_such_file(
    credentials_dir: Path, memory_keyring: MemoryKeyring
) -> None:
    (credentials_dir / "other").write_text("not this one")
    memory_keyring.passwords[(KEYRING_SERVICE, "caldav")] = SECRET
    assert resolve_secret("caldav").reveal() == SECRET


def test_keyring_without_systemd(no_credentials_dir: None, memory_keyring: MemoryKeyring) -> None:
    memory_keyring.passwords[(KEYRING_SERVICE, "caldav")] = SECRET
    assert resolve_secret("caldav").reveal() == SECRET


def test_keyring_is_read_under_the_clientlove_service(
    no_credentials_dir: None, memory_keyring: MemoryKeyring
) -> None:
    memory_keyring.passwords[("another-app", "caldav")] = SECRET
    with pytest.raises(CredentialError, match="not found"):
        resolve_secret("caldav")


def test_not_found_names_the_credential_and_where_it_looked(
    credentials_dir: Path, memory_keyring: MemoryKeyring
) -> None:
    with pytest.raises(CredentialError) as caught:
        resolve_secret("caldav")
    message = str(caught.value)
    assert "'caldav' not found" in message
    assert f"$CREDENTIALS_DIRECTORY ({credentials_dir})" in message
    assert "the system keyring (service 'clientlove')" in message
    assert "LoadCredential=" in message


def test_not_found_without_systemd_says_so(
    no_credentials_dir: None, memory_keyring: MemoryKeyring
) -> None:
    with pytest.raises(CredentialError) as caught:
        resolve_secret("caldav")
    assert "$CREDENTIALS_DIRECTORY (not set)" in str(caught.value)


def test_empty_keyring_entry_counts_as_missing(
    no_credentials_dir: None, memory_keyring: MemoryKeyring
) -> None:
    memory_keyring.passwords[(KEYRING_SERVICE, "caldav")] = ""
    with pytest.raises(CredentialError, match="not found"):
        resolve_secret("caldav")


@pytest.mark.parametrize("content", [b"", b"\n"])
def test_empty_credential_file(
    credentials_dir: Path, memory_keyring: MemoryKeyring, content: bytes
) -> None:
    (credentials_dir / "caldav").write_bytes(content)
    with pytest.raises(CredentialError, match=r"'caldav' in \$CREDENTIALS_DIRECTORY .* is empty"):
        resolve_secret("caldav")


def test_credential_file_that_is_not_utf8_does_not_leak_bytes(
    credentials_dir: Path, memory_keyring: MemoryKeyring
) -> None:
    (credentials_dir / "caldav").write_bytes(b"pass\xfe\xffword")
    with pytest.raises(CredentialError) as caught:
        resolve_secret("caldav")
    message = str(caught.value)
    assert "is not UTF-8 text" in message
    assert "pass" not in message.replace("password", "")
    assert "0xfe" not in message and "\\xfe" not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_unreadable_credential_file(credentials_dir: Path, memory_keyring: MemoryKeyring) -> None:
    (credentials_dir / "caldav").mkdir()  # a folder where the file should be
    with pytest.raises(CredentialError, match="cannot read credential 'caldav'"):
        resolve_secret("caldav")


def test_headless_keyring_gives_a_hint(no_credentials_dir: None, no_keyring: NoKeyring) -> None:
    with pytest.raises(CredentialError) as caught:
        resolve_secret("caldav")
    message = str(caught.value)
    assert "cannot read credential 'caldav' in the system keyring" in message
    assert "No recommended backend was available" in message
    assert "LoadCredential=" in message
    assert "PYTHON_KEYRING_BACKEND" in message


def test_credentials_directory_still_works_without_a_keyring(
    credentials_dir: Path, no_keyring: NoKeyring
) -> None:
    (credentials_dir / "caldav").write_text(SECRET)
    assert resolve_secret("caldav").reveal() == SECRET


# -- storing ------------------------------------------------------------------------------


def test_store_then_resolve(no_credentials_dir: None, memory_keyring: MemoryKeyring) -> None:
    store_secret("google-token", SECRET)
    assert memory_keyring.passwords == {(KEYRING_SERVICE, "google-token"): SECRET}
    assert resolve_secret("google-token") == Secret(SECRET)
    store_secret("google-token", Secret("rotated"))
    assert resolve_secret("google-token").reveal() == "rotated"


def test_store_refuses_an_empty_secret(memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(CredentialError, match="empty secret"):
        store_secret("caldav", "")
    with pytest.raises(CredentialError, match="empty secret"):
        store_secret("caldav", Secret(""))
    assert memory_keyring.passwords == {}


def test_store_without_a_keyring(no_keyring: NoKeyring) -> None:
    with pytest.raises(CredentialError) as caught:
        store_secret("caldav", SECRET)
    message = str(caught.value)
    assert "cannot store credential 'caldav'" in message
    assert "PYTHON_KEYRING_BACKEND" in message
    assert SECRET not in message


def test_store_error_never_repeats_the_secret() -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(ChattyKeyring())
    try:
        with pytest.raises(CredentialError) as caught:
            store_secret("caldav", SECRET)
    finally:
        keyring.set_keyring(previous)
    assert SECRET not in str(caught.value)
    assert "D-Bus said no to ***" in str(caught.value)
    assert caught.value.__cause__ is None
