"""The schema of the config file: every section, its fields, their help text.

Sources and the target are provider entries: each provider declares its own models (see
:mod:`providers.registry`), and :func:`composed` builds the ``Config`` for the providers a
file names, so the models of unused providers are never imported. Every field has a
``description``: the one text behind ``check-config``'s help and docs/config-reference.md.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from daemon.config.errors import Loc, render
from daemon.config.fields import (
    HOST_LABELS,
    MON_TO_FRI,
    NO_YEAR,
    ConfigModel,
    ConfigPath,
    CredentialName,
    Domains,
    Email,
    Emails,
    EmailTemplate,
    Markers,
    ProviderSettings,
    SourceSettings,
    SpanValue,
    TargetSettings,
    Text,
    Texts,
    TitleTemplate,
    Workdays,
    birthday_value,
    clock_time,
    http_url,
    listify,
    notes_value,
    plain_text,
    system_timezone,
)
from daemon.durations import Span, parse_span
from daemon.identity import slug

# -- the counter and the reminder -------------------------------------------------------------


def _whole_days(value: Span) -> Span:
    if value.months or value.seconds:
        raise ValueError("must be whole days or weeks (like 7d or P1W)")
    return value


def _shortest_days(span: Span) -> int:
    """The fewest days ``span`` can last, over every month it might start in."""
    return min((span.after(dt.date(2001, m, 1)) - dt.date(2001, m, 1)).days for m in range(1, 13))


class CounterConfig(ConfigModel):
    """The doubling contact counter (docs/design.md section 3)."""

    base: SpanValue = Field(
        default=Span(days=7),
        description="The first interval after a contact, and the one after a reset "
        "(whole days or weeks, like 7d or 1w).")
    # Validated even when left out, since they are checked against base.
    max: SpanValue = Field(
        default=Span(months=2), validate_default=True,
        description="The longest interval the doubling reaches (like 8w or 2mo); longer "
        "than base.")
    early: SpanValue = Field(
        default=Span(days=2), validate_default=True,
        description="How much earlier than due a meeting still counts as the due contact "
        "(shorter than base).")
    reset_markers: Markers = Field(
        default=["#need", "#reset"],
        description="Words in an event's title or description that mean the client needs "
        "help: the interval goes back to base.")
    skip_markers: Markers = Field(
        default=["#skip"],
        description="Words that make an event not count as a contact.")

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


Clock = Annotated[dt.time, BeforeValidator(clock_time)]


class ReminderConfig(ConfigModel):
    """When and how the reminder event sits in the calendar (docs/design.md section 4)."""

    time: Clock = Field(
        default=dt.time(9, 30),
        description="The time of day the reminder starts, in the config's timezone "
        "(like 09:30).")
    latest: Clock | None = Field(
        default=None,
        description="A reminder due today whose slot has passed is placed at the next "
        "quarter hour up to this time of day, else at the slot of the next work day "
        "(default 17:00, or time when later).")
    duration: SpanValue = Field(
        default=Span(seconds=15 * 60),
        description="How long the reminder event lasts (shorter than a day, like 15min).")
    alarm_before: SpanValue = Field(
        default=Span(days=1),
        description="How long before the reminder its alarm rings: between 1 and 2 days.")
    workdays: Workdays = Field(
        default=list(MON_TO_FRI),
        description="The days a reminder may fall on (like mon, tue, wed, thu, fri).")
    title: TitleTemplate = Field(
        default="Client love: {client}",
        description="The reminder's title; {client} is the client's name.")

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
    value = plain_text(value)
    if not slug(value):
        raise ValueError("needs at least one letter or digit")
    return value


OptionalText = Annotated[str, AfterValidator(plain_text)] | None


class ClientConfig(ConfigModel):
    """A client: how to recognise them in the calendar, and what to remember about them."""

    name: Annotated[str, AfterValidator(_client_name)] = Field(
        description="The client's name, as reminders and status show it; unique.")
    emails: Emails = Field(
        default=[], description="Addresses of the client's people: a meeting with one of "
        "them is a contact.")
    domains: Domains = Field(
        default=[], description="The client's email domains (like acme.example): a meeting "
        "with anyone there is a contact.")
    keywords: Texts = Field(
        default=[], description="Words in an event's title that make it a contact with "
        "this client (a whole-word match).")
    notes: Annotated[dict[str, str] | str | None, BeforeValidator(notes_value)] = Field(
        default=None, description="Personal details for the prep note: a text, or a "
        "mapping like {coffee: flat white, kids: Sam and Alex}.")
    birthday: Annotated[dt.date | None, BeforeValidator(birthday_value)] = Field(
        default=None, description="The contact person's birthday: 1980-05-17, or 05-17 "
        "when the year is unknown.")
    phone: OptionalText = Field(default=None, description="A phone number for the prep note.")
    contact: OptionalText = Field(
        default=None, description="The person the email greets (their first name), instead "
        "of a guess from the address.")
    account_manager: Email | None = Field(
        default=None, description="An address copied on the \"as per our conversation\" "
        "email.")
    project: OptionalText = Field(
        default=None, description="What the work is called, for the email's subject.")

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


class AnnouncementConfig(ConfigModel):
    """News worth a call: named clients are due no later than ``date`` (docs/design.md 3)."""

    date: dt.date = Field(description="The day of the news (like 2025-03-01); the named "
                          "clients are due on it at the latest.")
    text: Text = Field(description="The news, quoted in the prep note.")
    clients: AnnouncedClients = Field(description="The clients it concerns: a list of "
                                      "names, or all.")

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


# -- the service and the feed -------------------------------------------------------------


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


class ServiceConfig(ConfigModel):
    """How ``clientlove run`` paces its cycles."""

    interval: SpanValue = Field(
        default=Span(seconds=15 * 60),
        description="The time between two cycles (at least 10 seconds, like 15min).")
    jitter: Annotated[Span, BeforeValidator(_span_or_zero),
                      PlainSerializer(str, return_type=str)] = Field(
        default=Span(seconds=60),
        description="Each wait is the interval plus up to this much, so a team's daemons "
        "do not align (0 for none).")
    health_max_age: SpanValue = Field(
        default=Span(seconds=3 * 3600),
        description="/healthz answers 503 once the last good cycle is older than this.")
    cycle_timeout: SpanValue = Field(
        default=Span(seconds=5 * 60),
        description="A cycle still running after this is abandoned (no more writes from "
        "it) and reported; one still running after twice this is stuck, and the watchdog "
        "has systemd restart the service (1 second to 1 hour).")

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


class PrepNoteConfig(ConfigModel):
    """What the prep note quotes of the last meeting ("the last conversation")."""

    last_conversation: Literal["full", "redacted", "off"] = Field(
        default="redacted",
        description="How much of the last meeting's description the prep note quotes: "
        "full, redacted (without the lines carrying links, passcodes, PINs, meeting ids or "
        "phone numbers) or off. A private or confidential event's text is never quoted.")

    @field_validator("last_conversation", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class FeedConfig(ConfigModel):
    """The subscribable ICS feed, /healthz and /metrics."""

    enabled: bool = Field(default=True, description="Whether `clientlove run` serves the "
                          "feed, /healthz and /metrics.")
    listen: str = Field(default="127.0.0.1:8787", description="HOST:PORT the listener binds.")
    token_credential: CredentialName = Field(
        default="feed-token", description="The credential holding the secret part of the "
        "feed URL ($CREDENTIALS_DIRECTORY or the keyring).")
    public_url: str | None = Field(
        default=None, description="The address people subscribe to, when a proxy fronts "
        "the listener (https:// keeps the token private).")
    allowed_hosts: list[str] = Field(
        default=[], description="More Host names the listener answers to (loopback names, "
        "the listen host and the public_url's host always are); any other Host gets 421, "
        "against DNS rebinding.")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.strip().rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) < 65536 or not host:
            raise ValueError("must be HOST:PORT, like 127.0.0.1:8787")
        return value.strip()

    @field_validator("public_url")
    @classmethod
    def _public(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value).rstrip("/")

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: Any) -> Any:
        return listify(value)

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        names = []
        for item in value:
            name = item.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")
            if not (_is_ip(name) or HOST_LABELS.fullmatch(name)):
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


# -- sources and the target: entries of the providers a file names ----------------------------


def provider_entry(role: str, models: Mapping[str, type[ProviderSettings]],
                   known: Sequence[str]) -> Any:
    """A union of ``models`` (by ``type``) with plain errors for a missing or bad type.

    The check runs before pydantic picks a model, so an unknown type gives one error
    (``unknown source type 'exchange' (known: ics, caldav, google)``) instead of one per
    field; ``known`` is every provider, imported or not.
    """
    known_text = ", ".join(known)
    classes = tuple(models.values())

    def check(value: Any) -> Any:
        if classes and isinstance(value, classes):
            return value
        if isinstance(value, ProviderSettings):
            return value
        if not isinstance(value, Mapping):
            raise PydanticCustomError(
                "clientlove_not_mapping",
                "must be a mapping with a type (known: {known})",
                {"known": known_text},
            )
        if "type" not in value:
            raise PydanticCustomError(
                "clientlove_type_missing", "required (known: {known})", {"known": known_text}
            )
        tag = value["type"]
        if not isinstance(tag, str) or tag not in known:
            raise PydanticCustomError(
                "clientlove_type_unknown",
                "unknown {kind} type {tag} (known: {known})",
                {"kind": role, "tag": repr(tag), "known": known_text},
            )
        if tag not in models:
            raise PydanticCustomError(
                "clientlove_type_unknown",
                "a {tag} calendar cannot be a {kind}",
                {"kind": role, "tag": tag},
            )
        return value

    inner: Any
    if not classes:
        inner = ProviderSettings
    elif len(classes) == 1:
        inner = classes[0]
    else:
        inner = Annotated[
            Union[classes],  # noqa: UP007 - a runtime tuple of models
            Field(discriminator="type"),
        ]
    return Annotated[inner, BeforeValidator(check)]


class Config(ConfigModel):
    """The validated configuration. Build it with :func:`load_config` or :func:`parse_config`.

    ``sources`` and ``target`` hold provider entries; the class :func:`composed` makes for
    a file validates them with the models of the providers it names.
    """

    timezone: str = Field(
        default_factory=system_timezone,
        description="The zone calendar dates are counted in (like Europe/Berlin); default "
        "the machine's.")
    me: Emails = Field(
        default=[], description="Your own addresses: you are not a client's attendee, and "
        "events you declined do not count.")
    sources: Annotated[list[SourceSettings], Field(min_length=1)] = Field(
        description="The calendars to read the history from (at least one): each an entry "
        "with a type (ics, caldav or google).")
    target: TargetSettings = Field(
        description="The calendar our reminders are written to: an entry with a type (ics, "
        "caldav or google).")
    counter: CounterConfig = Field(default_factory=CounterConfig,
                                   description="The doubling contact counter.")
    reminder: ReminderConfig = Field(default_factory=ReminderConfig,
                                     description="When and how the reminder event is placed.")
    history_window: SpanValue = Field(
        default=Span(months=12),
        description="How far back the calendars are read (whole days to years, like 1y).")
    clients: list[ClientConfig] = Field(default=[], description="Your clients.")
    announcements: list[AnnouncementConfig] = Field(
        default=[], description="News worth a call: the named clients are due on its date "
        "at the latest.")
    ideas: Texts = Field(default=[], description="Ideas the prep note suggests in turn.")
    email_template: EmailTemplate | None = Field(
        default=None, description="The follow-up email; fields {client}, {first_name}, "
        "{me}, {email}, {project}, {account_manager}.")
    prep_note: PrepNoteConfig = Field(default_factory=PrepNoteConfig,
                                      description="What the prep note quotes.")
    state_path: ConfigPath | None = Field(
        default=None, description="Where the SQLite state lives (default: one file per "
        "config in the XDG state folder or systemd's StateDirectory).")
    service: ServiceConfig = Field(default_factory=ServiceConfig,
                                   description="How `clientlove run` paces its cycles.")
    feed: FeedConfig = Field(default_factory=FeedConfig,
                             description="The subscribable ICS feed, /healthz and /metrics.")
    #: The file this was read from; set by :func:`load_config`, never by the file itself.
    config_path: Path | None = Field(default=None, exclude=True,
                                     description="Set by the loader, never in the file.")

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
        problems = cross_problems(self.clients, self.announcements, self.sources)
        if problems:
            raise ValueError("; ".join(f"{render(loc)}: {msg}" for loc, msg in problems))
        return self

    @property
    def tz(self) -> ZoneInfo:
        """The zone all calendar dates are counted in."""
        return ZoneInfo(self.timezone)

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Any:
        """Validate a mapping with the ``Config`` composed for the providers it names."""
        if cls is Config and isinstance(obj, Mapping):
            sources, target = used_types(obj)
            return composed(tuple(sorted(set(sources))), target).model_validate(obj, **kwargs)
        return super().model_validate(obj, **kwargs)

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Any:
        """Like :meth:`model_validate`, from JSON text."""
        if cls is Config:
            import json

            return cls.model_validate(json.loads(json_data), **kwargs)
        return super().model_validate_json(json_data, **kwargs)


@lru_cache(maxsize=32)
def composed(source_types: tuple[str, ...], target_type: str | None) -> type[Config]:
    """``Config`` whose ``sources`` and ``target`` take the named providers' entries.

    Only those providers' modules are imported (and their models built); a type that is
    not known still gets its plain error from :func:`provider_entry`.
    """
    from providers import registry

    known = registry.provider_types()
    sources: dict[str, type[ProviderSettings]] = {}
    for name in dict.fromkeys(source_types):
        model = registry.load(name).source_config
        if model is not None:
            sources[name] = model
    targets: dict[str, type[ProviderSettings]] = {}
    if target_type is not None:
        model = registry.load(target_type).target_config
        if model is not None:
            targets[target_type] = model
    source_entry = provider_entry("source", sources, known)
    target_entry = provider_entry("target", targets, known)
    fields = Config.model_fields
    return create_model(
        "Config",
        __base__=Config,
        __module__=Config.__module__,
        sources=(Annotated[list[source_entry], Field(min_length=1)],  # type: ignore[valid-type]
                 Field(description=fields["sources"].description)),
        target=(target_entry, Field(description=fields["target"].description)),
    )


def used_types(data: Mapping[str, Any]) -> tuple[tuple[str, ...], str | None]:
    """The known provider types a raw config names: its sources' and its target's."""
    from providers.registry import PROVIDERS

    def type_of(entry: Any) -> str | None:
        if isinstance(entry, Mapping):
            tag = entry.get("type")
            if isinstance(tag, str) and tag in PROVIDERS:
                return tag
        return None

    raw_sources = data.get("sources")
    sources = raw_sources if isinstance(raw_sources, list) else []
    source_types = tuple(t for t in (type_of(s) for s in sources) if t is not None)
    return source_types, type_of(data.get("target"))


# -- checks across sections ------------------------------------------------------------------


def _get(item: Any, key: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(key)
    return getattr(item, key, None)


def _raw_source_name(entry: Mapping[str, Any]) -> str | None:
    """The name a raw source entry will get: its own, or its provider's default."""
    from providers import registry

    tag = entry.get("type")
    if not isinstance(tag, str) or tag not in registry.PROVIDERS:
        return None
    model = registry.load(tag).source_config
    if model is None or not issubclass(model, SourceSettings):
        return None
    return model.default_name(entry)


def cross_problems(clients: Any, announcements: Any, sources: Any) -> list[tuple[Loc, str]]:
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
            name = given.strip() if explicit else _raw_source_name(source)
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


def section_names() -> list[str]:
    """The top-level keys in the order the file is read (problems are sorted by it)."""
    return list(Config.model_fields)
