"""Which events are contact with which client (docs/design.md section 2, step 2).

A client is met by an event when an attendee or the organizer matches one of its emails or
domains (the domain itself or a subdomain), or when one of its keywords appears in the title
as a whole word. Not contact: cancelled events, events the user declined, and events where
every attendee of that client declined.

Built for large histories: emails and domains are dictionary look-ups, single-word keywords
a set intersection with the title's words; only multi-word keywords use a regex.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from functools import lru_cache
from typing import TypedDict

from daemon.model import Event, Interaction, NeedleKinds, PartStat

_WORD = re.compile(r"\w+", re.UNICODE)

#: How one of our past reminders shows as a contact (in the prep note's "Last contact").
REMINDER_TITLE = "Client love call"


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """The matching rules of one client (a view of the config, free of pydantic)."""

    name: str
    emails: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()


@dataclass(slots=True)
class History:
    """A client's attributed events: contact up to today, meetings after it."""

    contacts: list[Interaction] = field(default_factory=list)
    future: list[Interaction] = field(default_factory=list)


def needles(clients: Iterable[ClientSpec]) -> tuple[str, ...]:
    """Lower-case strings one of which any relevant raw event must contain (fast path)."""
    found: set[str] = set()
    for client in clients:
        found.update(e.lower() for e in client.emails)
        found.update(d.lower().lstrip("@") for d in client.domains)
        found.update(k.strip().lower() for k in client.keywords if k.strip())
    return tuple(sorted(found))


def needle_kinds(clients: Iterable[ClientSpec]) -> NeedleKinds:
    """The needles sorted as :class:`Matcher` uses them, so the prefilter can match tokens
    the same way instead of scanning for every needle."""
    emails: set[str] = set()
    domains: set[str] = set()
    words: set[str] = set()
    phrases: set[str] = set()
    for client in clients:
        emails.update(e.lower() for e in client.emails)
        domains.update(d.lower().lstrip("@") for d in client.domains)
        for keyword in client.keywords:
            kw = keyword.strip().lower()
            if _WORD.fullmatch(kw):
                words.add(kw)
            elif kw:
                phrases.add(kw)
    return NeedleKinds(frozenset(emails), frozenset(domains), frozenset(words),
                       tuple(sorted(phrases)))


class Matcher:
    """Finds the clients an event names, by email, domain or title keyword."""

    def __init__(self, clients: Iterable[ClientSpec], me: Iterable[str] = ()) -> None:
        self.clients = list(clients)
        self.me = frozenset(e.lower() for e in me)
        self._by_email: dict[str, set[str]] = defaultdict(set)
        self._by_domain: dict[str, set[str]] = defaultdict(set)
        self._by_word: dict[str, set[str]] = defaultdict(set)
        self._phrases: list[tuple[re.Pattern[str], str]] = []
        for client in self.clients:
            for email in client.emails:
                self._by_email[email.lower()].add(client.name)
            for domain in client.domains:
                self._by_domain[domain.lower().lstrip("@")].add(client.name)
            for keyword in client.keywords:
                kw = keyword.strip().lower()
                if _WORD.fullmatch(kw):
                    self._by_word[kw].add(client.name)
                elif kw:
                    pattern = re.compile(rf"(?<!\w){re.escape(kw)}(?!\w)", re.IGNORECASE)
                    self._phrases.append((pattern, client.name))

    def by_address(self, email: str) -> set[str]:
        """Clients an email address belongs to: exact email, its domain or a parent domain."""
        email = email.lower()
        found = set(self._by_email.get(email, ()))
        _, _, domain = email.rpartition("@")
        labels = domain.split(".")
        for i in range(len(labels) - 1):
            hit = self._by_domain.get(".".join(labels[i:]))
            if hit:
                found |= hit
        return found

    def by_title(self, title: str) -> set[str]:
        """Clients whose keyword stands in the title as a whole word, any case."""
        if not title:
            return set()
        found: set[str] = set()
        if self._by_word:
            for word in set(_WORD.findall(title.lower())):
                hit = self._by_word.get(word)
                if hit:
                    found |= hit
        for pattern, name in self._phrases:
            if pattern.search(title):
                found.add(name)
        return found

    def clients_met(self, event: Event) -> set[str]:
        """The clients this event is contact with (empty when it is no contact at all)."""
        if event.cancelled:
            return set()
        declined: dict[str, bool] = {}
        for attendee in event.attendees:
            if attendee.is_me or attendee.email in self.me:
                if attendee.partstat is PartStat.DECLINED:
                    return set()
                continue
            for name in self.by_address(attendee.email):
                said_no = attendee.partstat is PartStat.DECLINED
                declined[name] = declined.get(name, True) and said_no
        met = {name for name, no in declined.items() if not no}
        if event.organizer and event.organizer not in self.me:
            met |= self.by_address(event.organizer)
        refused = {name for name, no in declined.items() if no}
        met |= self.by_title(event.summary) - (refused - met)
        return met


def has_marker(event_text: Iterable[str], markers: Iterable[str]) -> bool:
    """Whether any marker (``#need``) stands in any of the texts as a whole token, any case.

    A whole token: not preceded or followed by a word character, so ``#need:`` and
    ``(#NEED)`` count while ``#needless`` or ``#needs`` (ordinary words) never reset a counter.
    """
    pattern = marker_pattern(tuple(markers))
    if pattern is None:
        return False
    return any(text and pattern.search(text) for text in event_text)


@lru_cache(maxsize=64)
def marker_pattern(markers: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for a set of markers (compiled once per configuration, not per event)."""
    alternatives = sorted({re.escape(m.strip()) for m in markers if m.strip()}, key=len,
                          reverse=True)
    if not alternatives:
        return None
    return re.compile(rf"(?<!\w)(?:{'|'.join(alternatives)})(?!\w)", re.IGNORECASE)


def attribute(
    events: Iterable[Event],
    matcher: Matcher,
    tz: tzinfo,
    today: date,
    reset_markers: Iterable[str] = ("#need", "#reset"),
) -> dict[str, History]:
    """Group events into per-client histories.

    Events carrying our own mark (``X-CLIENTLOVE-KEY``) are left out: our reminders come
    from the target's listing, where they are told apart as history or pending.
    """
    markers = tuple(reset_markers)
    result: dict[str, History] = {c.name: History() for c in matcher.clients}
    for event in events:
        if event.clientlove_key:
            continue
        met = matcher.clients_met(event)
        if not met:
            continue
        day = event.local_date(tz)
        reset = has_marker((event.summary, event.description, *event.categories), markers)
        at = event.start if isinstance(event.start, datetime) else None
        item = Interaction(day, event.summary, event.description, reset=reset, at=at,
                           private=event.private)
        for name in met:
            history = result[name]
            (history.contacts if day <= today else history.future).append(item)
    return result


#: What the state keeps of a description: the prep note quotes at most 400 characters of
#: its start, after dropping the dial-in lines of an invitation (redacted mode), so more of
#: it is never needed.
KEPT_DESCRIPTION = 1000
#: Marker-like tokens (``#need``) kept from beyond that, so a reset marker still counts.
_TAG = re.compile(r"(?<!\w)#\w+")
_KEPT_TAGS = 20


def kept_description(text: str, private: bool = False) -> str:
    """The part of an event's description worth storing: its start, plus the ``#`` tokens
    of the rest (the markers); of a private event only those tokens, as its text is never
    quoted."""
    head, rest = ("", text) if private else (text[:KEPT_DESCRIPTION], text[KEPT_DESCRIPTION:])
    tags = list(dict.fromkeys(_TAG.findall(rest)))[:_KEPT_TAGS]
    return " ".join(part for part in (head, *tags) if part) if tags else head


def reminder_interactions(
    reminders: Iterable[tuple[str, date, str, str, tuple[str, ...]]],
    today: date,
    reset_markers: Iterable[str],
    skip_markers: Iterable[str],
) -> tuple[dict[str, list[Interaction]], dict[str, list[date]]]:
    """Our past reminders as contact, and those the user marked ``#skip`` as skips.

    Each input is ``(client, day, summary, description, categories)``: the texts searched
    for the user's markers (empty for a reminder the user never edited). The contact is
    titled :data:`REMINDER_TITLE`, what it was, whatever text was searched. Reminders on or
    after today are pending: neither contact nor booked.
    """
    contacts: dict[str, list[Interaction]] = defaultdict(list)
    skips: dict[str, list[date]] = defaultdict(list)
    resets, skipm = tuple(reset_markers), tuple(skip_markers)
    for client, day, summary, description, categories in reminders:
        if day >= today:
            continue
        texts = (summary, description, *categories)
        if has_marker(texts, skipm):
            skips[client].append(day)
            continue
        reset = has_marker(texts, resets)
        contacts[client].append(Interaction(day, REMINDER_TITLE, "", reset=reset, ours=True))
    return dict(contacts), dict(skips)


class Discovered(TypedDict):
    """One person or domain met that no client covers (a dict, so it reads back as YAML)."""

    domain: str | None
    emails: list[str]
    last: date
    meetings: int
    title: str


@dataclass(slots=True)
class _Met:
    """What ``discover`` gathers about one person or domain while it walks the events."""

    domain: str | None
    last: date
    title: str
    emails: set[str] = field(default_factory=set)
    meetings: set[tuple[str, date]] = field(default_factory=set)


def discover(
    events: Iterable[Event],
    matcher: Matcher,
    tz: tzinfo,
    personal_domains: frozenset[str] = frozenset(),
) -> list[Discovered]:
    """People and domains met that no client covers, most recent first.

    Colleagues (the domains of the user's own addresses) are never suggested.

    Each entry: ``{"domain": str | None, "emails": [...], "last": date, "meetings": n,
    "title": the latest title}``. Addresses at ``personal_domains`` (gmail.com and the
    like) are listed one person each, never as a whole domain.
    """
    own_domains = {m.rpartition("@")[2] for m in matcher.me}
    seen: dict[str, _Met] = {}
    for event in events:
        if event.clientlove_key:
            continue
        addresses = people_met(event, matcher.me)
        day = event.local_date(tz)
        for email in addresses:
            if not email or "@" not in email or email in matcher.me:
                continue
            domain = email.rpartition("@")[2]
            if domain in own_domains or matcher.by_address(email):
                continue
            group = email if domain in personal_domains else domain
            met = seen.setdefault(
                group, _Met(domain=None if group == email else domain, last=day,
                            title=event.summary))
            met.emails.add(email)
            met.meetings.add((event.ident, day))
            if day >= met.last:
                met.last, met.title = day, event.summary
    out = [
        Discovered(domain=met.domain, emails=sorted(met.emails), last=met.last,
                   meetings=len(met.meetings), title=met.title)
        for met in seen.values()
    ]
    out.sort(key=lambda e: (e["last"], e["meetings"]), reverse=True)
    return out


def people_met(event: Event, me: frozenset[str]) -> list[str]:
    """The addresses of the people this event was contact with, the user left out.

    None at all for a cancelled event or one the user declined; an attendee who declined
    was not met either (nor an organizer listed as a declining attendee).
    """
    if event.cancelled:
        return []
    people: list[str] = []
    declined: set[str] = set()
    for attendee in event.attendees:
        if attendee.is_me or attendee.email in me:
            if attendee.partstat is PartStat.DECLINED:
                return []
            continue
        if attendee.partstat is PartStat.DECLINED:
            declined.add(attendee.email)
        else:
            people.append(attendee.email)
    if event.organizer and event.organizer not in me and event.organizer not in declined:
        people.append(event.organizer)
    return people


PERSONAL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "yahoo.com",
        "icloud.com", "me.com", "mac.com", "gmx.de", "gmx.net", "web.de", "proton.me",
        "protonmail.com", "aol.com", "mail.com", "fastmail.com", "posteo.de", "yandex.ru",
    }
)


def history_for(histories: Mapping[str, History], name: str) -> History:
    return histories.get(name) or History()
