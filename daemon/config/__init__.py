"""The configuration file: its schema, where it is found, and errors a person can act on.

A consultant edits this file by hand, so every mistake is reported at once, each as
``<path in the YAML>: <plain message>`` (``clients[3].emails[0]: not an email address``),
instead of pydantic's internal wording. Secrets never live here: a source names a
credential, which :mod:`daemon.credentials` resolves.

- :mod:`daemon.config.fields`: field types, validators, the model bases;
- :mod:`daemon.config.schema`: the sections, each field with its help text;
- :mod:`daemon.config.errors`: pydantic's errors as plain problems;
- :mod:`daemon.config.loading`: finding and reading the file, where the state lives.

The providers' own entries (``IcsSourceConfig``...) live in their modules under
``providers/``; they are importable from here too, loaded only when asked for.
"""

from __future__ import annotations

from typing import Any

from daemon.config.errors import EX_CONFIG, ConfigError, field_help
from daemon.config.fields import NO_YEAR, ProviderSettings, SourceSettings, TargetSettings
from daemon.config.loading import (
    CONFIG_ENV,
    LEGACY_STATE_NAME,
    SYSTEM_CONFIG,
    ConfigNotFound,
    default_state_path,
    find_config_path,
    load_config,
    parse_config,
    state_file_name,
    target_identity,
)
from daemon.config.schema import (
    LOOPBACK_NAMES,
    AnnouncementConfig,
    ClientConfig,
    Config,
    CounterConfig,
    FeedConfig,
    PrepNoteConfig,
    ReminderConfig,
    ServiceConfig,
    composed,
    is_loopback,
)
from daemon.identity import slug

__all__ = [
    "CONFIG_ENV",
    "EX_CONFIG",
    "LEGACY_STATE_NAME",
    "LOOPBACK_NAMES",
    "NO_YEAR",
    "SYSTEM_CONFIG",
    "AnnouncementConfig",
    "ClientConfig",
    "Config",
    "ConfigError",
    "ConfigNotFound",
    "CounterConfig",
    "FeedConfig",
    "PrepNoteConfig",
    "ProviderSettings",
    "ReminderConfig",
    "ServiceConfig",
    "SourceSettings",
    "TargetSettings",
    "composed",
    "default_state_path",
    "field_help",
    "find_config_path",
    "is_loopback",
    "load_config",
    "parse_config",
    "slug",
    "state_file_name",
    "target_identity",
]

#: provider entry models importable from here, by the module that defines them
_PROVIDER_MODELS = {
    "IcsSourceConfig": "providers.ics",
    "IcsTargetConfig": "providers.ics",
    "CalDavSourceConfig": "providers.caldav",
    "CalDavTargetConfig": "providers.caldav",
    "GoogleSourceConfig": "providers.google",
    "GoogleTargetConfig": "providers.google",
}


def __getattr__(name: str) -> Any:
    module = _PROVIDER_MODELS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
