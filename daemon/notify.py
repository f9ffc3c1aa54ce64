"""The systemd notify protocol, without a dependency: one datagram to ``$NOTIFY_SOCKET``.

``READY=1`` once config and state are loaded, ``STATUS=`` a one-line summary, ``WATCHDOG=1``
while cycles are not stuck, ``STOPPING=1`` on the way out. Outside systemd (no socket) every
call is a no-op, so the same code runs from a terminal.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("clientlove.notify")


class Notifier:
    """Sends state changes to the service manager, if there is one listening."""

    def __init__(self, address: str | None) -> None:
        if address and address.startswith("@"):
            address = "\0" + address[1:]  # the abstract namespace
        self.address = address or None

    @classmethod
    def from_env(cls) -> Notifier:
        return cls(os.environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send one datagram; a manager that went away is logged once, never fatal."""
        if self.address is None:
            return False
        payload = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall(payload)
        except OSError as exc:
            log.warning("cannot notify the service manager: %s", exc.strerror or exc)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={' '.join(text.split())}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def reloading(self) -> bool:
        return self.send("RELOADING=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")


def watchdog_interval() -> float | None:
    """Seconds between pings: half of ``$WATCHDOG_USEC``, when it is meant for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None
