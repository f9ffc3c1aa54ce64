"""Logging to stderr, journald-aware (the way Radicale does it).

Under systemd (``JOURNAL_STREAM`` set and naming our stderr) lines carry no timestamp (the
journal adds one) and a ``<N>`` syslog priority prefix so ``journalctl -p`` can filter.
"""

from __future__ import annotations

import logging
import os
import re
import sys

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

_SECRETS = re.compile(
    r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:basic|bearer)\s+)[^\s'\",}]+"
    r"|((?:access_token|refresh_token|client_secret|password)['\"]?\s*[:=]\s*['\"]?)"
    r"[^\s'\",&}]+"
)


class RedactSecrets(logging.Filter):
    """Masks credentials a library might put in a message (auth headers, tokens)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _SECRETS.sub(lambda m: (m.group(1) or m.group(2)) + "***", message)
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
    # the libraries dump request headers and whole calendars at debug: never ours to print
    for chatty in ("caldav", "googleapiclient", "google", "google_auth_oauthlib"):
        logging.getLogger(chatty).setLevel(max(level, logging.INFO))
