"""Where the config file is found, how it is read, and where its state lives.

The YAML is read the way people write it by hand (``9:30`` is a time, ``no`` is text,
repeated keys are reported), then validated by the ``Config`` composed for the providers
it names, with every problem reported at once (:mod:`daemon.config.errors`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from daemon.config.errors import ConfigError, Loc, field_help, render, sorted_problems, translate
from daemon.config.fields import TargetSettings
from daemon.config.schema import Config, composed, cross_problems, section_names, used_types
from daemon.state import recorded_target

CONFIG_ENV = "CLIENTLOVE_CONFIG"
SYSTEM_CONFIG = Path("/etc/clientlove/config.yaml")


class _Loader(yaml.SafeLoader):
    """YAML 1.2-style scalars and duplicate-key detection, for hand-written files.

    Plain PyYAML follows YAML 1.1, where ``9:30`` is the number 570, ``no`` is false and
    ``0123`` is octal; in a config file those surprise people. Repeated keys silently keep the
    last value in PyYAML; here they are reported.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, int, str]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:
                continue
            if first is not None:
                mark = key_node.start_mark
                self.duplicates.append(
                    (
                        mark.line,
                        mark.column,
                        f"line {mark.line + 1}, column {mark.column + 1}: duplicate key "
                        f"{key!r} (first at line {first.start_mark.line + 1})",
                    )
                )
            else:
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:  # type: ignore[override]
        text = str(self.construct_scalar(node))
        if text.lower().startswith(("0o", "+0o", "-0o")):
            return int(text.replace("o", "").replace("O", ""), 8)
        return int(text, 16) if "x" in text.lower() else int(text, 10)


_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _INT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Loader.add_constructor(_INT, _Loader.construct_yaml_int)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a text"
    return f"a {type(value).__name__}"


def find_config_path(explicit: str | Path | None) -> Path:
    """``--config``, else ``$CLIENTLOVE_CONFIG``, else the user's file, else /etc's.

    An explicit or ``$CLIENTLOVE_CONFIG`` path is returned as given (``load_config`` says
    when it is missing); when neither is given and no file is found, :class:`ConfigNotFound`
    names every place searched.
    """
    if explicit:
        return Path(explicit).expanduser()
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        return Path(from_env).expanduser()
    user = _user_config_path()
    if user.is_file():
        return user
    if SYSTEM_CONFIG.is_file():
        return SYSTEM_CONFIG
    raise ConfigNotFound(user)


def _user_config_path() -> Path:
    return _xdg_dir("XDG_CONFIG_HOME", Path.home() / ".config") / "clientlove" / "config.yaml"


class ConfigNotFound(ConfigError):
    """No config file was given and none is in the usual places; ``problems`` names each
    place searched, then where to start from."""

    def __init__(self, user: Path) -> None:
        xdg = os.environ.get("XDG_CONFIG_HOME", "")
        if not xdg:
            how = "$XDG_CONFIG_HOME not set"
        elif not Path(xdg).is_absolute():
            how = f"$XDG_CONFIG_HOME={xdg} ignored, not absolute"
        else:
            how = "$XDG_CONFIG_HOME/clientlove/config.yaml"
        problems = [
            "--config: not given",
            f"${CONFIG_ENV}: not set",
            f"{user} ({how}): {_absence(user)}",
            f"{SYSTEM_CONFIG}: {_absence(SYSTEM_CONFIG)}",
            f"start from config.example.yaml (beside clientlove's README): copy it to {user}, "
            "or give its path with --config",
        ]
        super().__init__(problems)

    def __str__(self) -> str:
        return "\n".join(["no config file found; looked at:", *(f"  {p}" for p in self.problems)])


def _absence(path: Path) -> str:
    """Why ``path`` is no config file (it is not a regular file)."""
    if path.exists():
        return "not a file"
    return "no such file"


def _xdg_dir(variable: str, default: Path) -> Path:
    """An XDG base directory; the spec says to ignore a relative value."""
    value = os.environ.get(variable, "")
    return Path(value) if value and Path(value).is_absolute() else default


def load_config(path: Path) -> Config:
    """Read, parse and validate the config file, reporting every problem at once."""
    path = Path(path).expanduser().absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _file_error(path, "no such file (start from config.example.yaml)") from None
    except IsADirectoryError:
        raise _file_error(path, "is a folder, not a config file") from None
    except PermissionError:
        raise _file_error(path, "cannot read it: permission denied") from None
    except UnicodeDecodeError:
        raise _file_error(path, "cannot read it: not UTF-8 text") from None
    except OSError as exc:
        raise _file_error(path, f"cannot read it: {exc.strerror or exc}") from None

    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "cannot parse"
        raise _file_error(path, f"{where}not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise _file_error(path, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()

    if data is None:
        raise _file_error(path, "the file is empty; it needs at least sources and target")
    if not isinstance(data, dict):
        raise _file_error(
            path, f"must hold a mapping of settings (key: value) at the top, not {_kind(data)}"
        )
    duplicates = [f"{path}: {text}" for _, _, text in sorted(loader.duplicates)]
    try:
        config = parse_config(data, path.parent, config_path=path)
    except ConfigError as exc:
        raise ConfigError(duplicates + exc.problems, path=path) from None
    if duplicates:
        raise ConfigError(duplicates, path=path)
    return config


def _file_error(path: Path, message: str) -> ConfigError:
    return ConfigError([f"{path}: {message}"], path=path)


def parse_config(
    data: Mapping[str, Any], base_dir: Path, *, config_path: Path | None = None
) -> Config:
    """Validate already-parsed YAML; relative paths in it are taken from ``base_dir``."""
    from providers.registry import PROVIDERS

    if not isinstance(data, Mapping):
        raise ConfigError(
            [f"the configuration must be a mapping of settings (key: value), not {_kind(data)}"]
        )
    data = dict(data)
    problems: list[tuple[Loc, str]] = []
    if "config_path" in data:
        del data["config_path"]
        problems.append((("config_path",), "unknown key"))
    source_types, target_type = used_types(data)
    model = composed(tuple(sorted(set(source_types))), target_type)
    context = {"base_dir": Path(base_dir).expanduser().absolute(), "cross_checked": True}
    try:
        config = model.model_validate(data, context=context)
    except ValidationError as exc:
        problems += [translate(error, PROVIDERS) for error in exc.errors(include_url=False)]
    problems += cross_problems(data.get("clients"), data.get("announcements"),
                               data.get("sources"))
    if problems:
        lines = sorted_problems(problems, section_names())
        hints: dict[str, str] = {}
        for loc, message in problems:
            text = field_help(model, loc)
            if text:
                hints.setdefault(f"{render(loc)}: {message}" if loc else message, text)
        raise ConfigError(lines, path=config_path, hints=hints)
    if config_path is not None:
        config = config.model_copy(update={"config_path": Path(config_path)})
    return config


#: The state file's name in earlier versions: one per user, whatever the config.
LEGACY_STATE_NAME = "state.sqlite"


def default_state_path(config: Config) -> Path:
    """Where the SQLite state lives: the config's ``state_path``, else one file per config
    in systemd's ``StateDirectory=`` or the XDG state folder.

    One per config because a state belongs to one target: the quick start's example and
    your own config must not share one. The plain ``state.sqlite`` stays for the system
    config (what ops expect under systemd), and for a config whose target that file
    records, or, when it records none (an older version wrote it), for your own config.
    """
    if config.state_path is not None:
        return config.state_path
    state_directory = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state_directory:
        folder = Path(state_directory)
    else:
        folder = _xdg_dir("XDG_STATE_HOME", Path.home() / ".local" / "state") / "clientlove"
    legacy = folder / LEGACY_STATE_NAME
    origin = config.config_path
    if origin is None or _same_file(origin, SYSTEM_CONFIG):
        return legacy
    if legacy.is_file():
        recorded = recorded_target(legacy)
        if recorded == target_identity(config.target) or (
                recorded is None and _same_file(origin, _user_config_path())):
            return legacy
    return folder / state_file_name(origin)


def state_file_name(config_path: Path) -> str:
    """``<stem>-<digest>.sqlite``: readable, and distinct for every config file."""
    resolved = _resolved(config_path)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", resolved.stem)[:40].strip("-.") or "config"
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:10]
    return f"{stem}-{digest}.sqlite"


def target_identity(target: TargetSettings) -> str:
    """The target as the state records it: its kind and place, never a credential (each
    provider's entry says it, :meth:`TargetSettings.identity`)."""
    return target.identity()


def _resolved(path: Path) -> Path:
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(Path(path).expanduser()))


def _same_file(a: Path, b: Path) -> bool:
    return _resolved(a) == _resolved(b)
