"""The configuration file: its schema, where it is found, and errors a person can act on.

A consultant edits this file by hand, so every mistake is reported at once, each as
``<path in the YAML>: <plain message>`` (``clients[3].emails[0]: not an email address``),
instead of pydantic's internal wording. Secrets never live here: a source names a
credential, which :mod:`daemon.credentials` resolves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from daemon.credentials import is_plain_name
from daemon.durations import Span, parse_span
from daemon.identity import slug
from daemon.state import recorded_target

__all__ = [
    "EX_CONFIG",
    "NO_YEAR",
    "AnnouncementConfig",
    "ClientConfig",
    "Config",
    "ConfigError",
    "ConfigNotFound",
    "CounterConfig",
    "IcsSourceConfig",
    "IcsTargetConfig",
    "ReminderConfig",
    "SourceConfig",
    "TargetConfig",
    "default_state_path",
    "find_config_path",
    "load_config",
    "parse_config",
    "slug",
    "target_identity",
]

#: sysexits.h EX_CONFIG: the exit status for "the configuration is wrong" (systemd knows it).
EX_CONFIG = 78

#: The year a birthday gets when the config gives only month and day (a leap year, so
#: 29 February fits).
NO_YEAR = 1904

CONFIG_ENV = "CLIENTLOVE_CONFIG"
SYSTEM_CONFIG = Path("/etc/clientlove/config.yaml")


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists every reason, one per line."""

    def __init__(self, problems: Iterable[str], path: Path | None = None) -> None:
        self.problems: list[str] = list(problems)
        self.path = path
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" in {self.path}" if self.path else ""
        count = len(self.problems)
        head = f"invalid configuration{where} ({count} problem{'s' if count != 1 else ''}):"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


# -- small validators ---------------------------------------------------------------------

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
#: a host name of one label or more ("calendar" on an intranet, "feed.example.org")
_HOST_LABELS = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
_EMAIL = re.compile(r"(?P<local>[a-z0-9!#$%&'*+/=?^_`{|}~.-]+)@(?P<host>.+)")


def _listify(value: Any) -> Any:
    """Let a single string stand for a one-item list, as people tend to write it in YAML."""
    return [value] if isinstance(value, str) else value


def _text(value: str) -> str:
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


def _notes(value: Any) -> Any:
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


def _birthday(value: Any) -> Any:
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


def _clock(value: Any) -> Any:
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


_MON_TO_FRI = (0, 1, 2, 3, 4)


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


def _system_timezone() -> str:
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
Text = Annotated[str, AfterValidator(_text)]
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
Texts = Annotated[list[Text], BeforeValidator(_listify)]
Markers = Annotated[list[Marker], BeforeValidator(_listify)]
Emails = Annotated[list[Email], BeforeValidator(_listify)]
Domains = Annotated[list[Domain], BeforeValidator(_listify)]


class _Model(BaseModel):
    """Shared settings: unknown keys are mistakes, and a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# -- sources and targets --------------------------------------------------------------------


class IcsSourceConfig(_Model):
    """An ICS calendar to read: a local file or an http(s) address (with optional login)."""

    type: Literal["ics"] = "ics"
    name: str | None = None
    path: ConfigPath | None = None
    url: str | None = None
    username: str | None = None
    credential: str | None = None
    timeout: float = Field(default=30.0, gt=0)
    #: seconds a read may take in all; ``timeout`` bounds each wait for bytes
    deadline: float = Field(default=300.0, gt=0)
    verify_tls: bool = True

    @field_validator("name", "username")
    @classmethod
    def _optional_text(cls, value: str | None) -> str | None:
        return None if value is None else _text(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
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

    @field_validator("credential")
    @classmethod
    def _credential(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not is_plain_name(value):
            raise ValueError("must be the plain name of a credential, like 'calendar-password'")
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("name") is None:
            derived = _derived_source_name(data.get("path"), data.get("url"))
            if derived:
                data = {**data, "name": derived}
        return data

    @model_validator(mode="after")
    def _one_location(self) -> IcsSourceConfig:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of path or url")
        if self.path is not None and (self.username or self.credential):
            raise ValueError("username and credential only apply to a url")
        return self


class IcsTargetConfig(_Model):
    """The ICS file our reminders are written to (and served from)."""

    type: Literal["ics"] = "ics"
    path: ConfigPath
    name: Text = "Client love"


class _DavAccount(_Model):
    """Where a CalDAV server is and how to log in (the password stays in a credential)."""

    url: str
    username: str | None = None
    credential: str | None = None
    timeout: float = Field(default=30.0, gt=0)
    #: seconds a read may take in all; ``timeout`` bounds each wait for bytes
    deadline: float = Field(default=300.0, gt=0)
    verify_tls: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return IcsSourceConfig._url(value)  # type: ignore[return-value]

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        return None if value is None else _text(value)

    @field_validator("credential")
    @classmethod
    def _credential(cls, value: str | None) -> str | None:
        return IcsSourceConfig._credential(value)

    @model_validator(mode="after")
    def _login_pair(self) -> _DavAccount:
        if self.credential and not self.username:
            raise ValueError("a credential needs a username")
        return self


class CalDavSourceConfig(_DavAccount):
    """A CalDAV calendar collection to read the history from."""

    type: Literal["caldav"] = "caldav"
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("name") is None:
            derived = _derived_source_name(None, data.get("url"))
            if derived:
                data = {**data, "name": derived}
        return data


class CalDavTargetConfig(_DavAccount):
    """The CalDAV calendar our reminders go to: a collection URL, or a server URL and the
    display name of a calendar (made when missing)."""

    type: Literal["caldav"] = "caldav"
    calendar: str | None = None


class _GoogleAccount(_Model):
    """A Google account: the credential holds the authorized-user JSON, never the config."""

    credential: str
    api_base: str = "https://www.googleapis.com"
    timeout: float = Field(default=30.0, gt=0)

    @field_validator("credential")
    @classmethod
    def _credential(cls, value: str) -> str:
        checked = IcsSourceConfig._credential(value)
        assert checked is not None
        return checked

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, value: str) -> str:
        return str(IcsSourceConfig._url(value)).rstrip("/")


class GoogleSourceConfig(_GoogleAccount):
    """A Google calendar to read the history from (``primary`` or a calendar id)."""

    type: Literal["google"] = "google"
    name: str | None = None
    calendar: Text = "primary"

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("name") is None:
            data = {**data, "name": f"google-{data.get('calendar') or 'primary'}"}
        return data


class GoogleTargetConfig(_GoogleAccount):
    """The Google calendar our reminders go to: an id, ``primary``, or a name (made when
    missing)."""

    type: Literal["google"] = "google"
    calendar: Text = "Client love"


def _derived_source_name(path: Any, url: Any) -> str | None:
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


def _tagged(kind: str, *models: type[_Model]) -> Any:
    """A union of ``models`` chosen by their ``type`` key, with plain errors for a bad type.

    The check runs before pydantic picks a model, so an unknown type gives one error
    (``unknown source type 'exchange' (known: ics)``) instead of one per field.
    """
    tags = [model.model_fields["type"].annotation.__args__[0] for model in models]
    known = ", ".join(tags)

    def check(value: Any) -> Any:
        if isinstance(value, models):
            return value
        if not isinstance(value, Mapping):
            raise PydanticCustomError(
                "clientlove_not_mapping",
                "must be a mapping with a type (known: {known})",
                {"known": known},
            )
        if "type" not in value:
            raise PydanticCustomError(
                "clientlove_type_missing", "required (known: {known})", {"known": known}
            )
        tag = value["type"]
        if not isinstance(tag, str) or tag not in tags:
            raise PydanticCustomError(
                "clientlove_type_unknown",
                "unknown {kind} type {tag} (known: {known})",
                {"kind": kind, "tag": repr(tag), "known": known},
            )
        return value

    inner: Any = (
        models[0]
        if len(models) == 1
        else Annotated[
            Union[models],  # noqa: UP007 - a runtime tuple of models
            Field(discriminator="type"),
        ]
    )
    return Annotated[inner, BeforeValidator(check)]


SOURCE_MODELS: tuple[type[_Model], ...] = (IcsSourceConfig, CalDavSourceConfig,
                                           GoogleSourceConfig)
TARGET_MODELS: tuple[type[_Model], ...] = (IcsTargetConfig, CalDavTargetConfig,
                                           GoogleTargetConfig)
SourceConfig = _tagged("source", *SOURCE_MODELS)
TargetConfig = _tagged("target", *TARGET_MODELS)
_SOURCE_TAGS = frozenset(m.model_fields["type"].annotation.__args__[0] for m in SOURCE_MODELS)
_TARGET_TAGS = frozenset(m.model_fields["type"].annotation.__args__[0] for m in TARGET_MODELS)


# -- the counter and the reminder -------------------------------------------------------------


def _whole_days(value: Span) -> Span:
    if value.months or value.seconds:
        raise ValueError("must be whole days or weeks (like 7d or P1W)")
    return value


def _shortest_days(span: Span) -> int:
    """The fewest days ``span`` can last, over every month it might start in."""
    return min((span.after(dt.date(2001, m, 1)) - dt.date(2001, m, 1)).days for m in range(1, 13))


class CounterConfig(_Model):
    """The doubling contact counter (docs/design.md section 3)."""

    base: SpanValue = Span(days=7)
    # Validated even when left out, since they are checked against base.
    max: SpanValue = Field(default=Span(months=2), validate_default=True)
    early: SpanValue = Field(default=Span(days=2), validate_default=True)
    reset_markers: Markers = ["#need", "#reset"]
    skip_markers: Markers = ["#skip"]

    @field_validator("base")
    @classmethod
    def _base(cls, value: Span) -> Span:
        return _whole_days(value)

    @field_validator("max")
    @classmethod
    def _max(cls, value: Span, info: ValidationInfo) -> Span:
        if value.seconds:
            raise ValueError("must be whole days, weeks or months (like 8w or 2mo)")
        base = info.data.get("base")
        if base is not None and _shortest_days(value) <= base.days:
            raise ValueError(f"must be longer than counter.base ({base})")
        return value

    @field_validator("early")
    @classmethod
    def _early(cls, value: Span, info: ValidationInfo) -> Span:
        _whole_days(value)
        base = info.data.get("base")
        if base is not None and value.days >= base.days:
            raise ValueError(f"must be shorter than counter.base ({base})")
        return value


class ReminderConfig(_Model):
    """When and how the reminder event sits in the calendar (docs/design.md section 4)."""

    time: Annotated[dt.time, BeforeValidator(_clock)] = dt.time(9, 30)
    #: a reminder due today whose slot has passed is placed at the next quarter hour up to
    #: this time of day, else at the slot of the next work day
    latest: Annotated[dt.time, BeforeValidator(_clock)] | None = None
    duration: SpanValue = Span(seconds=15 * 60)
    alarm_before: SpanValue = Span(days=1)
    workdays: Workdays = list(_MON_TO_FRI)
    title: TitleTemplate = "Client love: {client}"

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: Span) -> Span:
        if value.months or value.days:
            raise ValueError("must be shorter than a day (like 15min or 1h)")
        return value

    @field_validator("alarm_before")
    @classmethod
    def _alarm(cls, value: Span) -> Span:
        if value.months or not dt.timedelta(days=1) <= value.to_timedelta() <= dt.timedelta(2):
            raise ValueError("must be between 1 and 2 days")
        return value

    @field_validator("workdays")
    @classmethod
    def _sorted(cls, value: list[int]) -> list[int]:
        return sorted(set(value))

    @model_validator(mode="after")
    def _latest_after_slot(self) -> ReminderConfig:
        if self.latest is not None and self.latest < self.time:
            raise ValueError(f"latest ({self.latest:%H:%M}) must not be before time "
                             f"({self.time:%H:%M})")
        return self

    @property
    def end_of_day(self) -> dt.time:
        """The latest start of a reminder placed later on its own day (default 17:00, or
        the slot itself when that is later)."""
        return self.latest if self.latest is not None else max(dt.time(17, 0), self.time)


# -- clients and announcements ----------------------------------------------------------------


def _client_name(value: str) -> str:
    value = _text(value)
    if not slug(value):
        raise ValueError("needs at least one letter or digit")
    return value


class ClientConfig(_Model):
    """A client: how to recognise them in the calendar, and what to remember about them."""

    name: Annotated[str, AfterValidator(_client_name)]
    emails: Emails = []
    domains: Domains = []
    keywords: Texts = []
    notes: Annotated[dict[str, str] | str | None, BeforeValidator(_notes)] = None
    birthday: Annotated[dt.date | None, BeforeValidator(_birthday)] = None
    phone: Annotated[str, AfterValidator(_text)] | None = None
    #: the person the email greets (their first name), instead of a guess from the address
    contact: Annotated[str, AfterValidator(_text)] | None = None
    #: copied on the "as per our conversation" email
    account_manager: Email | None = None
    #: what the work is called, for the email's subject
    project: Annotated[str, AfterValidator(_text)] | None = None

    @property
    def slug(self) -> str:
        """The key this client's reminders and state are stored under."""
        return slug(self.name)

    @property
    def birthday_has_year(self) -> bool:
        """False when the config gave only month and day (stored in the year NO_YEAR)."""
        return self.birthday is not None and self.birthday.year != NO_YEAR

    def next_birthday(self, on_or_after: dt.date) -> dt.date | None:
        """The first birthday on or after the date; 29 February falls on the 28th otherwise."""
        if self.birthday is None:
            return None
        for year in (on_or_after.year, on_or_after.year + 1):
            day = self.birthday.day
            if self.birthday.month == 2 and day == 29 and not _is_leap(year):
                day = 28
            candidate = dt.date(year, self.birthday.month, day)
            if candidate >= on_or_after:
                return candidate
        raise AssertionError("unreachable: a birthday comes round within a year")


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _announced_clients(value: Any) -> Any:
    if isinstance(value, str):
        return "all" if value.strip().lower() == "all" else [value]
    return value


AnnouncedClients = Annotated[
    Annotated[
        Union[  # noqa: UP007 - tagged members need the Union spelling
            Annotated[list[Text], Field(min_length=1), Tag("names")],
            Annotated[Literal["all"], Tag("all")],
        ],
        Discriminator(lambda v: "all" if v == "all" else "names"),
    ],
    BeforeValidator(_announced_clients),
]


class AnnouncementConfig(_Model):
    """News worth a call: named clients are due no later than ``date`` (docs/design.md 3)."""

    date: dt.date
    text: Text
    clients: AnnouncedClients

    def names(self, all_clients: Sequence[ClientConfig | str]) -> list[str]:
        """The client names this announcement concerns, spelled as the clients list has them."""
        known = [c if isinstance(c, str) else c.name for c in all_clients]
        if self.clients == "all":
            return known
        by_key = {name.casefold(): name for name in known}
        names: list[str] = []
        for name in self.clients:
            canonical = by_key.get(name.casefold(), name)
            if canonical not in names:
                names.append(canonical)
        return names


# -- the whole file ------------------------------------------------------------------------


#: The longest service.cycle_timeout: a stuck cycle must be caught within a couple of hours.
MAX_CYCLE_TIMEOUT_S = 3600
#: Host names that always mean this machine (RFC 6761 for localhost).
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_wildcard(host: str) -> bool:
    return host.strip("[]") in ("", "0.0.0.0", "::", "*")


def is_loopback(host: str) -> bool:
    """Whether a listen host only reaches this machine (localhost, 127/8, ::1)."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _span_or_zero(value: Any) -> Span:
    """A duration where none at all is a fair choice too (no jitter for a lone daemon)."""
    if isinstance(value, (int, float)) and value == 0:
        return Span()
    if isinstance(value, str) and value.strip().lower() in ("0", "0s", "pt0s", "0min"):
        return Span()
    return parse_span(value)


class ServiceConfig(_Model):
    """How ``clientlove run`` paces its cycles."""

    interval: SpanValue = Span(seconds=15 * 60)
    #: each wait is the interval plus up to this much, so a team's daemons do not align
    jitter: Annotated[Span, BeforeValidator(_span_or_zero),
                      PlainSerializer(str, return_type=str)] = Span(seconds=60)
    #: /healthz answers 503 once the last good cycle is older than this
    health_max_age: SpanValue = Span(seconds=3 * 3600)
    #: a cycle still running after this is abandoned (no more writes from it) and reported;
    #: one still running after twice this is stuck: the watchdog stops and systemd restarts
    cycle_timeout: SpanValue = Span(seconds=5 * 60)

    @field_validator("interval", "jitter", "health_max_age", "cycle_timeout")
    @classmethod
    def _no_months(cls, value: Span) -> Span:
        if value.months:
            raise ValueError("must be given in seconds, minutes, hours or days")
        return value

    @model_validator(mode="after")
    def _sane(self) -> ServiceConfig:
        if self.interval.to_timedelta().total_seconds() < 10:
            raise ValueError("interval must be at least 10 seconds")
        timeout = self.cycle_timeout.to_timedelta().total_seconds()
        if not 1 <= timeout <= MAX_CYCLE_TIMEOUT_S:
            raise ValueError("cycle_timeout must be between 1 second and 1 hour (a stuck "
                             "cycle is only caught after twice this)")
        return self


class PrepNoteConfig(_Model):
    """What the prep note quotes of the last meeting (its description, "the last
    conversation"): ``full``, ``redacted`` (the default: without the lines carrying links,
    passcodes, PINs, meeting ids or phone numbers) or ``off``. A private or confidential
    event's text is never quoted."""

    last_conversation: Literal["full", "redacted", "off"] = "redacted"

    @field_validator("last_conversation", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class FeedConfig(_Model):
    """The subscribable ICS feed, /healthz and /metrics."""

    enabled: bool = True
    listen: str = "127.0.0.1:8787"
    #: the secret part of the feed URL, from $CREDENTIALS_DIRECTORY or the keyring
    token_credential: str = "feed-token"
    #: the address people subscribe to, when a proxy fronts the listener
    public_url: str | None = None
    #: more Host names the listener answers to (loopback names, the listen host and the
    #: public_url's host always are); any other Host gets 421, against DNS rebinding
    allowed_hosts: list[str] = []

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.strip().rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) < 65536 or not host:
            raise ValueError("must be HOST:PORT, like 127.0.0.1:8787")
        return value.strip()

    @field_validator("token_credential")
    @classmethod
    def _credential(cls, value: str) -> str:
        checked = IcsSourceConfig._credential(value)
        assert checked is not None
        return checked

    @field_validator("public_url")
    @classmethod
    def _public(cls, value: str | None) -> str | None:
        return None if value is None else str(IcsSourceConfig._url(value)).rstrip("/")

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: Any) -> Any:
        return _listify(value)

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        names = []
        for item in value:
            name = item.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")
            if not (_is_ip(name) or _HOST_LABELS.fullmatch(name)):
                raise ValueError(f"{item!r} is not a host name or IP address (no port, no "
                                 "scheme: like feed.example.org)")
            names.append(name)
        return names

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def served_hosts(self) -> frozenset[str]:
        """The Host names the listener answers to: loopback, the listen host (unless a
        wildcard), the public URL's host and ``allowed_hosts``, all lower case."""
        hosts = set(LOOPBACK_NAMES) | set(self.allowed_hosts)
        listen = self.host.lower()
        if listen and not _is_wildcard(listen):
            hosts.add(listen)
        if self.public_url:
            public = urlsplit(self.public_url).hostname
            if public:
                hosts.add(public.lower().rstrip("."))
        return frozenset(hosts)

    def exposure_warning(self) -> str | None:
        """Why this listener (``feed.listen``) may expose the feed and /healthz in clear
        text, or ``None``."""
        if not self.enabled or is_loopback(self.host):
            return None
        if self.public_url and self.public_url.lower().startswith("https://"):
            return None
        return (f"{self.listen} is not a loopback address and no https:// "
                "feed.public_url fronts it: the feed token and your clients' names would "
                "travel unencrypted. Listen on 127.0.0.1 behind a TLS reverse proxy and set "
                "feed.public_url to its https:// address")


class Config(_Model):
    """The validated configuration. Build it with :func:`load_config` or :func:`parse_config`."""

    timezone: str = Field(default_factory=_system_timezone)
    me: Emails = []
    sources: Annotated[list[SourceConfig], Field(min_length=1)]
    target: TargetConfig
    counter: CounterConfig = Field(default_factory=CounterConfig)
    reminder: ReminderConfig = Field(default_factory=ReminderConfig)
    history_window: SpanValue = Span(months=12)
    clients: list[ClientConfig] = []
    announcements: list[AnnouncementConfig] = []
    ideas: Texts = []
    email_template: EmailTemplate | None = None
    prep_note: PrepNoteConfig = Field(default_factory=PrepNoteConfig)
    state_path: ConfigPath | None = None
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    feed: FeedConfig = Field(default_factory=FeedConfig)
    #: The file this was read from; set by :func:`load_config`, never by the file itself.
    config_path: Path | None = Field(default=None, exclude=True)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        name = value.strip()
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return name

    @field_validator("history_window")
    @classmethod
    def _window(cls, value: Span) -> Span:
        if value.seconds:
            raise ValueError("must be whole days, weeks, months or years (like 1y)")
        return value

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Config:
        if (info.context or {}).get("cross_checked"):
            return self
        problems = _cross_problems(self.clients, self.announcements, self.sources)
        if problems:
            raise ValueError("; ".join(f"{_render(loc)}: {msg}" for loc, msg in problems))
        return self

    @property
    def tz(self) -> ZoneInfo:
        """The zone all calendar dates are counted in."""
        return ZoneInfo(self.timezone)


# -- checks across sections ------------------------------------------------------------------

Loc = tuple[int | str, ...]


def _get(item: Any, key: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(key)
    return getattr(item, key, None)


def _cross_problems(clients: Any, announcements: Any, sources: Any) -> list[tuple[Loc, str]]:
    """Checks that need more than one section; they work on raw or validated data alike.

    Running them on the raw data means they are reported even when other parts of the file
    are broken, so a person sees every problem in one go.
    """
    problems: list[tuple[Loc, str]] = []
    clients = clients if isinstance(clients, list) else []
    announcements = announcements if isinstance(announcements, list) else []
    sources = sources if isinstance(sources, list) else []

    names: dict[str, int] = {}
    slugs: dict[str, int] = {}
    for i, client in enumerate(clients):
        name = _get(client, "name")
        if not isinstance(name, str) or not name.strip() or not slug(name):
            continue
        name = name.strip()
        key, key_slug = name.casefold(), slug(name)
        if key in names:
            problems.append(
                (
                    ("clients", i, "name"),
                    f"duplicate client name {name!r} (also clients[{names[key]}])",
                )
            )
        elif key_slug in slugs:
            j = slugs[key_slug]
            other = _get(clients[j], "name").strip()
            problems.append(
                (
                    ("clients", i, "name"),
                    f"{name!r} gives the same key {key_slug!r} as clients[{j}] {other!r}; "
                    "rename one",
                )
            )
        names.setdefault(key, i)
        slugs.setdefault(key_slug, i)

    for i, announcement in enumerate(announcements):
        wanted = _get(announcement, "clients")
        if isinstance(wanted, str):
            if wanted.strip().lower() != "all" and wanted.strip().casefold() not in names:
                problems.append(
                    (("announcements", i, "clients"), f"no client named {wanted.strip()!r}")
                )
        elif isinstance(wanted, list):
            for j, name in enumerate(wanted):
                if isinstance(name, str) and name.strip() and name.strip().casefold() not in names:
                    problems.append(
                        (("announcements", i, "clients", j), f"no client named {name.strip()!r}")
                    )

    seen: dict[str, int] = {}
    for i, source in enumerate(sources):
        given = _get(source, "name")
        if isinstance(source, Mapping):
            explicit = isinstance(given, str) and bool(given.strip())
            name = (
                given.strip()
                if explicit
                else _derived_source_name(source.get("path"), source.get("url"))
            )
        else:
            explicit, name = True, given
        if not name:
            continue
        if name in seen:
            problems.append(
                (
                    ("sources", i, "name") if explicit else ("sources", i),
                    f"duplicate source name {name!r} (also sources[{seen[name]}]); "
                    "give each source its own name",
                )
            )
        seen.setdefault(name, i)
    return problems


# -- turning pydantic errors into plain ones -------------------------------------------------

_SCHEMA_TAG = re.compile(r"[a-z][a-z0-9_-]*\[.*\]")


def _is_union_tag(prefix: Loc, part: str) -> bool:
    """True for the variant names pydantic puts into locations of tagged unions."""
    if len(prefix) == 2 and prefix[0] == "sources" and isinstance(prefix[1], int):
        return part in _SOURCE_TAGS
    if prefix == ("target",):
        return part in _TARGET_TAGS
    if len(prefix) == 3 and prefix[0] == "announcements" and prefix[2] == "clients":
        return part in ("names", "all")
    return False


def _clean_loc(loc: Sequence[int | str], kind: str) -> Loc:
    out: list[int | str] = []
    for k, part in enumerate(loc):
        users_key = kind == "extra_forbidden" and k == len(loc) - 1
        if (
            isinstance(part, str)
            and not users_key
            and (_SCHEMA_TAG.fullmatch(part) or _is_union_tag(tuple(out), part))
        ):
            continue
        out.append(part)
    if kind in ("clientlove_type_missing", "clientlove_type_unknown"):
        out.append("type")
    return tuple(out)


def _render(loc: Loc) -> str:
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
    comparisons = {
        "greater_than": ("gt", "greater than"),
        "greater_than_equal": ("ge", "at least"),
        "less_than": ("lt", "less than"),
        "less_than_equal": ("le", "at most"),
    }
    if kind in comparisons:
        key, words = comparisons[kind]
        limit = ctx.get(key)
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"must be {words} {limit}"
    if kind in _PLAIN:
        return _PLAIN[kind]
    message = error["msg"]
    return message[:1].lower() + message[1:]


_SECRET_KEY = re.compile(r"pass(word)?|passwd|token|secret|api[_-]?key", re.IGNORECASE)


def _translate(error: ErrorDetails) -> tuple[Loc, str]:
    loc = _clean_loc(error["loc"], error["type"])
    message = _message(error)
    if error["type"] == "extra_forbidden" and loc and _SECRET_KEY.search(str(loc[-1])):
        message += (
            " (secrets never go in the config: name a credential, read from systemd"
            " LoadCredential= or the system keyring)"
        )
    return loc, message


def _sorted_problems(problems: list[tuple[Loc, str]]) -> list[str]:
    """Order problems as the file reads: by section, then by list item; keep each group's order."""
    order = {name: i for i, name in enumerate(Config.model_fields)}

    def key(problem: tuple[Loc, str]) -> tuple[int, int]:
        loc = problem[0]
        section = order.get(loc[0], len(order)) if loc and isinstance(loc[0], str) else -1
        item = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else -1
        return section, item

    lines: list[str] = []
    for loc, message in sorted(problems, key=key):
        line = f"{_render(loc)}: {message}" if loc else message
        if line not in lines:
            lines.append(line)
    return lines


# -- loading -------------------------------------------------------------------------------


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
    if not isinstance(data, Mapping):
        raise ConfigError(
            [f"the configuration must be a mapping of settings (key: value), not {_kind(data)}"]
        )
    data = dict(data)
    problems: list[tuple[Loc, str]] = []
    if "config_path" in data:
        del data["config_path"]
        problems.append((("config_path",), "unknown key"))
    context = {"base_dir": Path(base_dir).expanduser().absolute(), "cross_checked": True}
    try:
        config = Config.model_validate(data, context=context)
    except ValidationError as exc:
        problems += [_translate(error) for error in exc.errors(include_url=False)]
    problems += _cross_problems(data.get("clients"), data.get("announcements"), data.get("sources"))
    if problems:
        raise ConfigError(_sorted_problems(problems), path=config_path)
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


def target_identity(target: Any) -> str:
    """The target as the state records it: its kind and place, never a credential.

    A URL keeps its scheme, host and path only (a query could carry a token).
    """
    if isinstance(target, IcsTargetConfig):
        return f"ics file {os.path.normpath(target.path)}"
    if isinstance(target, CalDavTargetConfig):
        parts = urlsplit(target.url)
        url = f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}"
        url += f":{parts.port}" if parts.port else ""
        text = f"caldav {url}{parts.path.rstrip('/')}/"  # a collection, with or without /
        return text + (f" calendar {target.calendar!r}" if target.calendar else "")
    if isinstance(target, GoogleTargetConfig):
        return f"google calendar {target.calendar!r} at {target.api_base}"
    return f"{getattr(target, 'type', type(target).__name__)} target"


def _user_config_path() -> Path:
    return _xdg_dir("XDG_CONFIG_HOME", Path.home() / ".config") / "clientlove" / "config.yaml"


def _resolved(path: Path) -> Path:
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(Path(path).expanduser()))


def _same_file(a: Path, b: Path) -> bool:
    return _resolved(a) == _resolved(b)
