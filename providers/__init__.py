"""Calendar providers behind the small interfaces of :mod:`providers.base`.

Each provider is one module that declares a ``SPEC`` (:mod:`providers.registry`): its config
entries, its builders, its limits, its ``auth`` command. ``build_source``/``build_target``
turn a validated config entry into a provider by the entry's ``type``, importing only that
provider's module.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo

from providers.base import AuthError, Source, Target
from providers.registry import TargetContext, load


def secret_getter(credential: str | None, provider: str = "") -> Callable[[], str] | None:
    """A callable that reads the named secret when needed (never at config time)."""
    if not credential:
        return None

    def get() -> str:
        from daemon.credentials import CredentialError, resolve_secret

        try:
            return resolve_secret(credential).reveal()
        except CredentialError as exc:
            raise AuthError(str(exc), provider=provider) from None

    return get


def build_source(cfg: object) -> Source:
    """The source a validated ``sources[]`` entry names."""
    spec = load(str(getattr(cfg, "type", "")))
    if spec.build_source is None:
        raise ValueError(f"a {spec.type} calendar cannot be a source")
    return spec.build_source(cfg)


def build_target(cfg: object, *, stamp: Callable[[], datetime], tz: tzinfo | None = None,
                 read_only: bool = False) -> Target:
    """The target a validated ``target`` entry names. ``read_only`` (a dry run): a calendar
    that does not exist yet is not made."""
    spec = load(str(getattr(cfg, "type", "")))
    if spec.build_target is None:
        raise ValueError(f"a {spec.type} calendar cannot be the target")
    return spec.build_target(cfg, TargetContext(stamp=stamp, tz=tz, read_only=read_only))
