"""URLs as they may be shown: scheme and host only.

A private feed carries its secret in the path (``/private/3f9c.../basic.ics``) or the query
(``?token=...``), and a CalDAV path names the user. Every message that shows a URL (errors,
log lines, ``/healthz``, the CLI) shows it through :func:`redact_url`; text that may hold a
URL from elsewhere (a library's message) goes through :func:`redact_urls`. Source names
derived from URLs are made the same way (``config._derived_source_name``).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

#: What stands for the path, query and fragment that were left out.
HIDDEN = "…"

# a URL in running text: scheme, "://", then anything up to white space or a quote
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")


def redact_url(url: object) -> str:
    """``https://host:port/…``: the scheme and host of ``url``, never its path, query or
    login. A URL with nothing after the host stays as it is."""
    text = str(url)
    try:
        parts = urlsplit(text.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # a port that is no number, an unbalanced bracket
        return f"{text.partition('://')[0]}://{HIDDEN}" if "://" in text else HIDDEN
    if not parts.scheme:
        return HIDDEN
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if port is not None:
        host = f"{host}:{port}"
    rest = parts.path not in ("", "/") or parts.query or parts.fragment
    return f"{parts.scheme}://{host}/{HIDDEN if rest else ''}"


def redact_urls(text: str) -> str:
    """``text`` with every URL in it cut down to its scheme and host."""
    return _URL.sub(_redacted_match, text)


def _redacted_match(match: re.Match[str]) -> str:
    """One URL found in text, redacted; the punctuation that ends a sentence around it
    (``(see https://x/a).``) stays outside."""
    found = match.group(0)
    url = found.rstrip(".,;:!?)]}")
    return redact_url(url) + found[len(url):]
