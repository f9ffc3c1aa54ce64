"""The building blocks of the config schema: field types, their validators, the model base.

Shared by the schema in :mod:`daemon.config.schema` and by each provider's own config
models (in its module, see :mod:`providers.registry`). A validator raises ``ValueError``
with the plain message a person reads after the field's path in the YAML.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import string
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
)

from daemon.credentials import is_plain_name
from daemon.durations import Span, parse_span

#: The year a birthday gets when the config gives only month and day (a leap year, so
#: 29 February is a valid birthday).
NO_YEAR = 1904


# -- small validators ---------------------------------------------------------------------

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
#: a host name of one label or more ("calendar" on an intranet, "feed.example.org")
HOST_LABELS = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
_EMAIL = re.compile(r"(?P<local>[a-z0-9!#$%&'*+/=?^_`{|}~.-]+)@(?P<host>.+)")


def listify(value: Any) -> Any:
    """Let a single string stand for a one-item list, as people tend to write it in YAML."""
    return [value] if isinstance(value, str) else value


def plain_text(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _email(value: str) -> str:
    text = value.strip()
    if text[:7].lower() == "mailto:":
        text = text[7:].strip()
    text = text.lower()
    match = _EMAIL.fullmatch(text)
    if (
        match is None
        or match["local"].startswith(".")
        or match["local"].endswith(".")
        or ".." in match["local"]
        or not _is_hostname(match["host"])
    ):
        raise ValueError("not an email address")
    return text


def _is_hostname(text: str) -> bool:
    return len(text) <= 253 and _HOSTNAME.fullmatch(text) is not None


def _domain(value: str) -> str:
    text = value.strip().lower().removeprefix("@").rstrip(".")
    if not _is_hostname(text):
        raise ValueError("not a domain name (like acme.example)")
    return text


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Relative paths mean "next to the config file", not the service's working folder."""
    value = value.expanduser()
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        value = Path(base) / value
    return value


def _path_text(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty")
    return value


def _template_checker(allowed: Sequence[str]) -> Callable[[str], str]:
    """A validator for a ``str.format`` template that may use only ``allowed`` fields."""
    names = ", ".join("{" + name + "}" for name in allowed)

    def check(value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        except ValueError as exc:
            raise ValueError(
                f"not a valid template ({exc}); write a literal brace as {{{{ or }}}}"
            ) from None
        for field in fields:
            if field not in allowed:
                raise ValueError(f"unknown field {{{field}}} in the template (allowed: {names})")
        try:
            value.format(**dict.fromkeys(allowed, "x"))
        except (ValueError, KeyError, IndexError, AttributeError) as exc:
            raise ValueError(f"not a valid template ({exc})") from None
        return value

    return check


def notes_value(value: Any) -> Any:
    """Free-form notes: a text, or a mapping of short texts (``coffee: flat white``)."""
    if value is None or isinstance(value, str):
        return (value.strip() or None) if isinstance(value, str) else None
    if not isinstance(value, Mapping):
        raise ValueError("must be text or a mapping like {coffee: flat white}")
    notes: dict[str, str] = {}
    for key, item in value.items():
        name = _scalar(key).strip()
        if not name:
            raise ValueError("a note needs a name")
        if item is None:
            continue
        if isinstance(item, list) and not any(isinstance(x, (list, dict)) for x in item):
            notes[name] = ", ".join(_scalar(x).strip() for x in item if x is not None)
        elif isinstance(item, (list, dict)):
            raise ValueError(f"the note {name!r} must be text or a list of text")
        else:
            notes[name] = _scalar(item).strip()
    return notes


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


_BIRTHDAY_FULL = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_BIRTHDAY_SHORT = re.compile(r"(?:--)?(\d{1,2})-(\d{1,2})")


def birthday_value(value: Any) -> Any:
    """``YYYY-MM-DD``, or ``MM-DD`` / ``--MM-DD`` when the year is unknown (kept as 1904)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        raise ValueError("must be a date like 1980-05-17 or 05-17, without a time")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        full = _BIRTHDAY_FULL.fullmatch(text)
        short = _BIRTHDAY_SHORT.fullmatch(text)
        try:
            if full:
                return dt.date(int(full[1]), int(full[2]), int(full[3]))
            if short:
                return dt.date(NO_YEAR, int(short[1]), int(short[2]))
        except ValueError:
            raise ValueError(f"not a valid date: {text!r}") from None
    raise ValueError("must be a date like 1980-05-17, or 05-17 when the year is unknown")


_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


def clock_time(value: Any) -> Any:
    """Accept ``9:30`` as well as ``09:30`` (pydantic alone wants two-digit hours)."""
    if isinstance(value, dt.time):
        return value
    if isinstance(value, str):
        match = _CLOCK.fullmatch(value.strip())
        if match:
            try:
                return dt.time(int(match[1]), int(match[2]), int(match[3] or 0))
            except ValueError:
                pass
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError("must be a time of day like 09:30 (put it in quotes)")
    raise ValueError("must be a time of day like 09:30")


_WEEKDAYS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        ("mon", "monday"),
        ("tue", "tues", "tuesday"),
        ("wed", "wednesday"),
        ("thu", "thur", "thurs", "thursday"),
        ("fri", "friday"),
        ("sat", "saturday"),
        ("sun", "sunday"),
    )
):
    for _name in _names:
        _WEEKDAYS[_name] = _number


MON_TO_FRI = (0, 1, 2, 3, 4)


def _weekday(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    if isinstance(value, str) and value.strip().lower() in _WEEKDAYS:
        return _WEEKDAYS[value.strip().lower()]
    raise ValueError("not a weekday (use mon, tue, wed, thu, fri, sat or sun)")


def _weekday_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part for part in re.split(r"[\s,]+", value) if part]
    return value


def system_timezone() -> str:
    """The machine's zone name, so a laptop user need not configure it."""
    try:
        import tzlocal

        name = tzlocal.get_localzone_name()
        if name:
            ZoneInfo(name)
            return name
    except Exception:
        pass
    return "UTC"


SpanValue = Annotated[
    Span,
    BeforeValidator(parse_span),
    PlainSerializer(str, return_type=str),  # ISO 8601, which parse_span reads back
]
Text = Annotated[str, AfterValidator(plain_text)]
Marker = Annotated[str, AfterValidator(_not_blank)]
Email = Annotated[str, AfterValidator(_email)]
Domain = Annotated[str, AfterValidator(_domain)]
ConfigPath = Annotated[Path, BeforeValidator(_path_text), AfterValidator(_resolve_path)]
Weekday = Annotated[int, BeforeValidator(_weekday)]
Workdays = Annotated[list[Weekday], BeforeValidator(_weekday_list), Field(min_length=1)]
TitleTemplate = Annotated[str, AfterValidator(_template_checker(["client"]))]
#: The fields of prepnote.EMAIL_FIELDS, in the order error messages name them.
EmailTemplate = Annotated[str, AfterValidator(_template_checker(
    ["client", "first_name", "me", "email", "project", "account_manager"]))]


# Lists of strings also accept a lone string.
Texts = Annotated[list[Text], BeforeValidator(listify)]
Markers = Annotated[list[Marker], BeforeValidator(listify)]
Emails = Annotated[list[Email], BeforeValidator(listify)]
Domains = Annotated[list[Domain], BeforeValidator(listify)]


class ConfigModel(BaseModel):
    """Shared settings: unknown keys are mistakes, and a loaded config never changes.

    Every field carries a ``description``: the one text ``check-config`` shows beside a
    problem and docs/config-reference.md is generated from.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderSettings(ConfigModel):
    """The base of every provider's config entry; ``type`` picks the provider."""

    #: what the config reference calls this kind of entry ("an ICS file or URL to read")
    role: ClassVar[str] = ""

    type: str = Field(description="The provider: ics, caldav or google.")


class SourceSettings(ProviderSettings):
    """A calendar to read the history from. Once validated it always has a ``name`` (given,
    or derived by :meth:`default_name`), which keys its state and names it in logs."""

    name: str | None = Field(
        default=None,
        description="How logs and status name this source (derived from the path, URL or "
        "calendar when left out); each source needs its own.")

    @classmethod
    def default_name(cls, data: Mapping[str, Any]) -> str | None:
        """The name an entry gets when the config gives none (from the raw YAML data)."""
        return None

    @model_validator(mode="before")
    @classmethod
    def _named(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("name") is None:
            derived = cls.default_name(data)
            if derived:
                data = {**data, "name": derived}
        return data

    @field_validator("name")
    @classmethod
    def _name_text(cls, value: str | None) -> str | None:
        return None if value is None else plain_text(value)


class TargetSettings(ProviderSettings):
    """The calendar our reminders are written to."""

    def identity(self) -> str:
        """The target as the state records it: its kind and place, never a credential."""
        return f"{self.type} target"


def http_url(value: str) -> str:
    """An http(s) address without a login in it (the password goes in a credential)."""
    text = value.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "webcal":
        raise ValueError("must be an http:// or https:// address (write webcal:// as https://)")
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// address")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "must not carry a user name or password; use username and credential instead"
        )
    return text


def credential_name(value: str) -> str:
    """The plain name of a secret, resolved by :mod:`daemon.credentials` when needed."""
    if not is_plain_name(value):
        raise ValueError("must be the plain name of a credential, like 'calendar-password'")
    return value


def derived_source_name(path: Any, url: Any) -> str | None:
    """A readable, stable name for a source the config did not name.

    For a URL: the host and a digest of the whole URL, so a token in the path or query
    never reaches a log line or the state file.
    """
    if isinstance(path, (str, Path)) and str(path).strip():
        p = Path(str(path).strip())
        return p.stem or str(p)
    if isinstance(url, str) and url.strip():
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        # never the path itself: private feed URLs carry their secret token there
        digest = hashlib.sha256(url.strip().encode()).hexdigest()[:8]
        return f"{host or 'url'}-{digest}"
    return None


HttpUrl = Annotated[str, AfterValidator(http_url)]
CredentialName = Annotated[str, AfterValidator(credential_name)]
OptionalText = Annotated[str, AfterValidator(plain_text)] | None
