"""Shared fixtures: real CalDAV servers on loopback, started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import keyring
import pytest

from tests.google_server import FakeGoogleCalendar
from tests.keyrings import MemoryKeyring
from tests.servers import DavServer, start_server


@pytest.fixture(scope="session")
def radicale(tmp_path_factory) -> Iterator[DavServer]:
    server = start_server("radicale", tmp_path_factory.mktemp("radicale"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def radicale_auth(tmp_path_factory) -> Iterator[DavServer]:
    """Radicale with htpasswd logins: user ``me``, password ``s3cret-pa55``."""
    server = start_server("radicale", tmp_path_factory.mktemp("radicale-auth"), htpasswd=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def xandikos(tmp_path_factory) -> Iterator[DavServer]:
    server = start_server("xandikos", tmp_path_factory.mktemp("xandikos"))
    yield server
    server.stop()


@pytest.fixture(params=["radicale", "xandikos"])
def dav_server(request) -> DavServer:
    """Each CalDAV test runs against both servers."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """An in-memory keyring installed for the test, the previous one restored after."""
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def google_api() -> Iterator[FakeGoogleCalendar]:
    """The local Calendar API server (a fresh one per test)."""
    server = FakeGoogleCalendar(user="me@example.com", time_zone="Europe/London")
    server.start()
    yield server
    server.stop()
