"""Turning pydantic's validation errors into problems a person can act on.

Each problem reads ``<path in the YAML>: <plain message>`` (``clients[3].emails[0]: not an
email address``), never pydantic's internal wording or its schema names; the field's
``description`` (:func:`field_help`) is what ``check-config`` prints beneath it.
"""

from __future__ import annotations

import datetime as dt
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

#: sysexits.h EX_CONFIG: the exit status for "the configuration is wrong" (systemd knows it).
EX_CONFIG = 78

#: Where a problem is: the keys and list indexes from the top of the YAML down.
Loc = tuple[int | str, ...]


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists every reason, one per line.

    ``hints`` maps a problem line to the help text of the setting it is about (the field's
    ``description``), for ``check-config`` to print beneath it.
    """

    def __init__(self, problems: Iterable[str], path: Path | None = None,
                 hints: Mapping[str, str] | None = None) -> None:
        self.problems: list[str] = list(problems)
        self.path = path
        self.hints: dict[str, str] = dict(hints or {})
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" in {self.path}" if self.path else ""
        count = len(self.problems)
        head = f"invalid configuration{where} ({count} problem{'s' if count != 1 else ''}):"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


_SCHEMA_TAG = re.compile(r"[a-z][a-z0-9_-]*\[.*\]")


def _is_union_tag(prefix: Loc, part: str, provider_types: Iterable[str]) -> bool:
    """True for the variant names pydantic puts into locations of tagged unions."""
    if len(prefix) == 2 and prefix[0] == "sources" and isinstance(prefix[1], int):
        return part in provider_types
    if prefix == ("target",):
        return part in provider_types
    if len(prefix) == 3 and prefix[0] == "announcements" and prefix[2] == "clients":
        return part in ("names", "all")
    return False


def clean_loc(loc: Sequence[int | str], kind: str, provider_types: Iterable[str] = ()) -> Loc:
    """The location as the YAML spells it: without pydantic's schema and union tag names."""
    tags = frozenset(provider_types)
    out: list[int | str] = []
    for k, part in enumerate(loc):
        users_key = kind == "extra_forbidden" and k == len(loc) - 1
        if (
            isinstance(part, str)
            and not users_key
            and (_SCHEMA_TAG.fullmatch(part) or _is_union_tag(tuple(out), part, tags))
        ):
            continue
        out.append(part)
    if kind in ("clientlove_type_missing", "clientlove_type_unknown"):
        out.append("type")
    return tuple(out)


def render(loc: Loc) -> str:
    """``("clients", 3, "emails", 0)`` -> ``clients[3].emails[0]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


_PLAIN: dict[str, str] = {
    "missing": "required",
    "extra_forbidden": "unknown key",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "set_type": "must be a list",
    "dict_type": "must be a mapping (key: value)",
    "model_type": "must be a mapping (key: value)",
    "model_attributes_type": "must be a mapping (key: value)",
    "dataclass_type": "must be a mapping (key: value)",
    "date_type": "must be a date like 2024-05-17",
    "date_parsing": "must be a date like 2024-05-17",
    "date_from_datetime_parsing": "must be a date like 2024-05-17",
    "date_from_datetime_inexact": "must be a date like 2024-05-17, without a time",
    "time_type": "must be a time of day like 09:30",
    "time_parsing": "must be a time of day like 09:30",
    "path_type": "must be a file path",
    "string_too_short": "must not be empty",
    "frozen_instance": "cannot be changed",
}

_COMPARISONS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    given = error.get("input")
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "string_type":
        quoted = isinstance(given, (int, float, bool, dt.date))
        return "must be text" + (" (put it in quotes)" if quoted else "")
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"must have at least {n} items"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}"
    if kind in _COMPARISONS:
        key, words = _COMPARISONS[kind]
        limit = ctx.get(key)
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"must be {words} {limit}"
    if kind in _PLAIN:
        return _PLAIN[kind]
    message = error["msg"]
    return message[:1].lower() + message[1:]


_SECRET_KEY = re.compile(r"pass(word)?|passwd|token|secret|api[_-]?key", re.IGNORECASE)


def translate(error: ErrorDetails, provider_types: Iterable[str] = ()) -> tuple[Loc, str]:
    """One pydantic error as (location in the YAML, plain message)."""
    loc = clean_loc(error["loc"], error["type"], provider_types)
    message = _message(error)
    if error["type"] == "extra_forbidden" and loc and _SECRET_KEY.search(str(loc[-1])):
        message += (
            " (secrets never go in the config: name a credential, read from systemd"
            " LoadCredential= or the system keyring)"
        )
    return loc, message


def sorted_problems(problems: list[tuple[Loc, str]], sections: Sequence[str]) -> list[str]:
    """Order problems as the file reads: by section (in ``sections``' order), then by list
    item; keep each group's order and drop repeats."""
    order = {name: i for i, name in enumerate(sections)}

    def key(problem: tuple[Loc, str]) -> tuple[int, int]:
        loc = problem[0]
        section = order.get(loc[0], len(order)) if loc and isinstance(loc[0], str) else -1
        item = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else -1
        return section, item

    lines: list[str] = []
    for loc, message in sorted(problems, key=key):
        line = f"{render(loc)}: {message}" if loc else message
        if line not in lines:
            lines.append(line)
    return lines


def field_help(model: type[BaseModel], loc: Loc) -> str | None:
    """The ``description`` of the setting at ``loc`` under ``model``, or None.

    Walks list items and nested models the way the YAML nests them; a location inside a
    union follows the member whose fields have the next key.
    """
    models: list[type[BaseModel]] = [model]
    found: str | None = None
    for part in loc:
        if isinstance(part, int):
            continue
        nested: list[type[BaseModel]] = []
        found = None
        for current in models:
            info = current.model_fields.get(part)
            if info is None:
                continue
            found = found or info.description
            nested.extend(_models_in(info.annotation))
        if found is None and not nested:
            return None
        models = nested
    return found


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's type can hold (through lists, unions, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (list, tuple, typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []
