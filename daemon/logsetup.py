"""Logging to stderr, journald-aware (the way Radicale does it).

Under systemd (``JOURNAL_STREAM`` set and naming our stderr) lines carry no timestamp (the
journal adds one) and a ``<N>`` syslog priority prefix so ``journalctl -p`` can filter.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable

_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def under_journald(stream=None) -> bool:
    """Whether ``stream`` (stderr) is connected to the journal (sd_journal_stream)."""
    value = os.environ.get("JOURNAL_STREAM")
    if not value:
        return False
    stream = stream or sys.stderr
    try:
        device, inode = (int(x) for x in value.split(":", 1))
        stat = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return stat.st_dev == device and stat.st_ino == inode


#: The service's own journal (start, one line per cycle, reload, stop): shown at the default
#: level, so a healthy ``clientlove run`` is not silent; only ``clientlove run`` logs here.
SERVICE_LOGGER = "clientlove.service"

# OAuth at -vv: requests_oauthlib logs the token request's body (``code=...&code_verifier=``)
# and its form as a dict (``'code': '4/0A...'``), google_auth_oauthlib the redirect's request
# line (``GET /?state=...&code=...``): the code and the PKCE verifier are secrets like tokens.
_SECRETS = re.compile(
    r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:basic|bearer)\s+)[^\s'\",}]+"
    r"|((?:access_token|refresh_token|id_token|client_secret|password|code_verifier)"
    r"['\"]?\s*[:=]\s*['\"]?)[^\s'\",&}]+"
    r"|((?<![\w-])code=|['\"]code['\"]\s*:\s*['\"])[^\s'\",&}]+"
)

#: What would end or rewrite a line on a terminal or in the journal: C0 and C1 controls
#: (newline, ESC), line and paragraph separators, the bidirectional overrides, and what no
#: YAML stream may hold (lone surrogates, U+FFFE/FFFF).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                          "\ud800-\udfff\ufffe\uffff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` from others (a UID, a title, a server's message) safe to print on one line:
    control characters shown escaped (``\\n``, ``\\x1b``, ``\\u2028``), so none can forge a
    log line or send an ANSI sequence to the terminal."""
    return _UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100
                                else f"\\u{ord(char):04x}")


def redact(text: str) -> str:
    """``text`` with credentials masked (auth headers, tokens, OAuth codes and verifiers)."""
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + "***", text)


def _clean_arg(arg: object) -> object:
    if isinstance(arg, (int, float)):
        return arg
    text = arg if isinstance(arg, str) else str(arg)
    cleaned = printable(text)
    return arg if cleaned == text else cleaned


class RedactSecrets(logging.Filter):
    """Masks credentials a library might put in a message (auth headers, tokens), and
    escapes control characters in what a message quotes: a line is one record, whatever a
    UID or a title holds. (The line breaks of a message's own format string stay.)"""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = message
        if isinstance(record.msg, str):
            try:
                if not record.args:
                    cleaned = printable(record.msg)
                elif isinstance(record.args, dict):
                    cleaned = record.msg % {k: _clean_arg(v) for k, v in record.args.items()}
                else:
                    cleaned = record.msg % tuple(_clean_arg(a) for a in record.args)
            except (TypeError, ValueError, KeyError):
                cleaned = printable(message)
        cleaned = redact(cleaned)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno, 6)
        return "\n".join(f"<{prio}>{line}" for line in super().format(record).splitlines())


def setup_logging(verbosity: int = 0, stream=None) -> None:
    """Configure the root logger once: warnings by default, info with -v, debug with -vv.

    The service's journal lines (:data:`SERVICE_LOGGER`) are info at every level.
    """
    stream = stream or sys.stderr
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(stream)
    if under_journald(stream):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler.addFilter(RedactSecrets())
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger(SERVICE_LOGGER).setLevel(min(level, logging.INFO))
    for noisy in ("urllib3", "requests", "charset_normalizer", "niquests", "apscheduler",
                  "waitress"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    _apply_chatty_cap()


#: Loggers of provider libraries that dump request headers and whole calendars at debug
#: (never ours to print); each provider's spec names its own (``ProviderSpec.loggers``).
_CHATTY: set[str] = set()


def quiet_library_loggers(names: Iterable[str]) -> None:
    """Keep these libraries' loggers at INFO at most, now and after every later setup."""
    _CHATTY.update(names)
    _apply_chatty_cap()


def _apply_chatty_cap() -> None:
    level = logging.getLogger().level or logging.WARNING
    for chatty in _CHATTY:
        logging.getLogger(chatty).setLevel(max(level, logging.INFO))
