"""Calendar providers behind the two small interfaces of :mod:`providers.base`.

``build_source``/``build_target`` turn a validated config entry into a provider; adding a
calendar system means one module and one branch here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from providers.base import AuthError, Source, Target


def _secret_getter(credential: str | None) -> Callable[[], str] | None:
    """A callable that reads the named secret when needed (never at config time)."""
    if not credential:
        return None

    def get() -> str:
        from daemon.credentials import CredentialError, resolve_secret

        try:
            return resolve_secret(credential).reveal()
        except CredentialError as exc:
            raise AuthError(str(exc)) from None

    return get


def _google_api(cfg: Any, name: str) -> Any:
    """The signed-in API client for a Google entry; refreshed tokens go back to the keyring
    (a systemd credential is read-only, so there the token is simply refreshed each run)."""
    import os
    from pathlib import Path

    from providers.google import GoogleApi

    def save(text: str) -> None:
        folder = os.environ.get("CREDENTIALS_DIRECTORY")
        if folder and (Path(folder) / cfg.credential).exists():
            return
        from daemon.credentials import store_secret

        store_secret(cfg.credential, text)

    return GoogleApi(name, credentials_json=_secret_getter(cfg.credential), save=save,
                     api_base=cfg.api_base, timeout=cfg.timeout)


def build_source(cfg: Any) -> Source:
    if cfg.type == "ics":
        from providers.ics import IcsSource

        return IcsSource(
            cfg.name,
            path=cfg.path,
            url=cfg.url,
            username=cfg.username,
            secret=_secret_getter(cfg.credential),
            timeout=cfg.timeout,
            deadline=cfg.deadline,
            verify_tls=cfg.verify_tls,
        )
    if cfg.type == "caldav":
        from providers.caldav import CalDavSource

        return CalDavSource(cfg.name, cfg.url, username=cfg.username,
                            secret=_secret_getter(cfg.credential), verify_tls=cfg.verify_tls,
                            timeout=cfg.timeout, deadline=cfg.deadline)
    if cfg.type == "google":
        from providers.google import GoogleSource

        return GoogleSource(cfg.name, cfg.calendar, _google_api(cfg, cfg.name))
    raise ValueError(f"unknown source type {cfg.type!r}")


def build_target(cfg: Any, *, stamp: Callable[[], datetime], tz: Any = None,
                 read_only: bool = False) -> Target:
    """The target a config names. ``read_only`` (a dry run): a calendar that does not exist
    yet is not made."""
    if cfg.type == "ics":
        from providers.ics import IcsTarget

        return IcsTarget(cfg.path, calendar_name=cfg.name, stamp=stamp)
    if cfg.type == "caldav":
        from providers.caldav import CalDavTarget

        return CalDavTarget(cfg.url, calendar=cfg.calendar, username=cfg.username,
                            secret=_secret_getter(cfg.credential), verify_tls=cfg.verify_tls,
                            timeout=cfg.timeout, stamp=stamp, name="caldav-target",
                            read_only=read_only)
    if cfg.type == "google":
        from providers.google import GoogleTarget

        return GoogleTarget(cfg.calendar, _google_api(cfg, "google-target"), tz=tz,
                            name="google-target", read_only=read_only)
    raise ValueError(f"unknown target type {cfg.type!r}")
