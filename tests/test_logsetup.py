"""Logging: journald prefixes, and no secret in a line whatever a library puts there."""

from __future__ import annotations

import io
import logging

import pytest

from daemon.logsetup import setup_logging


@pytest.fixture
def log_stream() -> io.StringIO:
    stream = io.StringIO()
    setup_logging(2, stream=stream)
    yield stream
    setup_logging(0)


@pytest.mark.parametrize(("line", "secrets"), [
    ("sending request headers={'Authorization': 'Basic bWU6czNjcmV0'}", ["bWU6czNjcmV0"]),
    ("headers: Authorization: Bearer ya29.a0token", ["ya29.a0token"]),
    ('token reply {"access_token": "ya29.tok", "refresh_token": "1//ref"}',
     ["ya29.tok", "1//ref"]),
    ("form client_secret=GOCSPX-abc&refresh_token=1//ref", ["GOCSPX-abc", "1//ref"]),
])
def test_secrets_are_masked(log_stream, line, secrets):
    logging.getLogger("clientlove.test").warning(line)
    out = log_stream.getvalue()
    assert "***" in out
    for secret in secrets:
        assert secret not in out


def test_library_debug_dumps_are_held_back(log_stream):
    from providers import registry

    registry.load("caldav")  # a provider's spec names its chatty library loggers
    logging.getLogger("caldav").debug("sending request body: SUMMARY:Client love: Acme")
    logging.getLogger("clientlove.cycle").debug("our own debug line")
    out = log_stream.getvalue()
    assert "Acme" not in out and "our own debug line" in out


def test_journald_lines_carry_priorities(monkeypatch, tmp_path):
    import os

    path = tmp_path / "stderr"
    with path.open("w") as stream:
        stat = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
        setup_logging(0, stream=stream)
        logging.getLogger("clientlove.x").error("boom")
        logging.getLogger("clientlove.x").warning("careful")
    setup_logging(0)
    assert path.read_text().splitlines() == ["<3>clientlove.x: boom", "<4>clientlove.x: careful"]
