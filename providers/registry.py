"""The providers clientlove knows, by their config ``type``, loaded only when a config uses one.

In the spirit of Radicale's ``load_plugin`` and vdirsyncer's storage index: the table below
is the one place that names the provider modules. Each module declares a :class:`ProviderSpec`
as ``SPEC``: its config models (beside its code, not in the config package), its builders,
its limits and capabilities, and its optional ``auth`` command. The config schema, the
``auth`` command group and the builders in :mod:`providers` are composed from it.

Adding a provider is one module (with ``SPEC``), its tests, and one line in :data:`PROVIDERS`.
Nothing is imported until a config names the type: a config of ICS files never loads caldav
or googleapiclient, nor the pydantic models of those providers.
"""

from __future__ import annotations

import builtins
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click

    from daemon.config.fields import ProviderSettings
    from providers.base import Source, Target, TargetLimits

#: ``type`` name -> the module that holds its ``SPEC``. One line per provider.
PROVIDERS: dict[str, str] = {
    "ics": "providers.ics",
    "caldav": "providers.caldav",
    "google": "providers.google",
}


@dataclass(frozen=True, slots=True)
class TargetContext:
    """What building a target needs besides its config entry.

    ``stamp`` gives DTSTAMP/LAST-MODIFIED; ``tz`` is the config's zone (Google writes
    events in it); ``read_only`` (a dry run) means a calendar that does not exist is not made.
    """

    stamp: Callable[[], datetime]
    tz: tzinfo | None = None
    read_only: bool = False


@dataclass(frozen=True)
class ProviderSpec:
    """What one provider module declares about itself.

    ``source_config``/``target_config`` are the pydantic models of its config entries
    (None: it cannot play that role); ``build_source``/``build_target`` turn a validated
    entry into a provider (never reading a secret yet: that happens on first use).
    ``capabilities`` are flags the engine and the contract tests read (``incremental``:
    ``changes`` honours its cursor; ``server_expansion``: the server expands recurrences;
    ``batches``: ``apply`` sends more than one write per request; ``written_at_flush``:
    writes reach the calendar only at ``flush``). ``limits`` is what its target can hold.
    ``auth`` makes its ``clientlove auth <type>`` command (click is imported only then).
    ``loggers`` are the libraries' loggers that print whole requests at debug level: they
    are kept at INFO at most.
    """

    type: str
    summary: str
    source_config: builtins.type[ProviderSettings] | None = None
    target_config: builtins.type[ProviderSettings] | None = None
    build_source: Callable[[Any], Source] | None = None
    build_target: Callable[[Any, TargetContext], Target] | None = None
    capabilities: frozenset[str] = field(default_factory=frozenset)
    limits: TargetLimits | None = None
    auth: Callable[[], click.Command] | None = None
    loggers: tuple[str, ...] = ()


class UnknownProvider(LookupError):
    """No provider has this ``type``; the message lists the known ones."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown provider type {name!r} (known: {', '.join(PROVIDERS)})")
        self.name = name


_loaded: dict[str, ProviderSpec] = {}


def provider_types() -> list[str]:
    """Every known ``type`` name, in the table's order, without importing any provider."""
    return list(PROVIDERS)


def load(name: str) -> ProviderSpec:
    """The spec of provider ``name``, importing its module on first use."""
    spec = _loaded.get(name)
    if spec is not None:
        return spec
    module_name = PROVIDERS.get(name)
    if module_name is None:
        raise UnknownProvider(name)
    spec = importlib.import_module(module_name).SPEC
    if spec.type != name:
        raise AssertionError(f"{module_name}.SPEC is for {spec.type!r}, registered as {name!r}")
    from daemon.logsetup import quiet_library_loggers

    quiet_library_loggers(spec.loggers)
    _loaded[name] = spec
    return spec


def load_all() -> list[ProviderSpec]:
    """Every provider's spec (for the config reference and ``auth --help``)."""
    return [load(name) for name in PROVIDERS]


def loaded_names() -> list[str]:
    """The providers imported so far (what ``python -X importtime`` would show)."""
    return list(_loaded)
